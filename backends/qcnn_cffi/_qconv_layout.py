"""What the quantized conv's schedules share: the layer's geometry and table layout, its
checked tensors, tap groups and channel tiles, the phase split, and the C plan structs.

The schedules themselves are ``_qconv_staged.py`` (table + look-up), ``_qconv_rows.py`` (row-fused)
and ``_qconv_band.py`` (band); ``qconv.py`` picks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qcnn.plugin import Layer, QcnnError

from ._buffers import BufferCache
from ._checks import check_batch, empty, f32, int32_dims, ptr, tensor
from ._ext import ffi, lib
from .float_ops import conv_geometry

__all__ = [
    "L1_BUDGET",
    "MIN_TAPS",
    "CPlan",
    "ConvGeometry",
    "FusedCall",
    "channel_tiles",
    "code_stride",
    "phase_split",
    "quant_tensors",
    "split_by_shift",
    "tap_groups",
]

#: Bytes of table rows one tap group may touch (most of a 48 KB L1 data cache), unless the group
#: has fewer than MIN_TAPS taps: each group costs a load and store of the partial sums, which
#: a few taps do not amortise (AlexNet conv1: 3 taps per 29 KB block). Measured here.
L1_BUDGET = 40 * 1024
MIN_TAPS = 12


def code_stride(pw: int, vl: int) -> int:
    """Floats between consecutive codes' rows in a table row: ``pw`` (= P Wq, the row's values),
    plus one cache line when that is a multiple of 1 KB. Codes a multiple of 4 KB apart (AlexNet
    conv1: 16 phases x 64 columns) map to the same few L1 sets, so a (row, phase) block of all K
    codes could never be held in L1 at once."""
    return pw + max(vl, 16) if (pw * 4) % 1024 == 0 else pw


@dataclass(frozen=True)
class ConvGeometry:
    """A quantized conv's sizes and its table layout (see ``qconv.py``): input [C, H, W], output
    [O, Ho, Wo], kernel k, stride st, pad, G groups (Cg, Og channels each), S subspaces of D dims,
    K codewords; table rows of P = st^2 phases of Wq columns (``wq_raw`` = ceil((W + 2 pad) / st)
    before rounding up to whole vectors), ``cs`` floats per code, ``rowstride`` per table row,
    ``gsize`` per group table, ``tsize`` per sample; ``vl`` floats per vector."""

    name: str
    c: int
    h: int
    w: int
    o: int
    ho: int
    wo: int
    k: int
    st: int
    pad: int
    groups: int
    s: int
    kk: int
    d: int
    hq: int
    wq: int
    wq_raw: int
    cs: int
    vl: int

    @classmethod
    def of(cls, layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
           pad_width: bool) -> ConvGeometry:
        c, h, w, ho, wo = conv_geometry(layer, in_shape, out_shape)
        assert layer.quant is not None
        st, pad = layer.stride, layer.pad
        vl = int(lib.qc_conv_chunk())
        hq, wq_raw = -(-(h + 2 * pad) // st), -(-(w + 2 * pad) // st)
        # whole vectors per table row: no masked tails, aligned dv = 0 taps (see CffiConfig.pad_width)
        wq = -(-wq_raw // vl) * vl if pad_width and wo > vl else wq_raw
        geom = cls(layer.name, c, h, w, layer.out, ho, wo, layer.kernel, st, pad, layer.groups,
                   layer.quant.subspaces(c // layer.groups), layer.quant.K, layer.quant.D, hq, wq, wq_raw,
                   code_stride(st * st * wq, vl), vl)
        int32_dims(layer, table_columns=geom.p * wq, group_table=geom.gsize + geom.rowstride, codewords=geom.kk,
                   dims=geom.d, input_rows=c * hq * geom.p * wq)
        return geom

    @property
    def p(self) -> int:
        """Stride phases."""
        return self.st * self.st

    @property
    def og(self) -> int:
        return self.o // self.groups

    @property
    def rowstride(self) -> int:
        """Floats per table row (all codes and phases of one phase row)."""
        return self.kk * self.cs

    @property
    def gsize(self) -> int:
        """Floats per group table."""
        return self.s * self.hq * self.rowstride

    @property
    def tsize(self) -> int:
        """Floats per sample's table."""
        return self.groups * self.gsize

    @property
    def kr(self) -> int:
        """Table rows one output row reads."""
        return -(-self.k // self.st)

    @property
    def wread(self) -> int:
        """Columns a look-up reads per output row (whole vectors)."""
        return -(-self.wo // self.vl) * self.vl

    def direct(self, wq: int) -> bool:
        """Whether x is already its own padded, single-phase layout for rows of ``wq`` columns."""
        return self.st == 1 and self.pad == 0 and wq == self.w

    def table_fields(self, cb: np.ndarray) -> dict[str, Any]:
        """The fields of a ``qc_qconv_table_plan``."""
        return {"C": self.c, "G": self.groups, "P": self.p, "Hq": self.hq, "Wq": self.wq, "cs": self.cs, "cb": cb,
                "S": self.s, "K": self.kk, "D": self.d}


def quant_tensors(layer: Layer, params: Mapping[str, np.ndarray],
                  geom: ConvGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codebook [S, K, D], codes [O, k, k, S] uint8 < K, bias [O]), checked."""
    codebook = tensor(layer, params, "codebook", (geom.s, geom.kk, geom.d))
    codes = tensor(layer, params, "codes", (geom.o, geom.k, geom.k, geom.s), np.uint8)
    bias = tensor(layer, params, "bias", (geom.o,))
    if codes.size and int(codes.max()) >= geom.kk:
        raise QcnnError(f"layer {layer.name}: code {int(codes.max())} is out of range for K = {geom.kk}")
    return codebook, codes, bias


def tap_groups(k: int, st: int, s: int, block_bytes: int, min_taps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tap order and groups for the table-row-major look-up.

    A block is (subspace s, phase row py, phase column px): one table row of K codes,
    ``block_bytes``. Blocks are merged into sets while they fit in :data:`L1_BUDGET` (or the set
    has fewer than ``min_taps`` taps per tap-row offset); each set then gives one group per
    tap-row offset du = u // st (taps u = du st + py, v = px, px + st, ...), consecutively, so the
    set's table lines are reused from L1 by all du. Returns taps [ntaps, 3] as (u, v, s),
    gstart [ngroups + 1] and gdu [ngroups]. Every grouping sums an output's taps in the same
    order (du, then block, then v), so schedules that group differently agree bit for bit.
    """
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


def split_by_shift(taps: np.ndarray, gstart: np.ndarray, gdu: np.ndarray,
                   st: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split every tap group into one group per column shift dv = v // st (ascending), for the
    rotated row-fused tiles: (taps [ntaps, 3], gstart [ngroups + 1], gdu [ngroups], gdv [ngroups])."""
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


def channel_tiles(groups: int, og: int, r: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Register tiles of ``r`` output channels, group-major, never straddling a group: chan
    [ntiles, r] (a short last tile repeats its last channel: computed, not stored) and the int32
    [ntiles] plan fields tile_g (group), tile_o0 (first channel), tile_rc (channel count)."""
    tiles = [(g, o0, min(r, (g + 1) * og - o0)) for g in range(groups) for o0 in range(g * og, (g + 1) * og, r)]
    chan = np.array([[o0 + min(i, rc - 1) for i in range(r)] for _, o0, rc in tiles], np.int64).reshape(-1, r)
    tile_g, tile_o0, tile_rc = (np.array([t[i] for t in tiles], np.int32) for i in range(3))
    return chan, {"ntiles": len(chan), "tile_g": tile_g, "tile_o0": tile_o0, "tile_rc": tile_rc}


def tile_offsets(offs: np.ndarray, chan: np.ndarray) -> np.ndarray:
    """Per-channel tap offsets [O, ntaps] as the tiles read them: int32 [ntiles, ntaps, R]."""
    return np.ascontiguousarray(offs[chan].transpose(0, 2, 1)).astype(np.int32)


def phase_split(x: np.ndarray, geom: ConvGeometry, wq: int) -> np.ndarray:
    """x [N, C, H, W] zero-padded and split into its st*st stride phases, [N, C, Hq, st*st, wq]
    (the layout ``qc_pad_phase`` writes)."""
    n = x.shape[0]
    xq = empty((n, geom.c, geom.hq, geom.p, wq), geom.name, "the padded input")
    lib.qc_pad_phase(ptr(ffi, x), n, geom.c, geom.h, geom.w, geom.pad, geom.st, geom.hq, wq, ptr(ffi, xq))
    return xq


class CPlan:
    """A C plan struct, ``ffi.new(ctype *)`` filled from keyword fields once, and every array its
    pointers name, kept alive with it (a struct field holds a bare pointer). ``ptr`` is what the
    C functions take; a dict value fills a nested struct, an ndarray becomes a pointer to its data
    (float32 or int32, C-contiguous), None a NULL pointer, a float a float field."""

    __slots__ = ("_keep", "ptr")

    def __init__(self, ctype: str, **fields: Any) -> None:
        self.ptr = ffi.new(f"{ctype} *")
        self._keep: list[Any] = []
        self._fill(self.ptr, fields)

    def _fill(self, target: Any, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if isinstance(value, Mapping):
                self._fill(getattr(target, name), value)
                continue
            if isinstance(value, np.ndarray):
                assert value.flags.c_contiguous and value.dtype in (np.float32, np.int32), (name, value.dtype)
                value = ffi.from_buffer("int32_t[]" if value.dtype == np.int32 else "float[]", value)
                self._keep.append(value)  # keeps the array (and its buffer export) alive
            elif value is None:
                value = ffi.NULL
            elif isinstance(value, (float, np.floating)):
                value = float(value)
            else:
                value = int(value)
            setattr(target, name, value)


class FusedCall:
    """The call both fused schedules share: x [N, C, H, W] -> phase-split input (unless x already
    is its own layout) -> one C entry point ``c_call(plan, xq, N, scratch, threads, y)`` with
    ``per_thread`` floats of scratch per thread -> y [N, O, Ho, Wo]. A schedule's ``__init__``
    builds ``plan`` and calls :meth:`_bind`."""

    geom: ConvGeometry
    plan: CPlan

    def _bind(self, wq: int, per_thread: int, c_call: Any, what: str) -> None:
        self._wq, self._per_thread, self._c_call, self._what = wq, per_thread, c_call, what
        self._scratch = BufferCache()
        self._direct = self.geom.direct(wq)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        g = self.geom
        n = check_batch(x, (g.c, g.h, g.w), g.name)
        xq = x if self._direct else phase_split(x, g, self._wq)
        nth = max(1, int(lib.qc_get_threads()))
        scratch = self._scratch.get(nth * self._per_thread, lambda size: empty(size, g.name, self._what))
        y = np.empty((n, g.o, g.ho, g.wo), f32)
        self._c_call(self.plan.ptr, ptr(ffi, xq), n, ptr(ffi, scratch), nth, ptr(ffi, y))
        return y
