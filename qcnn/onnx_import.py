"""Moved to :mod:`qcnn.io`; this alias is kept for one release (0.2) and then removed."""

import warnings

from qcnn.io import SUPPORTED_OPS, import_onnx, onnx_to_model  # noqa: F401

warnings.warn("qcnn.onnx_import moved to qcnn.io; import from there", DeprecationWarning, stacklevel=2)
