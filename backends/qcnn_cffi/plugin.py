"""Registers the ``cffi`` backend with qcnn (entry point ``qcnn.backends: cffi``).

Nothing heavy is imported here: the compiled extension loads in :func:`load`.
"""

from __future__ import annotations

from typing import Any

from qcnn.plugin import BackendSpec, hookimpl

__all__ = ["load", "qcnn_register_backends"]


def load(**options: Any) -> Any:
    """Import the compiled kernels and return a ``CffiBackend``; QcnnError if it is not built.
    ``options`` are the fields of :class:`qcnn_cffi.config.CffiConfig`."""
    from .backend import CffiBackend  # lazy: the compiled extension

    return CffiBackend(**options)


@hookimpl
def qcnn_register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(BackendSpec("cffi", load, preference=30,
                         summary="C kernels (SIMD LUT look-ups, OpenMP) + OpenBLAS, built with cffi"))
