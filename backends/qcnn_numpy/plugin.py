"""Registers the ``numpy`` backend with qcnn (entry point ``numpy = "qcnn_numpy.plugin"``)."""

from __future__ import annotations

from collections.abc import Callable

from qcnn import BackendSpec, hookimpl

__all__ = ["qcnn_register_backends", "load"]


def load():  # type: ignore[no-untyped-def]
    """Import the kernels lazily and return a :class:`qcnn_numpy.backend.NumpyBackend`."""
    from .backend import NumpyBackend

    return NumpyBackend()


@hookimpl
def qcnn_register_backends(register: Callable[..., None]) -> None:
    from . import __version__

    register(BackendSpec("numpy", load, version=__version__,
                         summary="vectorised numpy: im2col + BLAS GEMM; LUT GEMM + row-gather look-ups"))
