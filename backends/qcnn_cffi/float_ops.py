"""Float layers on the C kernels: conv (im2col + SGEMM), fc (SGEMV / SGEMM), max pool, relu,
LRN, dropout (copy) and softmax. Semantics are those of :mod:`qcnn.reference`.

Each function is a ``prepare(layer, params, in_shape, out_shape)`` entry of the backend's op
table; output sizes come from ``out_shape`` (the runtime's), checked only to be safe for the C
code (every window starts inside the input it reads)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from qcnn.plugin import Layer, QcnnError

from ._checks import check_batch, f32, int32_dims, ptr, spatial, tensor, windows_out
from ._ext import ffi, lib

__all__ = ["conv", "conv_geometry", "dropout", "fc", "lrn", "max_pool", "relu", "softmax"]

Kernel = Callable[[np.ndarray], np.ndarray]


def conv_geometry(layer: Layer, in_shape: tuple[int, ...],
                  out_shape: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    """(C, H, W, Ho, Wo) of a conv layer, (Ho, Wo) from ``out_shape``; QcnnError if invalid."""
    c, h, w = spatial(layer, in_shape)
    k, st, pad, g = layer.kernel, layer.stride, layer.pad, layer.groups
    if k < 1 or st < 1 or pad < 0 or g < 1 or layer.out < 1:
        raise QcnnError(f"layer {layer.name}: bad conv settings kernel={k} stride={st} pad={pad} groups={g}")
    if c % g or layer.out % g:
        raise QcnnError(f"layer {layer.name}: {c} input and {layer.out} output channels do not split into {g} groups")
    if h + 2 * pad < k or w + 2 * pad < k:
        raise QcnnError(f"layer {layer.name}: kernel {k} is larger than the padded input {h + 2 * pad}x{w + 2 * pad}")
    # the last window ends inside the padded input: every table or im2col read is in bounds
    ho, wo = windows_out(layer, out_shape, layer.out, (h + 2 * pad - k, w + 2 * pad - k))
    return c, h, w, ho, wo


def conv(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
         out_shape: tuple[int, ...]) -> Kernel:
    """x [N, C, H, W] -> y [N, O, Ho, Wo]: per sample and group, im2col then SGEMM onto the bias."""
    c, h, w, ho, wo = conv_geometry(layer, in_shape, out_shape)
    o, k, st, pad, g = layer.out, layer.kernel, layer.stride, layer.pad, layer.groups
    weight = tensor(layer, params, "weight", (o, c // g, k, k))
    bias = tensor(layer, params, "bias", (o,))
    ck = c // g * k * k
    int32_dims(layer, patch=ck, positions=ho * wo, outputs=o)
    direct = k == 1 and st == 1 and pad == 0
    ncol = 0 if direct else ck * ho * wo
    wp, bp = ptr(ffi, weight), ptr(ffi, bias)

    def kernel(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        y = np.empty((n, o, ho, wo), f32)
        col = np.empty(max(ncol, 1), f32)
        lib.qc_conv(ptr(ffi, x), n, c, h, w, wp, bp, o, k, st, pad, g, ho, wo, ptr(ffi, col), ptr(ffi, y))
        return y

    return kernel


def fc(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
       out_shape: tuple[int, ...]) -> Kernel:
    """x [N, ...] flattened to [N, F] -> y = x W^T + b, [N, O] (SGEMV for N = 1, else SGEMM)."""
    f, o = math.prod(in_shape), layer.out
    weight = tensor(layer, params, "weight", (o, f))
    bias = tensor(layer, params, "bias", (o,))
    int32_dims(layer, inputs=f, outputs=o)
    wp, bp = ptr(ffi, weight), ptr(ffi, bias)

    def kernel(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        int32_dims(layer, batch=n)
        y = np.empty((n, o), f32)
        lib.qc_fc(ptr(ffi, x), n, f, wp, bp, o, ptr(ffi, y))
        return y

    return kernel


def max_pool(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
             out_shape: tuple[int, ...]) -> Kernel:
    """x [N, C, H, W] -> [N, C, Ho, Wo] (ceil rounding: ``out_shape``), windows clipped to the image."""
    c, h, w = spatial(layer, in_shape)
    k, st, pad = layer.kernel, layer.stride, layer.pad
    if k < 1 or st < 1 or pad < 0 or h + 2 * pad < k or w + 2 * pad < k:
        raise QcnnError(f"layer {layer.name}: bad pool settings kernel={k} stride={st} pad={pad} for {h}x{w}")
    ho, wo = windows_out(layer, out_shape, c, (h + pad - 1, w + pad - 1))  # windows start inside the image

    def kernel(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        y = np.empty((n, c, ho, wo), f32)
        nscr = max(int(lib.qc_get_threads()), 1)
        scratch = np.empty(nscr * 2 * w, f32)  # per thread: row maxima and window maxima
        lib.qc_max_pool(ptr(ffi, x), n * c, h, w, k, st, pad, ho, wo, ptr(ffi, scratch), nscr, ptr(ffi, y))
        return y

    return kernel


def relu(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
         out_shape: tuple[int, ...]) -> Kernel:
    """max(0, x), any shape."""

    def kernel(x: np.ndarray) -> np.ndarray:
        check_batch(x, in_shape, layer.name)
        y = np.empty_like(x)
        lib.qc_relu(ptr(ffi, x), x.size, ptr(ffi, y))
        return y

    return kernel


def dropout(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
            out_shape: tuple[int, ...]) -> Kernel:
    """Test-time dropout: an identity copy."""

    def kernel(x: np.ndarray) -> np.ndarray:
        check_batch(x, in_shape, layer.name)
        y = np.empty_like(x)
        lib.qc_copy(ptr(ffi, x), x.size, ptr(ffi, y))
        return y

    return kernel


def lrn(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
        out_shape: tuple[int, ...]) -> Kernel:
    """Across channels: y_c = x_c exp(-beta ln(k + alpha / size * sum_{|c'-c| <= (size-1)/2} x_c'^2))."""
    c, h, w = spatial(layer, in_shape)
    if layer.size < 1 or layer.size % 2 == 0:
        raise QcnnError(f"layer {layer.name}: LRN size must be a positive odd number, got {layer.size}")
    alpha = float(f32(layer.alpha / layer.size))
    beta, kk = float(f32(layer.beta)), float(f32(layer.k))

    def kernel(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        y = np.empty_like(x)
        lib.qc_lrn(ptr(ffi, x), n, c, h * w, layer.size, alpha, beta, kk, ptr(ffi, y))
        return y

    return kernel


def softmax(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
            out_shape: tuple[int, ...]) -> Kernel:
    """x [N, ...] flattened to [N, F] -> exp(x - max) / sum exp(x - max) per row."""
    f = math.prod(in_shape)
    if f < 1:
        raise QcnnError(f"layer {layer.name}: softmax of an empty input {list(in_shape)}")

    def kernel(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        y = np.empty((n, f), f32)
        lib.qc_softmax(ptr(ffi, x), n, f, ptr(ffi, y))
        return y

    return kernel
