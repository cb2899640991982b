"""Registers the ``numpy`` backend with qcnn (entry point ``numpy = "qcnn_numpy.plugin"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qcnn.plugin import BackendSpec, hookimpl

__all__ = ["qcnn_register_backends", "load"]


def load(**options: Any) -> Any:
    """Import the kernels lazily and return a :class:`qcnn_numpy.backend.NumpyBackend`."""
    from .backend import NumpyBackend  # lazy: discovery only needs this module

    return NumpyBackend(**options)


@hookimpl
def qcnn_register_backends(register: Callable[..., None]) -> None:
    register(BackendSpec("numpy", load, preference=10,
                         summary="vectorised numpy: im2col + BLAS GEMM; LUT GEMM + row-gather look-ups"))
