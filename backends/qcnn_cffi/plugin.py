"""Registers the ``cffi`` backend with qcnn (entry point ``qcnn.backends: cffi``).

Nothing heavy is imported here: the compiled extension loads in :func:`load`.
"""

from __future__ import annotations

from typing import Any

from qcnn.backend import BackendSpec
from qcnn.hookspecs import hookimpl

__all__ = ["load", "qcnn_register_backends"]


def load() -> Any:
    """Import the compiled kernels and return a ``CffiBackend``; QcnnError if it is not built."""
    from .backend import CffiBackend

    return CffiBackend()


@hookimpl
def qcnn_register_backends(register) -> None:  # type: ignore[no-untyped-def]
    from qcnn import __version__

    register(BackendSpec("cffi", load, version=__version__,
                         summary="C kernels (SIMD LUT look-ups, OpenMP) + OpenBLAS, built with cffi"))
