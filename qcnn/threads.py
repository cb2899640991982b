"""One switch for every thread pool: BLAS (threadpoolctl), and each loaded backend's own."""

from __future__ import annotations

from typing import Any

__all__ = ["set_threads", "get_threads", "blas_info"]

_threads: int | None = None
_limiter: Any = None


def set_threads(n: int) -> None:
    """Use ``n`` threads in BLAS and in every backend loaded now or later."""
    global _threads, _limiter
    from threadpoolctl import threadpool_limits

    from .errors import QcnnError
    from .plugins import loaded_backends

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise QcnnError(f"threads must be a positive integer, got {n!r}")
    _threads = n
    _limiter = threadpool_limits(limits=n)  # applies now, process-wide
    for backend in loaded_backends():
        backend.impl.set_threads(n)


def get_threads() -> int | None:
    """The thread count last set with :func:`set_threads`, or None."""
    return _threads


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS libraries loaded in this process."""
    from threadpoolctl import threadpool_info

    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
