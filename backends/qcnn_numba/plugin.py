"""Registers the ``numba`` backend with qcnn (entry point ``numba = "qcnn_numba.plugin"``)."""

from __future__ import annotations

import os
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
    """Import numba and the kernels; a missing numba is reported as the reason.

    Unless the user chose otherwise, OpenMP workers are made to sleep rather than spin
    between parallel regions (``OMP_WAIT_POLICY=PASSIVE``): spinning workers starve BLAS
    threads and every other process on a busy machine (measured here: AlexNet on 2 threads
    went from 195 ms to 11 ms wall). It takes effect if the OpenMP runtime starts after this.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
