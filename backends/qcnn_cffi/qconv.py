"""Quantized conv on the C kernels, staged as the paper's table building and look-up.

Table: the input is zero-padded and split into st x st stride phases, xq [N, C, P, Hq, Wq]
(P = st^2, Hq = ceil((H + 2p) / st)); then per (sample, group g, subspace s) one SGEMM gives
    T[n, g, s] [K, P Hq Wq] = codebook[s][:, :dv] @ xq[n, g Cg + s D : g Cg + s D + dv],
with dv = min(D, Cg - s D). Look-up: y[n, o, i, j] = b[o] + sum_{u, v, s} T[n, g, s, A[o,u,v,s],
phase(u, v), i + u // st, j + v // st], phase(u, v) = (u % st) st + v % st, as contiguous vector
adds over the flat positions i Wq + j (see ``csrc/qc_qconv.c``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qcnn.backend import StagedKernel
from qcnn.errors import QcnnError
from qcnn.spec import Layer

from ._checks import check_batch, f32, int32_dims, ptr, tensor
from ._ext import ffi, lib
from .float_ops import conv_geometry

__all__ = ["qconv", "ConvTable"]


@dataclass
class ConvTable:
    """Output of the table stage: ``data`` = N tables of ``tsize`` floats, then zeroed slack."""

    data: np.ndarray
    n: int
    owner: object


def qconv(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...]) -> StagedKernel:
    """A staged kernel x [N, C, H, W] -> y [N, O, Ho, Wo] for a product-quantized conv."""
    c, h, w, ho, wo = conv_geometry(layer, in_shape)
    assert layer.quant is not None
    o, k, st, pad, groups = layer.out, layer.kernel, layer.stride, layer.pad, layer.groups
    d, kk = layer.quant.D, layer.quant.K
    cg, og = c // groups, o // groups
    s = layer.quant.subspaces(cg)
    codebook = tensor(layer, params, "codebook", (s, kk, d))
    codes = tensor(layer, params, "codes", (o, k, k, s), np.uint8)
    bias = tensor(layer, params, "bias", (o,))
    if codes.size and int(codes.max()) >= kk:
        raise QcnnError(f"layer {layer.name}: code {int(codes.max())} is out of range for K = {kk}")

    p_ = st * st
    hq, wq = -(-(h + 2 * pad) // st), -(-(w + 2 * pad) // st)
    plane = hq * wq
    gsize = s * kk * p_ * plane  # floats per group table
    tsize = groups * gsize
    vl, r = int(lib.qc_conv_chunk()), int(lib.qc_conv_r())
    lr = -(-(ho * wq) // vl) * vl  # flat positions computed per channel, rounded to whole vectors
    int32_dims(layer, table_columns=p_ * plane, group_table=gsize + lr, codewords=kk, dims=d)

    # register tiles of R output channels, never straddling a group; a short last tile repeats
    # its last channel (computed, not stored)
    tiles = [(g, o0, min(r, (g + 1) * og - o0)) for g in range(groups) for o0 in range(g * og, (g + 1) * og, r)]
    ntiles = len(tiles)
    chan = np.array([[o0 + min(i, rc - 1) for i in range(r)] for _, o0, rc in tiles], np.int64)  # [ntiles, R]
    uu, vv, ss = np.meshgrid(np.arange(k), np.arange(k), np.arange(s), indexing="ij")  # tap order (u, v, s)
    tap_off = ((ss * kk) * p_ + (uu % st) * st + vv % st) * plane + (uu // st) * wq + vv // st  # [k, k, s]
    code_off = codes.astype(np.int64) * (p_ * plane)  # [O, k, k, S]
    offs = (tap_off[None] + code_off).reshape(o, k * k * s)  # [O, ntaps]
    offs_t = np.ascontiguousarray(offs[chan].transpose(0, 2, 1)).astype(np.int32)  # [ntiles, ntaps, R]
    bias_t = np.ascontiguousarray(bias[chan])
    tile_g = np.array([t[0] for t in tiles], np.int32)
    tile_o0 = np.array([t[1] for t in tiles], np.int32)
    tile_rc = np.array([t[2] for t in tiles], np.int32)
    # reads of one sample end below (G-1) gsize + max offset + lr; the slack after the last table
    # covers the overshoot (it only feeds dropped columns / channels)
    slack = max(0, (groups - 1) * gsize + int(offs.max()) + lr - tsize) + vl
    ntaps = k * k * s
    ptrs = dict(cb=ptr(ffi, codebook), offs=ptr(ffi, offs_t, "int32_t[]"), bias=ptr(ffi, bias_t),
                g=ptr(ffi, tile_g, "int32_t[]"), o0=ptr(ffi, tile_o0, "int32_t[]"), rc=ptr(ffi, tile_rc, "int32_t[]"))
    owner = object()
    direct = st == 1 and pad == 0  # x is already its own padded, single-phase layout

    def table(x: np.ndarray) -> ConvTable:
        n = check_batch(x, in_shape, layer.name)
        if direct:
            xq = x
        else:
            xq = np.empty((n, c, p_, hq, wq), f32)
            lib.qc_pad_phase(ptr(ffi, x), n, c, h, w, pad, st, hq, wq, ptr(ffi, xq))
        data = np.empty(n * tsize + slack, f32)
        data[n * tsize:] = 0.0
        lib.qc_qconv_table(ptr(ffi, xq), n, c, groups, p_, plane, ptrs["cb"], s, kk, d, ptr(ffi, data))
        return ConvTable(data, n, owner)

    def lookup(t: ConvTable) -> np.ndarray:
        if not isinstance(t, ConvTable) or t.owner is not owner:
            raise QcnnError(f"layer {layer.name}: look-up needs the table this layer built")
        data, n = t.data, t.n
        if (type(data) is not np.ndarray or data.dtype != f32 or not data.flags.c_contiguous
                or data.ndim != 1 or n < 1 or data.size != n * tsize + slack):
            raise QcnnError(f"layer {layer.name}: the look-up table was modified")
        y = np.empty((n, o, ho, wo), f32)
        scratch = np.empty(ntiles * r * lr, f32)
        lib.qc_qconv_lookup(ptr(ffi, data), n, tsize, gsize, ntiles, ptrs["o0"], ptrs["rc"], ptrs["g"],
                            ptrs["offs"], ntaps, ptrs["bias"], lr, wq, o, ho, wo,
                            ptr(ffi, scratch), scratch.size, ptr(ffi, y))
        return y

    return StagedKernel(table=table, lookup=lookup)
