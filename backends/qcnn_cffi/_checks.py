"""Argument checks: everything the C kernels receive is validated here first.

A failed check raises :class:`qcnn.errors.QcnnError` with one line naming the layer and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qcnn.plugin import Layer, QcnnError

__all__ = ["check_batch", "empty", "f32", "int32_dims", "ptr", "spatial", "tensor", "windows_out"]

f32 = np.float32
_INT32_MAX = 2**31 - 1


def tensor(layer: Layer, params: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...],
           dtype: type = np.float32) -> np.ndarray:
    """``params[key]`` as a C-contiguous array of exactly ``shape`` and ``dtype``."""
    a = params.get(key)
    if a is None:
        raise QcnnError(f"layer {layer.name}: missing tensor {key!r}")
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise QcnnError(f"layer {layer.name}: tensor {key!r} must be {np.dtype(dtype).name}, got {got}")
    if tuple(a.shape) != tuple(shape):
        raise QcnnError(f"layer {layer.name}: tensor {key!r} has shape {list(a.shape)}, expected {list(shape)}")
    return np.ascontiguousarray(a)


def check_batch(x: Any, in_shape: tuple[int, ...], name: str) -> int:
    """x must be a C-contiguous float32 [N, *in_shape] batch with N >= 1; returns N."""
    if type(x) is not np.ndarray or x.dtype != f32 or not x.flags.c_contiguous:
        what = f"{x.dtype}{'' if x.flags.c_contiguous else ' non-contiguous'}" if isinstance(x, np.ndarray) \
            else type(x).__name__
        raise QcnnError(f"layer {name}: input must be a C-contiguous float32 array, got {what}")
    if x.ndim != len(in_shape) + 1 or x.shape[1:] != in_shape or x.shape[0] < 1:
        want = ", ".join(str(s) for s in in_shape)
        raise QcnnError(f"layer {name}: input has shape {list(x.shape)}, expected [N, {want}] with N >= 1")
    return int(x.shape[0])


def int32_dims(layer: Layer | str, **dims: int) -> None:
    """BLAS and the kernels' offsets take 32-bit ints: every named size of ``layer`` (or the layer
    named so) must fit."""
    for what, n in dims.items():
        if not 0 <= n <= _INT32_MAX:
            name = layer if isinstance(layer, str) else layer.name
            raise QcnnError(f"layer {name}: {what} = {n} is too large for the cffi backend (max {_INT32_MAX})")


def spatial(layer: Layer, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) of a spatial layer's input; QcnnError for any other rank or empty maps."""
    if len(in_shape) != 3 or min(in_shape) < 1:
        raise QcnnError(f"layer {layer.name} ({layer.type}) needs a [C, H, W] input, got {list(in_shape)}")
    c, h, w = (int(s) for s in in_shape)
    return c, h, w


def windows_out(layer: Layer, out_shape: tuple[int, ...], channels: int,
                last_start: tuple[int, int]) -> tuple[int, int]:
    """(Ho, Wo) of a window layer's ``out_shape`` [channels, Ho, Wo]: QcnnError unless the last
    window starts at most ``last_start`` (rows, columns) past the first one's start, so the C code
    reads inside its input whatever shape it is given (the runtime's output shape always passes)."""
    st = layer.stride
    if (len(out_shape) != 3 or int(out_shape[0]) != channels or min(out_shape) < 1
            or (int(out_shape[1]) - 1) * st > last_start[0] or (int(out_shape[2]) - 1) * st > last_start[1]):
        raise QcnnError(f"layer {layer.name}: output shape {list(out_shape)} does not fit its input")
    return int(out_shape[1]), int(out_shape[2])


def ptr(ffi: Any, a: np.ndarray, ctype: str = "float[]") -> Any:
    """A cffi pointer to the data of a C-contiguous array (no copy)."""
    return ffi.from_buffer(ctype, a)


def empty(shape: int | tuple[int, ...], name: str, what: str) -> np.ndarray:
    """``np.empty(shape, float32)``, with a one-line QcnnError instead of a MemoryError."""
    try:
        return np.empty(shape, f32)
    except (MemoryError, ValueError):
        n = int(np.prod(shape, dtype=np.float64))
        raise QcnnError(f"layer {name}: cannot allocate {what} ({4 * n / 2**30:.1f} GiB)") from None
