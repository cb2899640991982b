"""Quantized convolution, the Quantized-CNN way: a look-up table by GEMM, then sums of table rows.

Layout. The zero-padded input xp [N, C, Hp, Wp] (Hp = H + 2p, rounded up to a multiple of
the stride st) is split into st x st *phases* of Hs x Ws pixels, Hs = ceil(Hp / st):
    xph[n, g, c, a, b, i, j] = xp[n, g Cg + c, i st + a, j st + b],
with each group's channels zero-filled up to S D (the last subspace may be partial; zero
channels add nothing, as the reference's "first Cg - sD components" rule requires).

Stage 1 (table): one batched GEMM per (n, g, s),
    T[n, g, s, k, a, b, i, j] = sum_d codebook[s, k, d] xph[n, g, s D + d, a, b, i, j],
i.e. the LUT of every (padded) input pixel against every sub-codeword. Each
(g, s, k, a, b) is a *plane* of Hs Ws floats.

Stage 2 (look-up): for output channel o (group g), tap (u, v) and subspace s the code
c = codes[o, u, v, s] is the same at every output position, and output (i, j) reads plane
P = (g, s, c, u % st, v % st) at (i + u // st, j + v // st). Keeping outputs in the phase
row width Ws, the whole output plane is the contiguous run of L = (Ho - 1) Ws + Wo floats
of the flat table that starts at P Hs Ws + (u // st) Ws + v // st. An overlapping
``as_strided`` view V[t] = T_flat[t : t + L] turns every (o, u, v, s) into one row of V, so
    Y_ext[o] = sum_{u, v, s} V[start[(u, v, s), o]]                 [O, L]
is a fancy-indexed row gather plus a reduction, done in cache-sized blocks of output
channels and groups of (u, v, s) that read the same part of the table; then
y[n, o, i, j] = b[o] + Y_ext[o, i Ws + j] for j < Wo. Columns j >= Wo of Y_ext are junk
(reads that wrapped into the next row) and are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

from qcnn.reference import decode_conv_weight

from ._scratch import Scratch
from .conv import ConvKernel

__all__ = ["QConvTable", "QConvLookup", "DenseQConv"]

f32 = np.float32

#: Target size in bytes of one gathered chunk [taps, O_block, L] (well within the L2 cache),
#: and the most taps reduced in one step.
CHUNK_BYTES = 512 << 10
MAX_TAPS = 64


class QConvGeometry:
    """Shapes shared by the two stages of one quantized conv layer."""

    def __init__(self, codebook: np.ndarray, codes: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 stride: int, pad: int, groups: int) -> None:
        c, h, w = in_shape
        self.s, self.kk, self.d = codebook.shape          # S subspaces, K codewords, D dims
        self.o, self.k = codes.shape[0], codes.shape[1]
        self.g, self.cg, self.og = groups, c // groups, codes.shape[0] // groups
        self.st, self.pad, self.h, self.w = stride, pad, h, w
        self.ho, self.wo = out_shape[1:]
        self.hs = -(-(h + 2 * pad) // stride)             # phase plane height
        self.ws = -(-(w + 2 * pad) // stride)
        self.plane = self.hs * self.ws
        self.planes = groups * self.s * self.kk * stride * stride  # per image
        self.length = (self.ho - 1) * self.ws + self.wo   # L: one output plane in phase-row layout


class QConvTable:
    """Stage 1: x [N, C, H, W] -> T [N, G S K st st, Hs Ws] (fresh array), the LUT of every padded pixel."""

    def __init__(self, geo: QConvGeometry, codebook: np.ndarray) -> None:
        self.geo = geo
        self.codebook = np.ascontiguousarray(codebook, f32)  # [S, K, D]
        self.scratch = Scratch()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q = self.geo
        n, st = x.shape[0], q.st
        # zero-padded input, channels per group filled up to S D, rows/cols up to st Hs, st Ws
        xb = self.scratch.get("xb", (n, q.g, q.s * q.d, q.hs * st, q.ws * st), fill=0.0)
        xb[:, :, :q.cg, q.pad:q.pad + q.h, q.pad:q.pad + q.w] = x.reshape(n, q.g, q.cg, q.h, q.w)
        if st == 1:
            xph = xb
        else:
            xph = self.scratch.get("xph", (n, q.g, q.s * q.d, st, st, q.hs, q.ws))
            np.copyto(xph, xb.reshape(n, q.g, q.s * q.d, q.hs, st, q.ws, st).transpose(0, 1, 2, 4, 6, 3, 5))
        table = np.empty((n, q.planes, q.plane), f32)
        np.matmul(self.codebook, xph.reshape(n, q.g, q.s, q.d, st * st * q.plane),
                  out=table.reshape(n, q.g, q.s, q.kk, st * st * q.plane))
        return table


class QConvLookup:
    """Stage 2: T [N, G S K st st, Hs Ws] -> y [N, O, Ho, Wo], y = b + sum of table rows picked by the codes."""

    def __init__(self, geo: QConvGeometry, codes: np.ndarray, bias: np.ndarray) -> None:
        self.geo = q = geo
        self.bias = np.ascontiguousarray(bias, f32).reshape(q.o, 1, 1)
        st = q.st
        u = np.arange(q.k).reshape(q.k, 1, 1, 1)
        v = np.arange(q.k).reshape(1, q.k, 1, 1)
        s = np.arange(q.s).reshape(1, 1, q.s, 1)
        g = (np.arange(q.o) // q.og).reshape(1, 1, 1, q.o)
        code = np.asarray(codes).transpose(1, 2, 3, 0).astype(np.intp)  # [k, k, S, O]
        plane = ((((g * q.s + s) * q.kk + code) * st + u % st) * st + v % st)
        start = plane * q.plane + (u // st) * q.ws + v // st
        starts = start.reshape(q.k * q.k * q.s, q.o)  # [J, O]: row of V for each j = (u, v, s) and o
        # Schedule. Taps of the same subspace s and stride phase (u % st, v % st) read rows
        # of the same K planes, a compact part of the table; visiting the table one such
        # part at a time keeps it in cache, while the accumulator [O, L] is revisited.
        # Small groups (3 x 3 taps) take several subspaces at once, for fewer, bigger reductions.
        tap = np.arange(q.k)
        per_phase = (-(-q.k // st)) ** 2
        subs = max(1, MAX_TAPS // per_phase)
        groups = []
        for sub in range(0, q.s, subs):
            for a in range(st):
                for b in range(st):
                    taps = (tap[tap % st == a][:, None] * q.k + tap[tap % st == b][None, :]).ravel()
                    js = (taps[None, :] * q.s + np.arange(sub, min(sub + subs, q.s))[:, None]).ravel()
                    groups += [js[i:i + MAX_TAPS] for i in range(0, js.size, MAX_TAPS)]
        longest = max(len(js) for js in groups)
        ob = int(min(q.o, max(1, CHUNK_BYTES // (longest * q.length * 4))))
        #: (o0, o1, row index [taps, o1 - o0], first) in order; ``first`` steps initialise their block
        self.steps = [(o0, min(o0 + ob, q.o), np.ascontiguousarray(starts[js, o0:o0 + ob], np.intp), i == 0)
                      for i, js in enumerate(groups) for o0 in range(0, q.o, ob)]
        self.ob = ob

    def __call__(self, table: np.ndarray) -> np.ndarray:
        q = self.geo
        n = table.shape[0]
        y = np.empty((n, q.o, q.ho, q.wo), f32)
        acc = np.empty((q.o, q.ho * q.ws), f32)
        run = acc[:, :q.length]
        part = np.empty((self.ob, q.length), f32)
        for i in range(n):
            flat = table[i].reshape(-1)
            rows = as_strided(flat, shape=(flat.size - q.length + 1, q.length), strides=(4, 4), writeable=False)
            for o0, o1, idx, first in self.steps:
                if first:
                    np.add.reduce(rows[idx], axis=0, out=run[o0:o1])
                else:
                    np.add.reduce(rows[idx], axis=0, out=part[:o1 - o0])
                    run[o0:o1] += part[:o1 - o0]
            np.add(acc.reshape(q.o, q.ho, q.ws)[:, :, :q.wo], self.bias, out=y[i])
        return y


class DenseQConv:
    """For comparison only (not the default): decode the codes to dense weights once, then float conv.

    W[o, sD + d, u, v] = codebook[s, codes[o, u, v, s], d]; this skips the LUT entirely.
    """

    def __init__(self, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 stride: int, pad: int, groups: int) -> None:
        weight = decode_conv_weight(params["codebook"], params["codes"], in_shape[0] // groups)
        self.conv = ConvKernel({"weight": weight, "bias": params["bias"]}, in_shape, out_shape, stride, pad, groups)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.conv(x)
