"""qcnn's ``numpy`` backend: every layer vectorised with numpy, float layers on BLAS.

Float conv is im2col (stride tricks into a kept buffer) plus one batched SGEMM; quantized
conv and fc build the look-up table with GEMMs and accumulate table rows picked by the
codes. Registered through the ``qcnn.backends`` entry point, like any third-party plugin.
"""

from __future__ import annotations

__all__ = ["NumpyBackend"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "NumpyBackend":  # imported lazily: discovery only needs the plugin module
        from .backend import NumpyBackend

        return NumpyBackend
    raise AttributeError(name)
