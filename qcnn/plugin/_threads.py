"""The process-wide thread count and the BLAS pools (threadpoolctl). A leaf: the registry
applies the count to each backend's own pool."""

from __future__ import annotations

from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

from .._errors import QcnnError

__all__ = ["check_threads", "set_blas_threads", "get_threads", "blas_info"]

_threads: int | None = None
_limiter: Any = None


def check_threads(n: object, what: str = "threads") -> int:
    """``n`` as a positive int, else a one-line :class:`QcnnError` naming ``what``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise QcnnError(f"{what} must be a positive integer, got {n!r}")
    return n


def set_blas_threads(n: int) -> None:
    """Record ``n`` as the thread count and limit every BLAS (and OpenMP) pool loaded in this process to it."""
    global _threads, _limiter
    _threads = check_threads(n)
    _limiter = threadpool_limits(limits=n)  # BLAS and OpenMP pools, now, process-wide


def get_threads() -> int | None:
    """The thread count last set with :func:`qcnn.set_threads`, or None."""
    return _threads


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS libraries loaded in this process."""
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
