"""Roofline of the quantized conv look-up on this machine: what one LUT look-up add costs (float
tables, and the int16 lanes of the integer tables), and what that makes the floor of a model's
quantized conv layers.

``python -m qcnn_cffi.roofline [--arch alexnet] [--runs 7] [--json]``

A look-up add is one vector load from the table plus one vector add; its cost bounds every
quantized conv (the table cannot be held in registers: each output channel picks its own
codeword). The probe (``qc_probe_lookup``) runs the band path's register tile, RB channels x 3
rows of VL floats, 9 taps with random codes (K = 128), one thread, over four tables:

* ``L1 aligned``: a 40 KB table, every tap at column shift 0 (loads on whole cache lines);
* ``L1 shifted``: the same, column shifts 0, 1, 2 as in a 3x3 kernel (two loads in three
  straddle two cache lines): the best case of a real stride-1 layer;
* ``L2 aligned`` and ``L2 shifted``: a 1 MB table (conv1's and conv2's tables do not fit L1).

The integer probe (``qc_probe_lookup_int``) runs the integer tables' tile (``qc_int_tile_r()``
channels x 3 vectors of ``qc_int_lanes()`` int16 lanes) over the same four cases (int16 tables of
the same bytes): "int L1 aligned" ... "int L2 shifted", ns per vector add of that many lanes.

Then, per quantized conv layer: its look-up vector adds (paper count x ceil(Wo / VL) / Wo), the
time they take at the L1-shifted and L2-shifted rates, and the measured fused call and
table-building stage of the cffi backend. Timing only; the probe's sums are checked in
``tests/test_cffi_backend.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

import qcnn
from qcnn import model as stats
from qcnn import model as zoo
from qcnn.plugin import StagedKernel

from ._ext import ffi, lib

__all__ = ["layer_floors", "main", "probe", "probe_rates"]

ROWS = 3  # vectors per register tile (the band path's rows)
TAPS = 9  # a 3x3 kernel
CODES = 128
CHANNELS = 384  # AlexNet conv3: 48 tiles of 8 channels
TABLES = {"L1": 40 * 1024, "L2": 1024 * 1024}


def _ptr(a: np.ndarray, kind: str = "float *") -> Any:
    return ffi.cast(kind, a.ctypes.data)


def _aligned(n: int, dtype: type = np.float32) -> np.ndarray:
    """A zeroed [n] array starting on a 64-byte cache line (numpy's own alignment is 16 bytes)."""
    item = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // item, dtype)
    start = (-raw.ctypes.data % 64) // item
    return raw[start:start + n]


def probe_inputs(table_bytes: int, shifted: bool, seed: int = 0, integer: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """(table [n], offs [CHANNELS / R, TAPS, R] int32, rowstride) for one probe: codes drawn at
    random, tap (u, v) at row u and (when ``shifted``) column shift v of a code's block [rows,
    lanes]; the table is sized ``table_bytes`` by the number of rows per code block. Float
    tables (VL lanes, R = RB) or, ``integer``, int16 tables (``qc_int_lanes()``, ``qc_int_tile_r()``)."""
    if integer:
        vl, rb, dtype = int(lib.qc_int_lanes()), int(lib.qc_int_tile_r()), np.int16
    else:
        vl, rb, dtype = int(lib.qc_conv_chunk()), int(lib.qc_conv_band_r()), np.float32
    rows = max(ROWS + 2, table_bytes // (CODES * vl * np.dtype(dtype).itemsize))  # rows per code block
    block = rows * vl
    rng = np.random.default_rng(seed)
    table = _aligned(CODES * block + 2 * vl, dtype)
    table[:] = rng.integers(-127, 128, table.size) if integer else rng.standard_normal(table.size)
    u, v = np.divmod(np.arange(TAPS), 3)
    codes = rng.integers(0, CODES, size=(CHANNELS // rb, TAPS, rb))
    offs = codes * block + (u * vl + (v if shifted else 0))[None, :, None]
    return table, np.ascontiguousarray(offs, np.int32), vl


def probe_int_rates(runs: int = 7, reps: int = 400) -> dict[str, float]:
    """ns per int16-lane look-up vector add (``qc_int_lanes()`` lanes), median of ``runs``:
    {"int L1 aligned": .., "int L1 shifted": .., "int L2 aligned": .., "int L2 shifted": ..}."""
    rates = {}
    for level, nbytes in TABLES.items():
        for shifted in (False, True):
            table, offs, lanes = probe_inputs(nbytes, shifted, integer=True)
            acc = _aligned(offs.size // TAPS * ROWS * lanes, np.int16)
            args = (ffi.cast("int16_t *", table.ctypes.data), _ptr(offs, "int32_t *"), offs.size // TAPS, TAPS, ROWS)
            lib.qc_probe_lookup_int(*args, 20, ffi.cast("int16_t *", acc.ctypes.data))
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                lib.qc_probe_lookup_int(*args, reps, ffi.cast("int16_t *", acc.ctypes.data))
                times.append(time.perf_counter() - t0)
            rates[f"int {level} {'shifted' if shifted else 'aligned'}"] = \
                1e9 * statistics.median(times) / (reps * offs.size * ROWS)
    return rates


def probe(table: np.ndarray, offs: np.ndarray, rowstride: int, reps: int) -> np.ndarray:
    """acc [tiles, RB, ROWS, VL]: ``reps`` passes of the register tile over ``offs`` (checked to
    stay inside ``table``), summed from zero."""
    vl, rb = int(lib.qc_conv_chunk()), int(lib.qc_conv_band_r())
    if offs.ndim != 3 or offs.shape[1:] != (TAPS, rb) or offs.dtype != np.int32 or not offs.flags.c_contiguous:
        raise ValueError(f"offs must be C-contiguous int32 [tiles, {TAPS}, {rb}], got {offs.dtype} {offs.shape}")
    if table.dtype != np.float32 or table.ndim != 1 or not table.flags.c_contiguous:
        raise ValueError("table must be a C-contiguous float32 vector")
    if offs.min() < 0 or int(offs.max()) + (ROWS - 1) * rowstride + vl > table.size:
        raise ValueError("an offset reads past the table")
    acc = _aligned(offs.shape[0] * rb * ROWS * vl).reshape(offs.shape[0], rb, ROWS, vl)
    lib.qc_probe_lookup(_ptr(table), _ptr(offs, "int32_t *"), offs.shape[0] * rb, TAPS, ROWS, rowstride, reps,
                        _ptr(acc))
    return acc


def probe_rates(runs: int = 7, reps: int = 400, only: str | None = None) -> dict[str, float]:
    """ns per look-up vector add, median of ``runs`` timed calls: {"L1 aligned": .., "L1 shifted": ..,
    "L2 aligned": .., "L2 shifted": ..} (or just the probe named ``only``)."""
    rates = {}
    for level, nbytes in TABLES.items():
        for shifted in (False, True):
            name = f"{level} {'shifted' if shifted else 'aligned'}"
            if only is not None and name != only:
                continue
            table, offs, rs = probe_inputs(nbytes, shifted)
            probe(table, offs, rs, 20)  # warm caches and the branch predictor
            adds = reps * offs.size * ROWS
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                probe(table, offs, rs, reps)
                times.append(time.perf_counter() - t0)
            rates[name] = 1e9 * statistics.median(times) / adds
    return rates


def _median_ms(fn: Any, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def layer_floors(arch: str, rates: dict[str, float], runs: int) -> list[dict[str, Any]]:
    """Per quantized conv layer of ``zoo.synthetic(arch)``: look-up vector adds, their time at the
    L1-shifted and L2-shifted rates, and the cffi backend's measured call and table stage (ms)."""
    vl = int(lib.qc_conv_chunk())
    model = zoo.synthetic(arch)
    session = qcnn.compile(model, "cffi", threads=1)
    isession = qcnn.compile(model, "cffi", threads=1, tables="int8")
    x = np.random.default_rng(0).standard_normal((1, *model.spec.input)).astype(np.float32)
    acts = session.run(x, outputs="all")
    names = [p.layer.name for p in session.layers]
    costs = {c.name: c for c in stats.layer_costs(model)}
    rows = []
    for i, p in enumerate(session.layers):
        c = costs[p.layer.name]
        if c.type != "conv" or not c.quant or not isinstance(p.kernel, StagedKernel):
            continue
        h = x if i == 0 else acts[names[i - 1]]
        wo = c.out_shape[2]
        vadds = c.lookup_macs * -(-wo // vl) / wo
        kernel = p.kernel
        # integer tables: a band's lanes are its rows of Wq columns (Wq / Wo of them used)
        ikernel = isession.layers[i].kernel
        wq = -(-(p.in_shape[2] + 2 * p.layer.pad) // p.layer.stride)
        ivadds = c.lookup_macs * wq / wo / int(lib.qc_int_lanes())
        rows.append({"layer": c.name, "lookup_vector_adds": vadds,
                     "floor_l1_ms": vadds * rates["L1 shifted"] * 1e-6,
                     "floor_l2_ms": vadds * rates["L2 shifted"] * 1e-6,
                     "call_ms": _median_ms(lambda: kernel(h), runs),
                     "table_ms": _median_ms(lambda: kernel.table(h), runs),
                     "int_lookup_vector_adds": ivadds,
                     "int_floor_l1_ms": ivadds * rates["int L1 shifted"] * 1e-6,
                     "int_floor_l2_ms": ivadds * rates["int L2 shifted"] * 1e-6,
                     "int8_call_ms": _median_ms(lambda: ikernel(h), runs),
                     "int8_table_ms": _median_ms(lambda: ikernel.table(h), runs)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qcnn_cffi.roofline", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="alexnet", choices=sorted(zoo.ARCHS))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args(argv)
    qcnn.set_threads(1)
    rates = {**probe_rates(args.runs), **probe_int_rates(args.runs)}
    rows = layer_floors(args.arch, rates, args.runs)
    if args.json:
        print(json.dumps({"ns_per_vector_add": rates, "layers": rows}, indent=2))
        return 0
    vl = int(lib.qc_conv_chunk())
    print(f"look-up probe ({vl}-float vectors, {int(lib.qc_conv_band_r())} channels x {ROWS} rows per tile, "
          f"{TAPS} taps, 1 thread), ns per vector add, median of {args.runs}:")
    print("  float: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items() if not k.startswith("int")))
    print(f"  int16 lanes ({int(lib.qc_int_lanes())} per vector): "
          + ", ".join(f"{k[4:]} {v:.3f}" for k, v in rates.items() if k.startswith("int")))
    keys = ("lookup_vector_adds", "floor_l1_ms", "floor_l2_ms", "call_ms", "table_ms", "int_lookup_vector_adds",
            "int_floor_l1_ms", "int_floor_l2_ms", "int8_call_ms", "int8_table_ms")
    print(f"{'':8s} {'--------------------- fp32 tables ---------------------':>55s}  "
          f"{'--------------------- int8 tables ---------------------':>55s}")
    head = f"{'vec adds':>9s} {'floor L1':>9s} {'floor L2':>9s} {'call ms':>8s} {'table ms':>8s}"
    print(f"{'layer':8s} {head}  {head}")
    for r in [*rows, {"layer": "sum", **{k: sum(r[k] for r in rows) for k in keys}}]:
        cells = [f"{r[keys[0]] / 1e6:8.2f}M", *(f"{r[k]:9.3f}" for k in keys[1:3]), *(f"{r[k]:8.3f}" for k in keys[3:5]),
                 f"{r[keys[5]] / 1e6:8.2f}M", *(f"{r[k]:9.3f}" for k in keys[6:8]), *(f"{r[k]:8.3f}" for k in keys[8:])]
        print(f"{r['layer']:8s} {' '.join(cells[:5])}  {' '.join(cells[5:])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
