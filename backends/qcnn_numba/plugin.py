"""Registers the ``numba`` backend with qcnn (entry point ``numba = "qcnn_numba.plugin"``)."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from qcnn.backend import BackendSpec
from qcnn.hookspecs import hookimpl

__all__ = ["load", "qcnn_register_backends"]


def _numba_version() -> str:
    try:
        return metadata.version("numba")
    except metadata.PackageNotFoundError:
        return ""


def load() -> Any:
    """Import numba and the kernels; a missing numba is reported as the reason."""
    try:
        import numba  # noqa: F401
    except ImportError as err:
        raise ImportError(f"numba is not installed: pip install numba ({err})") from None
    from .backend import NumbaBackend

    return NumbaBackend()


@hookimpl
def qcnn_register_backends(register) -> None:  # type: ignore[no-untyped-def]
    version = _numba_version()
    register(BackendSpec("numba", load, version=f"numba {version}" if version else "numba (not installed)",
                         summary="numba JIT kernels: LUT planes + vectorised window adds, AVX-512 permute fc look-ups"))
