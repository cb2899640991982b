"""The cheap layers: max pool, ReLU, LRN, dropout, softmax (NCHW float32 batches).

Semantics are those of ``qcnn.reference``; only the evaluation order differs.
"""

from __future__ import annotations

import numpy as np

from ._scratch import Scratch

__all__ = ["PoolKernel", "LrnKernel", "relu", "dropout", "softmax"]

f32 = np.float32


class PoolKernel:
    """Max pool x [N, C, H, W] -> [N, C, Ho, Wo] (out_shape = (C, Ho, Wo), Caffe's ceil rounding).

    Window i covers rows [i st - p, i st - p + k) clipped to [0, H): the input goes into a
    kept buffer padded with -inf (left/top by p, right/bottom as far as the last window
    reaches), and the max is taken separably: first over the k row offsets of strided row
    views, then over the k column offsets (2k ``np.maximum`` calls on whole batches).
    """

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], kernel: int, stride: int,
                 pad: int) -> None:
        _, h, w = in_shape
        self.k, self.st, self.pad, self.h, self.w = kernel, stride, pad, h, w
        self.ho, self.wo = out_shape[1:]
        self.hp = max((self.ho - 1) * stride + kernel, h + pad)  # padded extent the windows read
        self.wp = max((self.wo - 1) * stride + kernel, w + pad)
        self.scratch = Scratch()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c = x.shape[:2]
        k, st, ho, wo, p = self.k, self.st, self.ho, self.wo, self.pad
        if p == 0 and self.hp == self.h and self.wp == self.w:
            xp = x
        else:
            xp = self.scratch.get("xp", (n, c, self.hp, self.wp), fill=-np.inf)
            xp[:, :, p:p + self.h, p:p + self.w] = x
        rows = self.scratch.get("rows", (n, c, ho, self.wp))
        np.copyto(rows, xp[:, :, 0:(ho - 1) * st + 1:st])
        for u in range(1, k):
            np.maximum(rows, xp[:, :, u:u + (ho - 1) * st + 1:st], out=rows)
        y = np.empty((n, c, ho, wo), f32)
        np.copyto(y, rows[:, :, :, 0:(wo - 1) * st + 1:st])
        for v in range(1, k):
            np.maximum(y, rows[:, :, :, v:v + (wo - 1) * st + 1:st], out=y)
        return y


class LrnKernel:
    """Across-channel LRN, x [N, C, H, W] -> same shape:
    y_c = x_c exp(-beta ln(k + alpha / n * sum_{|c' - c| <= r} x_{c'}^2)), r = (n - 1) / 2.

    The window sums are ``size`` shifted slices of the squares, zero-padded by r channels
    on both sides, added in float32: window[c] = sum_{j < size} sqpad[c + j]. (A running
    cumulative sum would need one add less per element, but differences of large prefix
    sums cancel catastrophically when a quiet channel follows loud ones.) The power is
    exp(-beta ln(scale)), as in the original code.
    """

    def __init__(self, in_shape: tuple[int, ...], size: int, alpha: float, beta: float, k: float) -> None:
        self.r = (size - 1) // 2
        self.size, self.scale, self.beta, self.k = size, np.float32(alpha / size), np.float32(-beta), np.float32(k)
        self.scratch = Scratch()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        r, hw = self.r, h * w
        xf = x.reshape(n, c, hw)
        sqpad = self.scratch.get("sqpad", (n, c + 2 * r, hw), fill=0.0)  # borders stay 0
        np.multiply(xf, xf, out=sqpad[:, r:r + c])
        y = sqpad[:, 0:c].copy()
        for j in range(1, self.size):
            y += sqpad[:, j:j + c]
        y *= self.scale
        y += self.k
        np.log(y, out=y)
        y *= self.beta
        np.exp(y, out=y)
        y *= xf
        return y.reshape(n, c, h, w)


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), any shape; a fresh array."""
    return np.maximum(x, f32(0))


def dropout(x: np.ndarray) -> np.ndarray:
    """Test-time dropout: an identity copy."""
    return x.copy()


def softmax(x: np.ndarray) -> np.ndarray:
    """x [N, ...] flattened to [N, O] -> exp(x - max) / sum exp(x - max) per row."""
    x = x.reshape(x.shape[0], -1)
    e = x - x.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e
