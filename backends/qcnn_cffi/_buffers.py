"""Reusable output buffers for the table stage.

A fresh 26 MB array per call (AlexNet conv1's table) costs page faults on every call. A
:class:`BufferCache` hands its cached array out again only when nobody else holds it (CPython
reference count), so a table the caller kept from an earlier call is never overwritten.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["BufferCache"]


class BufferCache:
    """``get(size)`` -> a 1-D float32 array of ``size`` floats, reused when it is free."""

    def __init__(self, init: Callable[[np.ndarray], None] | None = None) -> None:
        self._buf: np.ndarray | None = None
        self._lock = threading.Lock()
        self._init = init  # run on every newly allocated array (e.g. zero a slack region)

    def get(self, size: int, alloc: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
        """A free cached array of ``size`` floats, else a new one from ``alloc`` (np.empty by default)."""
        with self._lock:
            buf = self._buf
            # references: self._buf, the local name, getrefcount's argument
            if buf is not None and buf.size == size and sys.getrefcount(buf) <= 3:
                return buf
            buf = alloc(size) if alloc is not None else np.empty(size, np.float32)
            if self._init is not None:
                self._init(buf)
            self._buf = buf
            return buf
