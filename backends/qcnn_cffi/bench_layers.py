"""Per-layer timing of the cffi backend on the synthetic AlexNet: float vs quantized.

``python -m qcnn_cffi.bench_layers [--runs 50] [--threads 1] [--float-backend cffi|numpy]
[--stat median|min] [--clock wall|cpu]``
prints median end-to-end times of ``session.forward`` (batch 1) and a per-layer table: the kernel
call as the session runs it, and for quantized layers the table-building and look-up stages
timed separately (a quantized conv's call fuses them, so "quant ms" can be below their sum).
Timing only; correctness is tested in ``tests/test_cffi_backend.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import qcnn
from qcnn import zoo
from qcnn.backend import StagedKernel

__all__ = ["main"]


STAT: Callable[[list[float]], float] = statistics.median
CLOCK: Callable[[], float] = time.perf_counter


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    """ms per call: the median (or, with ``--stat min``, the minimum) over ``runs`` timed calls."""
    fn()
    times = []
    for _ in range(runs):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return 1e3 * STAT(times)


def _layer_times(session: qcnn.Session, x: np.ndarray, runs: int) -> dict[str, tuple[float, float, float]]:
    """{layer: (call ms, table ms, look-up ms)}; the stages timed separately (0 for unstaged kernels)."""
    out: dict[str, tuple[float, float, float]] = {}
    for p in session.layers:
        k = p.kernel
        if isinstance(k, StagedKernel):
            t = k.table(x)
            tl = _median_ms(lambda: k.lookup(t), runs)
            del t  # a held table cannot be reused, so time the table stage without one
            tt = _median_ms(lambda: k.table(x), runs)
            # the call as the session runs it (quantized convs fuse the stages in their call)
            out[p.layer.name] = (_median_ms(lambda: k(x), runs), tt, tl)
        else:
            out[p.layer.name] = (_median_ms(lambda: k(x), runs), 0.0, 0.0)
        x = k(x)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--float-backend", default="cffi", help="backend of the float baseline (default cffi)")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic over the runs (min is steadier on a busy machine)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this thread's CPU time (ignores time the OS ran other processes)")
    args = ap.parse_args(argv)
    global STAT, CLOCK
    STAT = min if args.stat == "min" else statistics.median
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    qcnn.set_threads(args.threads)
    qm = zoo.synthetic("alexnet")
    fm = zoo.synthetic("alexnet", quantized=False)
    qs = qcnn.compile(qm, "cffi")
    fs = qcnn.compile(fm, args.float_backend)
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227)).astype(np.float32)
    from qcnn.plugins import load_backend

    print("cffi info:", load_backend("cffi").impl.info())
    tq = _median_ms(lambda: qs.forward(x), args.runs)
    tf = _median_ms(lambda: fs.forward(x), args.runs)
    print(f"end-to-end, batch 1, {args.threads} thread(s), {args.stat} {args.clock} time of {args.runs}: "
          f"float ({args.float_backend}) {tf:.2f} ms, quantized (cffi) {tq:.2f} ms, speed-up {tf / tq:.2f}x")
    lq, lf = _layer_times(qs, x, args.runs), _layer_times(fs, x, args.runs)
    print(f"{'layer':8s} {'float ms':>9s} {'quant ms':>9s} {'table':>8s} {'look-up':>8s} {'speed-up':>8s}")
    for name in lq:
        f, (q, tt, tl) = lf[name][0], lq[name]
        split = f"{tt:8.3f} {tl:8.3f}" if tt or tl else f"{'':8s} {'':8s}"
        print(f"{name:8s} {f:9.3f} {q:9.3f} {split} {f / q:7.2f}x")
    print(f"{'sum':8s} {sum(v[0] for v in lf.values()):9.3f} {sum(v[0] for v in lq.values()):9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
