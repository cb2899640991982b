"""Registers the ``numba`` backend with qcnn (entry point ``numba = "qcnn_numba.plugin"``)."""

from __future__ import annotations

import os
from typing import Any

from qcnn.plugin import BackendSpec, hookimpl

__all__ = ["load", "qcnn_register_backends"]


def load(**options: Any) -> Any:
    """Import numba and the kernels; a missing numba is reported as the reason. ``options``:
    ``config=NumbaConfig(...)`` and/or the fields of :class:`qcnn_numba.config.NumbaConfig`.

    Unless the user chose otherwise, OpenMP workers are made to sleep rather than spin
    between parallel regions (``OMP_WAIT_POLICY=PASSIVE``): spinning workers starve BLAS
    threads and every other process on a busy machine (measured here: AlexNet on 2 threads
    went from 195 ms to 11 ms wall). It takes effect if the OpenMP runtime starts after this.
    """
    policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a load-time choice, before numba starts OpenMP
    try:
        import numba  # noqa: F401
    except ImportError as err:
        raise ImportError(f"numba is not installed: pip install numba ({err})") from None
    from .backend import NumbaBackend  # lazy: numba and the kernels

    backend = NumbaBackend(**options)
    backend.omp_wait_policy = policy  # for info(): the value chosen here, not re-read later
    return backend


@hookimpl
def qcnn_register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(BackendSpec("numba", load, preference=20,
                         summary="numba JIT kernels: LUT planes + vectorised window adds, AVX-512 permute fc look-ups"))
