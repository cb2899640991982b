"""Quantized conv with integer tables (``tables="int16"`` or ``"int8"``; ``csrc/qc_qint.c``).

The semantics are the reference's (:func:`qcnn.reference.qconv_int_table` and
:func:`~qcnn.reference.qconv_int_lookup`): entries rounded to [-Q, Q] with one scale per sample,
exact integer sums, one float rescale. Because the sums are exact, every schedule here gives
the reference's output bit for bit.

Table layout: a unit is (subspace s, stride phase ph) with at least one tap; its table for a band
of output rows is [K, BR, Wq] int16 (BR = band rows + kr - 1), so a band's outputs are one lane
array [Bo, Wq] and tap (u, v) with code a adds the run starting at a BR Wq + (u / st) Wq + v / st.
The call builds each unit's band table right before its look-ups (``qc_qconv_int``); the stages
build every unit's table of the whole image first (one band) and then look up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from qcnn import reference as ref
from qcnn.plugin import QcnnError

from ._buffers import BufferCache
from ._checks import check_batch, empty, f32, int32_dims, ptr
from ._ext import ffi, lib
from ._qconv_layout import ConvGeometry, CPlan, channel_tiles, phase_split, tile_offsets

__all__ = ["IntConv", "IntConvTable"]

#: A band's unit table (K CS int16) stays within this many bytes, the rest of L2 left to the
#: partial sums. Measured here (int8, AlexNet, 1 thread, ms per layer by output rows per band):
#: conv1 Bo 4: 3.96, 8: 3.52, 28: 3.32; conv2 4: 1.90, 10: 1.84; conv3 4: 1.32, 8: 1.25, 13: 1.17.
#: Fewer, taller bands win: rebuilding the kr - 1 shared rows costs more than the table leaving L1.
BAND_TABLE_BYTES = 256 * 1024


@dataclass
class IntConvTable:
    """Output of the table stage: ``data`` [N, table size] int16 (every unit's table of the whole
    image, then zeroed slack) and ``scale`` [N] float32."""

    data: np.ndarray
    scale: np.ndarray
    owner: object


def _units(k: int, st: int, s: int) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(subspace, phase, taps (u, v)) of every unit with taps, subspace-major."""
    out = []
    for sub in range(s):
        for py in range(st):
            for px in range(st):
                taps = [(u, v) for u in range(py, k, st) for v in range(px, k, st)]
                if taps:
                    out.append((sub, py * st + px, taps))
    return out


