"""Moved to :mod:`qcnn.plugin`; this alias is kept for one release (0.2) and then removed."""

import warnings

from qcnn.plugin import (  # noqa: F401
    ENTRY_POINT_GROUP,
    LoadedBackend,
    Problem,
    backend_specs,
    load_backend,
    loaded_backends,
    problems,
)

warnings.warn("qcnn.plugins moved to qcnn.plugin; import from there", DeprecationWarning, stacklevel=2)
