"""The staged schedule of a quantized conv: ``table(x)`` builds the whole table T [N, G, S, Hq, K,
cs] (``qc_qconv_table``), ``lookup(t)`` sums it table-row-major (``qc_qconv_lookup``). Every
quantized conv has one, for stage timing; it runs the call only with ``CffiConfig(fused=False)``.
Its plan is built on the first ``table`` or ``lookup`` call, so a fused kernel that is never timed
by stages never pays for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from qcnn.plugin import QcnnError

from ._buffers import BufferCache
from ._checks import check_batch, empty, f32, ptr
from ._ext import ffi, lib
from ._qconv_layout import MIN_TAPS, ConvGeometry, CPlan, channel_tiles, phase_split, tap_groups, tile_offsets

__all__ = ["ConvTable", "StagedConv"]


@dataclass
class ConvTable:
    """Output of the table stage: ``data`` = N tables of ``tsize`` floats, then zeroed slack."""

    data: np.ndarray
    n: int
    owner: object


class _Plan:
    """The staged plan: table and look-up structs, the slack after the last table."""

    def __init__(self, geom: ConvGeometry, codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray) -> None:
        g = geom
        chan, tiles = channel_tiles(g.groups, g.og, int(lib.qc_conv_r()))
        taps, gstart, gdu = tap_groups(g.k, g.st, g.s, g.kk * g.wq * 4, MIN_TAPS)
        tu, tv, ts = taps[:, 0], taps[:, 1], taps[:, 2]
        tap_off = (ts * g.hq + tu // g.st) * g.rowstride + ((tu % g.st) * g.st + tv % g.st) * g.wq + tv // g.st
        offs = tap_off[None] + codes[:, tu, tv, ts].astype(np.int64) * g.cs  # [O, ntaps]
        # reads of one sample end below (G-1) gsize + max offset + (Ho-1) rowstride + ceil(Wo/VL) VL;
        # the slack after the last table covers the overshoot (it only feeds dropped columns)
        self.slack = max(0, (g.groups - 1) * g.gsize + int(offs.max()) + (g.ho - 1) * g.rowstride + g.wread
                         - g.tsize) + g.vl
        self.table = CPlan("qc_qconv_table_plan", **g.table_fields(codebook))
        self.lookup = CPlan("qc_qconv_lookup_plan", tsize=g.tsize, gsize=g.gsize, rowstride=g.rowstride, **tiles,
                            offs=tile_offsets(offs, chan), ntaps=len(taps), ngroups=len(gstart) - 1, gstart=gstart,
                            gdu=gdu, kr=g.kr, bias_t=np.ascontiguousarray(bias[chan]), O=g.o, Ho=g.ho, Wo=g.wo)
        self.acc_size = int(lib.qc_qconv_lookup_scratch(self.lookup.ptr))


class StagedConv:
    """``table`` x [N, C, H, W] -> :class:`ConvTable`, ``lookup`` ConvTable -> y [N, O, Ho, Wo]."""

    def __init__(self, geom: ConvGeometry, codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray) -> None:
        self.geom = geom
        self._tensors = (codebook, codes, bias)
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        self._tables = BufferCache(self._zero_slack)
        self._direct = geom.direct(geom.wq)

    def plan(self) -> _Plan:
        if self._plan is None:
            with self._lock:
                if self._plan is None:
                    self._plan = _Plan(self.geom, *self._tensors)
        return self._plan

    def _zero_slack(self, buf: np.ndarray) -> None:
        buf[buf.size - self.plan().slack:] = 0.0

    def table(self, x: np.ndarray) -> ConvTable:
        g, plan = self.geom, self.plan()
        n = check_batch(x, (g.c, g.h, g.w), g.name)
        xq = x if self._direct else phase_split(x, g, g.wq)
        data = self._tables.get(n * g.tsize + plan.slack,
                                lambda size: empty(size, g.name, f"the look-up table of batch {n}"))
        lib.qc_qconv_table(plan.table.ptr, ptr(ffi, xq), n, ptr(ffi, data))
        return ConvTable(data, n, self)

    def lookup(self, t: ConvTable) -> np.ndarray:
        g, plan = self.geom, self.plan()
        if not isinstance(t, ConvTable) or t.owner is not self:
            raise QcnnError(f"layer {g.name}: look-up needs the table this layer built")
        data, n = t.data, t.n
        if (type(data) is not np.ndarray or data.dtype != f32 or not data.flags.c_contiguous
                or data.ndim != 1 or n < 1 or data.size != n * g.tsize + plan.slack):
            raise QcnnError(f"layer {g.name}: the look-up table was modified")
        y = np.empty((n, g.o, g.ho, g.wo), f32)
        acc = np.empty(plan.acc_size, f32)
        lib.qc_qconv_lookup(plan.lookup.ptr, ptr(ffi, data), n, ptr(ffi, acc), ptr(ffi, y))
        return y
