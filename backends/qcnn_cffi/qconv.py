"""Quantized conv on the C kernels, staged as the paper's table building and look-up.

Table: the input is zero-padded and split into st x st stride phases, xq [N, C, Hq, P, Wq]
(P = st^2, Hq = ceil((H + 2p) / st)); then per (sample, group g, subspace s, row i) one SGEMM gives
    T[n, g, s, i] [K, P Wq] = codebook[s][:, :dv] @ xq[n, g Cg + s D : g Cg + s D + dv, i],
with dv = min(D, Cg - s D), so T is [N, G, S, Hq, K, P, Wq] (by default the same small GEMMs
are computed by explicit SIMD FMAs, see :data:`TABLE_SIMD`; a code's P Wq values are followed by
a cache line of zeros when P Wq is a multiple of 1 KB, see :func:`code_stride`). Look-up:
    y[n, o, i, j] = b[o] + sum_{u, v, s} T[n, g, s, i + u // st, A[o,u,v,s], phase(u, v), j + v // st],
phase(u, v) = (u % st) st + v % st, as contiguous vector adds along j (see ``csrc/qc_qconv.c``).
(Layers with output rows wider than a vector pad Wq to whole vectors, see :data:`PAD_WIDTH`.)

The kernel is a :class:`FusedQConv`: ``table``/``lookup`` are the two stages above (for stage
timing), but its call runs ``qc_qconv_fused``, which builds table row rho of every (group,
subspace), [G, S, K, P, Wq] (AlexNet: 190-520 KB), into a per-thread buffer just before the
look-ups that read it, so the table never goes to memory (conv1's full table is 27 MB). Same
values and the same summation order as the table-row-major look-up: bit-identical results.
Narrow stride-1 layers (Wo <= one vector, AlexNet conv3-5) instead take the band path
(``qc_qconv_band``, :data:`BAND`): per subspace, the table of a band of output rows is built into
L1 and every channel adds its taps with one offset per band row; another summation order, within
float rounding of the stages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from qcnn.plugin import Layer, QcnnError, StagedKernel

from ._buffers import BufferCache
from ._checks import check_batch, empty, f32, int32_dims, ptr, tensor
from ._ext import ffi, lib
from .float_ops import conv_geometry

__all__ = ["qconv", "ConvTable", "FusedQConv"]


@dataclass
class ConvTable:
    """Output of the table stage: ``data`` = N tables of ``tsize`` floats, then zeroed slack."""

    data: np.ndarray
    n: int
    owner: object


@dataclass
class FusedQConv(StagedKernel):
    """A quantized conv whose call fuses the two stages: ``fused(x)`` x [N, C, H, W] -> y
    [N, O, Ho, Wo] builds each table row (or, on the band path, each band table) right before the
    look-ups that read it; row-fused results are bit-identical to ``lookup(table(x))`` with the
    SIMD table builder and the table-row-major look-up, band-path results agree to float rounding.
    ``table``/``lookup`` stay for stage timing; ``fused`` None = the staged call."""

    fused: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.fused is None:
            return self.lookup(self.table(x))
        return self.fused(x)


#: Kernel call: 1 (default) = fused table rows + look-up (:func:`qc_qconv_fused`, the table stays in
#: L2), 0 = the staged ``lookup(table(x))``. ``QCNN_CFFI_FUSED=0`` selects the staged call.
FUSED = 0 if os.environ.get("QCNN_CFFI_FUSED", "1") == "0" else 1

#: Layers with output rows wider than one vector: round the phase width Wq up to whole vectors
#: (zero columns), so table rows are built without masked tails or line-splitting stores, and
#: taps with no column shift load aligned vectors. Measured: AlexNet conv2 (Wq 31 -> 32) 6%
#: faster, conv1 (57 -> 64) 1-3%; conv3-5 (15 -> 16, one-vector rows) 4% slower, hence not for
#: those (they take the band path anyway). ``QCNN_CFFI_PAD_WIDTH=0`` keeps Wq = ceil((W + 2 pad) / st).
PAD_WIDTH = 0 if os.environ.get("QCNN_CFFI_PAD_WIDTH", "1") == "0" else 1

#: The fused call's blocking (the table row is in L2 there, not memory, so the trade-off between
#: table blocks in L1 and partial-sum traffic differs from the staged look-up's): tap groups of at
#: least FUSED_MIN_TAPS taps, channel tiles whose partial sums take FUSED_ACC_BUDGET bytes per pass.
#: Measured: AlexNet conv2 2.04 -> 1.91 ms (conv1 unchanged) against the staged defaults.
FUSED_MIN_TAPS = int(os.environ.get("QCNN_CFFI_FUSED_MIN_TAPS", "10"))
FUSED_ACC_BUDGET = int(os.environ.get("QCNN_CFFI_FUSED_ACC_BYTES", str(16 * 1024)))

#: Narrow stride-1 layers (output rows of one vector, AlexNet conv3-5): 1 (default) = the band
#: path (``qc_qconv_band``: per subspace a band table of BAND_ROWS output rows + k - 1 input rows,
#: within BAND_BYTES, built into L1 and consumed by every channel, one offset per band row);
#: 0 = the row-fused path. ``QCNN_CFFI_BAND=0`` selects the latter.
BAND = 0 if os.environ.get("QCNN_CFFI_BAND", "1") == "0" else 1
BAND_BYTES = 40 * 1024
BAND_ROWS = 4

#: Band path tiles: 1 (default, SIMD builds, rows of one vector) = rotated tiles: every table load
#: aligned, each column shift applied once to the partial sum of its taps (a load straddling two
#: cache lines costs ~1.5 aligned ones here; AlexNet conv3-5 measured ~20% faster); 0 = shifted
#: loads (8-channel tiles). ``QCNN_CFFI_BAND_ROTATE=0`` selects the latter.
BAND_ROTATE = 0 if os.environ.get("QCNN_CFFI_BAND_ROTATE", "1") == "0" else 1

#: Row-fused path (other layers, e.g. AlexNet conv1, conv2): 1 (default, SIMD builds, rows of whole
#: vectors) = rotated tiles: aligned loads, every tap group split by column shift, each shift
#: applied once to its group's partial sums by a two-vector permute; 0 = shifted loads.
#: ``QCNN_CFFI_FUSED_ROTATE=0`` selects the latter.
FUSED_ROTATE = 0 if os.environ.get("QCNN_CFFI_FUSED_ROTATE", "1") == "0" else 1
#: ... used when the shift groups average at least this many taps (the permutes and the smaller
#: tiles are paid per group): AlexNet conv1 (16 phases, ~13 taps per group) 3.5 -> 2.95 ms;
#: conv2 (one phase, 2 taps per group) would go 2.0 -> 2.9 ms, so it keeps shifted loads.
FUSED_ROT_MIN_TAPS = 6
ROT_ROWS = 3  # rows per rotated tile (qc_qconv_band's VROT)

#: Table building: 1 (default) = register-blocked SIMD FMAs (the dv input vectors stay in
#: registers while all K codewords stream past; code-major for long rows); 0 = one OpenBLAS SGEMM
#: [K x dv] x [dv x P Wq] per (subspace, row). SIMD measured 1.2x (conv2-5) to 4x (conv1) faster
#: than OpenBLAS' small-matrix path here. ``QCNN_CFFI_TABLE=blas`` selects SGEMM.
TABLE_SIMD = 0 if os.environ.get("QCNN_CFFI_TABLE", "simd").lower() == "blas" else 1

#: Output rows per register tile when a row is narrow (conv3-5: 13 columns = 1 vector). Sharing
#: each offset load between rows measured slower here (the rows' table blocks crowd L1), so 1.
ROW_BLOCK = int(os.environ.get("QCNN_CFFI_ROW_BLOCK", "1"))

#: Look-up order: "table" (default: table-row-major, each table row is read once while the
#: output rows it feeds accumulate), "output" (output-row-major: each output row reads its
#: kr = ceil(k / st) table rows), or "auto" ("table" when those kr rows exceed
#: TABLE_ROW_MAJOR_BYTES). "table" measured 5-10% faster on every AlexNet conv here.
LOOKUP_ORDER = os.environ.get("QCNN_CFFI_LOOKUP_ORDER", "table")
TABLE_ROW_MAJOR_BYTES = 1 << 20

#: Bytes of partial sums one pass over a table row keeps (the rest of L1 holds the table block).
ACC_BUDGET = int(os.environ.get("QCNN_CFFI_ACC_BYTES", str(1 << 30)))

#: Bytes of table rows one tap group may touch (most of a 48 KB L1 data cache), unless the group
#: has fewer than MIN_TAPS taps: each group costs a load and store of the partial sums, which
#: a few taps do not amortise (AlexNet conv1: 3 taps per 29 KB block). Measured here.
L1_BUDGET = 40 * 1024
MIN_TAPS = 12


def _tap_groups(k: int, st: int, s: int, block_bytes: int, rb: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Tap order and groups for cache blocking.

    Returns taps [ntaps, 3] as (u, v, s) rows, sorted by (s, v % st, u, v), and gstart
    [ngroups + 1]: group g is taps gstart[g] .. gstart[g+1]-1. A group has one subspace and one
    column phase; it spans consecutive tap rows u as long as their table blocks (one row of K
    codes each, ``block_bytes``) fit in :data:`L1_BUDGET` (always at least one row); ``rb`` output
    rows at once read ``rb - 1`` more table rows.
    """
    rows_per_group = max(1, L1_BUDGET // max(block_bytes, 1) - (rb - 1))
    taps: list[tuple[int, int, int]] = []
    gstart = [0]
    for sub in range(s):
        for px in range(min(st, k)):
            for u0 in range(0, k, rows_per_group):
                for u in range(u0, min(k, u0 + rows_per_group)):
                    taps.extend((u, v, sub) for v in range(px, k, st))
                gstart.append(len(taps))
    return np.array(taps, np.int64).reshape(-1, 3), np.array(gstart, np.int32)


def _tap_groups_tr(k: int, st: int, s: int, block_bytes: int,
                   min_taps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tap order and groups for the table-row-major look-up.

    A block is (subspace s, phase row py, phase column px): one table row of K codes,
    ``block_bytes``. Blocks are merged into sets while they fit in :data:`L1_BUDGET` (or the set
    has fewer than :data:`MIN_TAPS` taps per tap-row offset); each set then gives one group per
    tap-row offset du = u // st (taps u = du st + py, v = px, px + st, ...), consecutively, so the
    set's table lines are reused from L1 by all du. Returns taps [ntaps, 3] as (u, v, s),
    gstart [ngroups + 1] and gdu [ngroups]. ``min_taps`` overrides :data:`MIN_TAPS`.
    """
    min_taps = MIN_TAPS if min_taps is None else min_taps
    kr = -(-k // st)
    blocks = [(sub, py, px) for sub in range(s) for py in range(min(st, k)) for px in range(min(st, k))]
    per_block = [len(range(px, k, st)) for _, _, px in blocks]  # taps of a block for one du
    sets: list[list[tuple[int, int, int]]] = [[]]
    used = ntap = 0
    for blk, nt in zip(blocks, per_block):
        if sets[-1] and used + block_bytes > L1_BUDGET and ntap >= min_taps:
            sets.append([])
            used = ntap = 0
        sets[-1].append(blk)
        used += block_bytes
        ntap += nt
    taps: list[tuple[int, int, int]] = []
    gstart, gdu = [0], []
    for blkset in sets:
        for du in range(kr):
            for sub, py, px in blkset:
                u = du * st + py
                if u < k:
                    taps.extend((u, v, sub) for v in range(px, k, st))
            if len(taps) > gstart[-1]:
                gstart.append(len(taps))
                gdu.append(du)
    return (np.array(taps, np.int64).reshape(-1, 3), np.array(gstart, np.int32), np.array(gdu, np.int32))


def _channel_tiles(groups: int, og: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Register tiles of ``r`` output channels, group-major, never straddling a group: (chan
    [ntiles, r], and int32 [ntiles] each: tile_g (group), tile_o0 (first channel), tile_rc
    (channel count)); a short last tile repeats its last channel (computed, not stored)."""
    tiles = [(g, o0, min(r, (g + 1) * og - o0)) for g in range(groups) for o0 in range(g * og, (g + 1) * og, r)]
    chan = np.array([[o0 + min(i, rc - 1) for i in range(r)] for _, o0, rc in tiles], np.int64).reshape(-1, r)
    tile_g, tile_o0, tile_rc = (np.array([t[i] for t in tiles], np.int32) for i in range(3))
    return chan, tile_g, tile_o0, tile_rc


def _split_by_shift(taps: np.ndarray, gstart: np.ndarray, gdu: np.ndarray,
                    st: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split every tap group into one group per column shift dv = v // st (ascending), for the
    rotated fused tiles: (taps [ntaps, 3], gstart [ngroups + 1], gdu [ngroups], gdv [ngroups])."""
    out, starts, dus, dvs = [], [0], [], []
    for g in range(len(gstart) - 1):
        grp = taps[gstart[g]:gstart[g + 1]]
        shift = grp[:, 1] // st
        for dv in np.unique(shift):
            out.append(grp[shift == dv])
            starts.append(starts[-1] + len(out[-1]))
            dus.append(gdu[g])
            dvs.append(dv)
    return (np.concatenate(out), np.array(starts, np.int32), np.array(dus, np.int32), np.array(dvs, np.int32))


def code_stride(pw: int, vl: int) -> int:
    """Floats between consecutive codes' rows in a table row: ``pw`` (= P Wq, the row's values),
    plus one cache line when that is a multiple of 1 KB. Codes a multiple of 4 KB apart (AlexNet
    conv1: 16 phases x 64 columns) map to the same few L1 sets, so a (row, phase) block of all K
    codes could never be held in L1 at once."""
    return pw + max(vl, 16) if (pw * 4) % 1024 == 0 else pw


def _phase_split(x: np.ndarray, layer: Layer, chw: tuple[int, int, int], st: int,
                 hqwq: tuple[int, int]) -> np.ndarray:
    """x [N, C, H, W] zero-padded by ``layer.pad`` and split into its st*st stride phases,
    [N, C, Hq, st*st, Wq] (the layout ``qc_pad_phase`` writes)."""
    (c, h, w), (hq, wq) = chw, hqwq
    n = x.shape[0]
    xq = empty((n, c, hq, st * st, wq), layer.name, "the padded input")
    lib.qc_pad_phase(ptr(ffi, x), n, c, h, w, layer.pad, st, hq, wq, ptr(ffi, xq))
    return xq


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
    vl = int(lib.qc_conv_chunk())
    if PAD_WIDTH and wo > vl:
        wq = -(-wq // vl) * vl  # whole vectors per table row: no masked tails, aligned dv = 0 taps
    cs = code_stride(p_ * wq, vl)  # floats per code in a table row
    rowstride = kk * cs  # floats per table row (all codes and phases of one phase row)
    gsize = s * hq * rowstride  # floats per group table
    tsize = groups * gsize
    r = int(lib.qc_conv_r())
    int32_dims(layer, table_columns=p_ * wq, group_table=gsize + rowstride, codewords=kk, dims=d,
               input_rows=c * hq * p_ * wq)

    chan, tile_g, tile_o0, tile_rc = _channel_tiles(groups, og, r)
    ntiles = len(chan)
    nvrow = -(-wo // vl)
    rb = max(1, int(lib.qc_conv_width()) // vl // nvrow) if nvrow * vl <= int(lib.qc_conv_width()) else 1
    rb = min(rb, ROW_BLOCK, ho)
    kr = -(-k // st)  # table rows one output row reads
    table_rows_major = LOOKUP_ORDER == "table" or (
        LOOKUP_ORDER == "auto" and kr * s * kk * p_ * wq * 4 > TABLE_ROW_MAJOR_BYTES)
    if table_rows_major:
        rb = min(ROW_BLOCK, int(lib.qc_conv_width()) // vl) if nvrow == 1 else 1
        # channel tiles per pass: their partial sums (R * nvrow vectors each) take at most ACC_BUDGET
        tchunk = max(1, ACC_BUDGET // (r * nvrow * vl * 4 * rb))
        taps, gstart, gdu = _tap_groups_tr(k, st, s, kk * wq * 4 * rb)
    else:
        taps, gstart = _tap_groups(k, st, s, kk * wq * 4, rb)
        gdu = np.zeros(len(gstart) - 1, np.int32)
    tu, tv, ts = taps[:, 0], taps[:, 1], taps[:, 2]
    tap_off = (ts * hq + tu // st) * rowstride + ((tu % st) * st + tv % st) * wq + tv // st  # [ntaps]
    code_off = codes[:, tu, tv, ts].astype(np.int64) * cs  # [O, ntaps]
    offs = tap_off[None] + code_off  # [O, ntaps]
    offs_t = np.ascontiguousarray(offs[chan].transpose(0, 2, 1)).astype(np.int32)  # [ntiles, ntaps, R]
    bias_t = np.ascontiguousarray(bias[chan])
    # reads of one sample end below (G-1) gsize + max offset + (Ho-1) rowstride + ceil(Wo/VL) VL;
    # the slack after the last table covers the overshoot (it only feeds dropped columns)
    wread = -(-wo // vl) * vl
    slack = max(0, (groups - 1) * gsize + int(offs.max()) + (ho - 1) * rowstride + wread - tsize) + vl
    ntaps = k * k * s
    wmax = int(lib.qc_conv_width())
    ptrs = dict(cb=ptr(ffi, codebook), offs=ptr(ffi, offs_t, "int32_t[]"), bias=ptr(ffi, bias_t),
                gstart=ptr(ffi, gstart, "int32_t[]"), gdu=ptr(ffi, gdu, "int32_t[]"),
                g=ptr(ffi, tile_g, "int32_t[]"), o0=ptr(ffi, tile_o0, "int32_t[]"), rc=ptr(ffi, tile_rc, "int32_t[]"))
    owner = object()
    direct = st == 1 and pad == 0 and wq == w  # x is already its own padded, single-phase layout

    def zero_slack(buf: np.ndarray) -> None:
        buf[buf.size - slack:] = 0.0

    tables = BufferCache(zero_slack)

    def table(x: np.ndarray) -> ConvTable:
        n = check_batch(x, in_shape, layer.name)
        xq = x if direct else _phase_split(x, layer, (c, h, w), st, (hq, wq))
        data = tables.get(n * tsize + slack, lambda size: empty(size, layer.name, f"the look-up table of batch {n}"))
        lib.qc_qconv_table(ptr(ffi, xq), n, c, groups, p_, hq, wq, cs, ptrs["cb"], s, kk, d, TABLE_SIMD,
                           ptr(ffi, data))
        return ConvTable(data, n, owner)

    def lookup(t: ConvTable) -> np.ndarray:
        if not isinstance(t, ConvTable) or t.owner is not owner:
            raise QcnnError(f"layer {layer.name}: look-up needs the table this layer built")
        data, n = t.data, t.n
        if (type(data) is not np.ndarray or data.dtype != f32 or not data.flags.c_contiguous
                or data.ndim != 1 or n < 1 or data.size != n * tsize + slack):
            raise QcnnError(f"layer {layer.name}: the look-up table was modified")
        y = np.empty((n, o, ho, wo), f32)
        if table_rows_major:
            acc = np.empty((kr + rb + 1) * ntiles * r * wmax, f32)
            lib.qc_qconv_lookup_tr(ptr(ffi, data), n, tsize, gsize, ntiles, ptrs["o0"], ptrs["rc"], ptrs["g"],
                                   ptrs["offs"], ntaps, len(gstart) - 1, ptrs["gstart"], ptrs["gdu"], kr,
                                   ptrs["bias"], rowstride, o, ho, wo, rb, tchunk, ptr(ffi, acc), ptr(ffi, y))
            return y
        acc = np.empty(ntiles * r * wmax, f32)
        lib.qc_qconv_lookup(ptr(ffi, data), n, tsize, gsize, ntiles, ptrs["o0"], ptrs["rc"], ptrs["g"],
                            ptrs["offs"], ntaps, len(gstart) - 1, ptrs["gstart"], ptrs["bias"], rowstride,
                            o, ho, wo, rb, ptr(ffi, acc), ptr(ffi, y))
        return y

    # fused path: offsets into one table row [G, S, K, cs] of the row buffer
    # blocks too big for two to share L1 (conv1: 32 KB): L1 blocking is futile, so one group per
    # tap-row offset takes every block (fewest partial-sum passes; conv1 3.75 -> 3.5 ms measured;
    # one-block sets, with code_stride keeping a block's lines in distinct L1 sets: 4.0 ms)
    fblock = kk * wq * 4
    ftaps, fgstart, fgdu = _tap_groups_tr(k, st, s, fblock, FUSED_MIN_TAPS if 2 * fblock <= L1_BUDGET else 1 << 30)
    # rotated tiles: every load aligned, column shifts applied per group (see qc_qconv_fused)
    frot = bool(FUSED_ROTATE and lib.qc_conv_fused_rot_r() > 0 and wq % vl == 0 and (k - 1) // st < vl)
    if frot:
        split = _split_by_shift(ftaps, fgstart, fgdu, st)
        frot = len(ftaps) >= FUSED_ROT_MIN_TAPS * (len(split[1]) - 1)  # enough taps per shift group
    if frot:
        ftaps, fgstart, fgdu, fgdv = split
        fr = int(lib.qc_conv_fused_rot_r())
        fchan, *ftile_arrays = _channel_tiles(groups, og, fr)
    else:
        fr, fchan, ftile_arrays, fgdv = r, chan, [tile_g, tile_o0, tile_rc], None
    fu, fv, fs = ftaps[:, 0], ftaps[:, 1], ftaps[:, 2]
    foffs = (fs * rowstride + ((fu % st) * st + fv % st) * wq + (0 if frot else fv // st))[None] \
        + codes[:, fu, fv, fs].astype(np.int64) * cs  # [O, ntaps]
    foffs_t = np.ascontiguousarray(foffs[fchan].transpose(0, 2, 1)).astype(np.int32)
    frow = groups * s * rowstride
    frowfl = frow + max(0, (groups - 1) * s * rowstride + int(foffs.max()) + wread - frow) + vl * (2 if frot else 1)
    ftchunk = max(1, FUSED_ACC_BUDGET // (fr * nvrow * vl * 4))
    fntiles = len(fchan)
    fbias_t = np.ascontiguousarray(bias[fchan])
    fptrs = dict(offs=ptr(ffi, foffs_t, "int32_t[]"), gstart=ptr(ffi, fgstart, "int32_t[]"),
                 gdu=ptr(ffi, fgdu, "int32_t[]"), gdv=ffi.NULL if fgdv is None else ptr(ffi, fgdv, "int32_t[]"),
                 g=ptr(ffi, ftile_arrays[0], "int32_t[]"), o0=ptr(ffi, ftile_arrays[1], "int32_t[]"),
                 rc=ptr(ffi, ftile_arrays[2], "int32_t[]"), bias=ptr(ffi, fbias_t))
    per_thread = int(lib.qc_qconv_fused_scratch(frowfl, kr, fntiles, wo))
    scratch_cache = BufferCache()

    def fused(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        xq = x if direct else _phase_split(x, layer, (c, h, w), st, (hq, wq))
        nth = max(1, int(lib.qc_get_threads()))
        scratch = scratch_cache.get(nth * per_thread,
                                    lambda size: empty(size, layer.name, "the fused table rows"))
        y = np.empty((n, o, ho, wo), f32)
        lib.qc_qconv_fused(ptr(ffi, xq), n, c, groups, p_, hq, wq, cs, ptrs["cb"], s, kk, d, fntiles, fptrs["o0"],
                           fptrs["rc"], fptrs["g"], fptrs["offs"], ntaps, len(fgstart) - 1, fptrs["gstart"],
                           fptrs["gdu"], fptrs["gdv"], kr, fptrs["bias"], o, ho, wo, ftchunk, frowfl,
                           ptr(ffi, scratch), nth, ptr(ffi, y))
        return y

    fused.rotated = frot  # type: ignore[attr-defined]  # which tiles run (tests, timing notes)

    if FUSED and BAND and st == 1 and wo <= vl:
        fused = _band_path(layer, (c, h, w), (ho, wo), (hq, -(-(w + 2 * pad) // st)), codebook, codes, bias,
                           ptrs["cb"])
    return FusedQConv(table=table, lookup=lookup, fused=fused if FUSED else None)


def _band_path(layer: Layer, chw: tuple[int, int, int], howo: tuple[int, int], hqwq: tuple[int, int],
               codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray, cb_p: object) -> Callable[[np.ndarray], np.ndarray]:
    """The fused call of a narrow stride-1 layer (Wo <= VL): x [N, C, H, W] -> y [N, O, Ho, Wo] by
    ``qc_qconv_band`` (see there), with rotated register tiles of ``qc_conv_band_rot_r()`` channels
    (:data:`BAND_ROTATE`, rows of one vector) or else tiles of ``qc_conv_band_r()`` channels with
    shifted loads; ``cb_p`` points at ``codebook`` [S, K, D]."""
    c, h, w = chw
    ho, wo = howo
    hq, wq = hqwq
    o, k, pad, groups = layer.out, layer.kernel, layer.pad, layer.groups
    s, kk, d = codebook.shape
    vl = int(lib.qc_conv_chunk())
    rot = int(BAND_ROTATE and wq <= vl and lib.qc_conv_band_rot_r() > 0)
    r = int(lib.qc_conv_band_rot_r()) if rot else int(lib.qc_conv_band_r())
    og = o // groups
    chan, *tile_arrays = _channel_tiles(groups, og, r)
    bias_t = np.ascontiguousarray(bias[chan])
    wp = -(-wq // vl) * vl
    bo = max(1, min(BAND_ROWS, int(lib.qc_conv_width()) // vl, BAND_BYTES // (kk * wp * 4) - (k - 1), ho))
    if rot:
        bo = min(bo, ROT_ROWS)
    br = bo + k - 1
    # offs [G, S, tiles per group, k*k, R] (read in that order): code * BR * WP + u * WP (+ v unless
    # rotated); taps row-major, or v-major when rotated (tiles are group-major, the same number per group)
    t = np.arange(k * k)
    v, u = (t // k, t % k) if rot else (t % k, t // k)
    taps = codes[:, u, v, :].transpose(0, 2, 1)  # [O, S, k*k] in tap order
    off = taps.astype(np.int64) * (br * wp) + (u * wp + (0 if rot else v))[None, None]
    tpg = len(chan) // groups
    per_tile = off[chan].reshape(groups, tpg, r, s, k * k)  # [G, tiles of g, R, S, k*k]
    offs_t = np.ascontiguousarray(per_tile.transpose(0, 3, 1, 4, 2)).astype(np.int32)
    int32_dims(layer, band_table=kk * br * wp + 2 * vl, band_offsets=offs_t.size)
    ntiles = len(chan)
    per_thread = int(lib.qc_qconv_band_scratch(kk, d, br, wp, ntiles, bo))
    offs_p = ptr(ffi, offs_t, "int32_t[]")
    g_p, o0_p, rc_p = (ptr(ffi, a, "int32_t[]") for a in tile_arrays)
    bias_p = ptr(ffi, bias_t)
    scratch_cache = BufferCache()
    direct = pad == 0

    def band(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, (c, h, w), layer.name)
        xq = x if direct else _phase_split(x, layer, (c, h, w), 1, (hq, wq))
        nth = max(1, int(lib.qc_get_threads()))
        scratch = scratch_cache.get(nth * per_thread, lambda size: empty(size, layer.name, "the band tables"))
        y = np.empty((n, o, ho, wo), f32)
        lib.qc_qconv_band(ptr(ffi, xq), n, c, groups, hq, wq, cb_p, s, kk, d, ntiles, o0_p, rc_p, g_p, offs_p,
                          k * k, bias_p, o, ho, wo, bo, br, wp, k, rot, ptr(ffi, scratch), nth, ptr(ffi, y))
        return y

    band.rotated = bool(rot)  # type: ignore[attr-defined]  # which tiles run (tests, timing notes)
    return band
