"""Float convolution and fc helpers: im2col and bias addition (the GEMMs run in BLAS).

im2col for one image: x [C, H, W] -> cols [C k k, Ho Wo] with
cols[(c k + u) k + v, i Wo + j] = x[c, i st + u - p, j st + v - p] (0 outside the image),
so that y_g = W_g [O/G, Cg k k] @ cols_g is the convolution of group g.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["im2col", "add_bias_planes", "add_bias_rows"]


@njit(cache=True, parallel=True)
def im2col(x: np.ndarray, k: int, st: int, pad: int, ho: int, wo: int, cols: np.ndarray) -> None:
    """x [C, H, W] -> cols [C*k*k, Ho*Wo] (every entry written)."""
    ch, h, w = x.shape
    for row in prange(ch * k * k):
        c = row // (k * k)
        u = (row // k) % k
        v = row % k
        dst = cols[row]
        for i in range(ho):
            a = i * st + u - pad
            base = i * wo
            if a < 0 or a >= h:
                for j in range(wo):
                    dst[base + j] = 0.0
                continue
            src = x[c, a]
            for j in range(wo):
                b = j * st + v - pad
                dst[base + j] = src[b] if 0 <= b < w else np.float32(0.0)


@njit(cache=True, parallel=True)
def add_bias_planes(y: np.ndarray, bias: np.ndarray) -> None:
    """y [N, O, L] += bias[o] over each plane, in place."""
    n_img, n_out, length = y.shape
    for job in prange(n_img * n_out):
        n = job // n_out
        o = job % n_out
        b = bias[o]
        row = y[n, o]
        for j in range(length):
            row[j] += b


@njit(cache=True)
def add_bias_rows(y: np.ndarray, bias: np.ndarray) -> None:
    """y [N, O] += bias, in place."""
    for n in range(y.shape[0]):
        for o in range(y.shape[1]):
            y[n, o] += bias[o]
