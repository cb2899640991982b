"""Moved to :mod:`qcnn.model`; this alias is kept for one release (0.2) and then removed."""

import warnings

from qcnn.io import load_model  # noqa: F401
from qcnn.model import ARCHS, arch_spec, default_quant, quantize_spec, resolve_spec, synthetic  # noqa: F401

warnings.warn("qcnn.zoo moved to qcnn.model; import from there", DeprecationWarning, stacklevel=2)
