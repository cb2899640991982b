"""Reusable work buffers (padded inputs, im2col columns), one set per thread.

Kernels keep their scratch arrays between calls so that big buffers are not allocated
(and page-faulted) on every call. Buffers are thread-local, so one prepared kernel may be
called from several threads at once. Kernel *outputs* are never scratch: each call returns
a fresh array.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Scratch"]


class Scratch:
    """Per-thread work buffers of one kernel, by name; a new shape (batch size) replaces the old buffer."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, name: str, shape: tuple[int, ...], fill: float | None = None,
            dtype: type = np.float32) -> np.ndarray:
        """A buffer of ``shape``; new buffers are filled with ``fill`` (or left uninitialised).

        Callers that ask for a ``fill`` must only ever write the part they overwrite on
        every call (e.g. the interior of a zero-padded image), so the fill survives.
        """
        bufs: dict[str, np.ndarray] = self._local.__dict__.setdefault("bufs", {})
        buf = bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            bufs[name] = buf
        return buf