class IntConv:
    """x [N, C, H, W] -> y [N, O, Ho, Wo] with ``precision`` integer tables: ``__call__`` the
    fused band schedule, ``table``/``lookup`` the stages. ``band_rows`` (0: chosen from
    :data:`BAND_TABLE_BYTES`) sets the fused call's output rows per band."""

    def __init__(self, layer_name: str, geom: ConvGeometry, codebook: np.ndarray, codes: np.ndarray,
                 bias: np.ndarray, precision: str, band_rows: int = 0) -> None:
        self.geom = g = geom
        self._name = layer_name
        self._wq = g.wq_raw
        self._direct = g.direct(self._wq)
        self._lanes = int(lib.qc_int_lanes())
        self._args = (codebook, codes, bias, precision)
        if band_rows <= 0:  # the tallest band in budget, then bands of equal height (one per thread at least)
            tallest = max(1, BAND_TABLE_BYTES // (g.kk * self._wq * 2) - (g.kr - 1))
            bands = max(-(-g.ho // tallest), min(g.ho, int(lib.qc_get_threads())))
            band_rows = -(-g.ho // bands)
        self.band_rows = min(band_rows, g.ho)
        self.plan = self._plan(self.band_rows)
        self._staged: CPlan | None = None
        self._lock = threading.Lock()
        self._buffers = BufferCache()

    def _plan(self, bo: int) -> CPlan:
        g, wq = self.geom, self._wq
        codebook, codes, bias, precision = self._args
        br = bo + g.kr - 1
        lp = -(-bo * wq // self._lanes) * self._lanes
        units = _units(g.k, g.st, g.s)
        ustart = np.cumsum([0] + [len(t) for _, _, t in units]).astype(np.int32)
        tu = np.array([u for _, _, t in units for u, _ in t], np.int64)
        tv = np.array([v for _, _, t in units for _, v in t], np.int64)
        ts = np.array([s for s, _, t in units for _ in t], np.int64)
        cs = br * wq + self._lanes  # a code's table, then slack for the table build's vector tails
        offs = codes[:, tu, tv, ts].astype(np.int64) * cs + (tu // g.st) * wq + tv // g.st  # [O, ntaps]
        chan, tiles = channel_tiles(g.groups, g.og, int(lib.qc_int_tile_r()))
        int32_dims(self._name, int_band_table=g.kk * cs + 2 * lp, int_tables=g.groups * len(units) * g.kk * cs,
                   int_offsets=int(offs.max(initial=0)) + lp)
        qmax = ref.QMAX[precision]
        return CPlan("qc_qconv_int_plan", C=g.c, G=g.groups, P=g.p, Hq=g.hq, Wq=wq, cb=codebook, S=g.s, K=g.kk,
                     D=g.d, cmax=ref.codebook_norm(codebook), qmax=qmax, lim=ref.ACC16_TERMS if qmax <= 127 else 0,
                     nunits=len(units), unit_s=np.array([u[0] for u in units], np.int32),
                     unit_ph=np.array([u[1] for u in units], np.int32), ustart=ustart, ntiles=tiles["ntiles"],
                     tile_o0=tiles["tile_o0"], tile_rc=tiles["tile_rc"], offs=tile_offsets(offs, chan),
                     ntaps=int(ustart[-1]), bias=bias, O=g.o, Ho=g.ho, Wo=g.wo, Bo=bo, BR=br, LP=lp, CS=cs, relu=0)

    def _input(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        g = self.geom
        n = check_batch(x, (g.c, g.h, g.w), g.name)
        return n, (x if self._direct else phase_split(x, g, self._wq))

    def _scratch(self, plan: CPlan, threads: int, n: int) -> np.ndarray:
        size = threads * int(lib.qc_qconv_int_scratch(plan.ptr)) + 2 * n
        return self._buffers.get(size, lambda k: empty(k, self.geom.name, "the integer tables"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, xq = self._input(x)
        g = self.geom
        nth = max(1, int(lib.qc_get_threads()))
        y = np.empty((n, g.o, g.ho, g.wo), f32)
        lib.qc_qconv_int(self.plan.ptr, ptr(ffi, xq), n, ptr(ffi, self._scratch(self.plan, nth, n)), nth, ptr(ffi, y))
        return y

    def _staged_plan(self) -> CPlan:
        with self._lock:
            if self._staged is None:
                self._staged = self._plan(self.geom.ho)
            return self._staged

    def table(self, x: np.ndarray) -> IntConvTable:
        plan = self._staged_plan()
        n, xq = self._input(x)
        size = int(lib.qc_qconv_int_table_size(plan.ptr))
        try:
            data = np.zeros((n, size), np.int16)  # the slack, read into dropped lanes, stays zero
        except (MemoryError, ValueError):
            raise QcnnError(f"layer {self.geom.name}: cannot allocate the integer tables "
                            f"({n * size * 2 / 2**30:.1f} GiB)") from None
        scale = np.empty(n, f32)
        lib.qc_qconv_int_table(plan.ptr, ptr(ffi, xq), n, ffi.from_buffer("int16_t[]", data), ptr(ffi, scale))
        return IntConvTable(data, scale, self)

    def lookup(self, t: IntConvTable) -> np.ndarray:
        plan = self._staged_plan()
        g = self.geom
        size = int(lib.qc_qconv_int_table_size(plan.ptr))
        if (not isinstance(t, IntConvTable) or t.owner is not self or t.data.dtype != np.int16
                or t.data.ndim != 2 or t.data.shape[1] != size or t.scale.shape != (t.data.shape[0],)):
            raise QcnnError(f"layer {g.name}: look-up input must be this kernel's own integer table stage output")
        n = t.data.shape[0]
        nth = max(1, min(n, int(lib.qc_get_threads())))
        y = np.empty((n, g.o, g.ho, g.wo), f32)
        lib.qc_qconv_int_lookup(plan.ptr, ffi.from_buffer("int16_t[]", t.data), ptr(ffi, t.scale), n,
                                ptr(ffi, self._scratch(plan, nth, n)), nth, ptr(ffi, y))
        return y

