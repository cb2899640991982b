"""Float convolution: im2col through stride tricks, then one batched BLAS GEMM call.

x [N, C, H, W] is zero-padded into a kept buffer xp [N, C, Hp, Wp] (Hp = H + 2p), then
copied through an ``as_strided`` view into columns
    cols[n, g, c, u, v, i, j] = xp[n, g Cg + c, i st + u, j st + v]      [N, G, Cg k k, Ho Wo]
and y[n, g Og:(g+1) Og] = W_g [Og, Cg k k] @ cols[n, g] + b, all groups and images in one
``np.matmul`` (OpenBLAS SGEMM per (n, g)) writing straight into the output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._scratch import Scratch

__all__ = ["ConvKernel", "pad_into"]

f32 = np.float32


def pad_into(scratch: Scratch, name: str, x: np.ndarray, pad: int) -> np.ndarray:
    """x [N, C, H, W] zero-padded by ``pad`` on all four sides, in a kept buffer (x itself if pad = 0)."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    xp = scratch.get(name, (n, c, h + 2 * pad, w + 2 * pad), fill=0.0)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    return xp


class ConvKernel:
    """y [N, O, Ho, Wo] = conv(x [N, C, H, W], weight [O, C/G, k, k]) + bias; out_shape = (O, Ho, Wo)."""

    def __init__(self, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 stride: int, pad: int, groups: int) -> None:
        weight = np.asarray(params["weight"], f32)
        o, cg, k, _ = weight.shape
        c, h, w = in_shape
        self.groups, self.stride, self.pad, self.k = groups, stride, pad, k
        self.o, self.og, self.cg = o, o // groups, cg
        self.ho, self.wo = out_shape[1:]
        self.weight = np.ascontiguousarray(weight.reshape(groups, self.og, cg * k * k))  # [G, Og, Cg k k]
        self.bias = np.ascontiguousarray(params["bias"], f32).reshape(1, o, 1, 1)
        self.direct = k == 1 and stride == 1 and pad == 0  # 1x1 conv: the input already is the column matrix
        self.scratch = Scratch()

    def columns(self, x: np.ndarray) -> np.ndarray:
        """im2col: x [N, C, H, W] -> cols [N, G, Cg k k, Ho Wo] (a kept buffer)."""
        n = x.shape[0]
        g, cg, k, st, ho, wo = self.groups, self.cg, self.k, self.stride, self.ho, self.wo
        if self.direct:
            return x.reshape(n, g, cg, ho * wo)
        xp = pad_into(self.scratch, "xp", x, self.pad)
        sn, sc, sh, sw = xp.strides
        view = as_strided(xp, shape=(n, g, cg, k, k, ho, wo),
                          strides=(sn, cg * sc, sc, sh, sw, st * sh, st * sw), writeable=False)
        cols = self.scratch.get("cols", (n, g, cg, k, k, ho, wo))
        np.copyto(cols, view)
        return cols.reshape(n, g, cg * k * k, ho * wo)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        y = np.empty((n, self.o, self.ho, self.wo), f32)
        np.matmul(self.weight, self.columns(x), out=y.reshape(n, self.groups, self.og, self.ho * self.wo))
        y += self.bias
        return y
