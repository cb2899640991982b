"""Moved to :mod:`qcnn.model`; this alias is kept for one release (0.2) and then removed."""

import warnings

from qcnn.model import LayerCost, layer_costs, totals  # noqa: F401

warnings.warn("qcnn.stats moved to qcnn.model; import from there", DeprecationWarning, stacklevel=2)
