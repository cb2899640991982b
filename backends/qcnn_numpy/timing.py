"""Per-layer and end-to-end timing of the numpy backend on the synthetic AlexNet.

    python -m qcnn_numpy.timing [--runs 30] [--threads 1] [--batch 1] [--backend numpy] [--clock wall|cpu]

Each series: 5 warm-up passes, then ``runs`` timed ``session.forward(x)`` passes, then
``runs`` passes timed layer by layer (quantized layers also split into their table and
look-up stages). Prints medians (and the minimum of the end-to-end passes) in ms. The
clock is wall time (``time.perf_counter``) or process CPU time (``time.process_time``,
what the original code's ``clock()`` timers measure; less sensitive to other processes
taking the CPU on a busy machine). For the project's full protocol use ``qcnn bench``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import qcnn
from qcnn.backend import StagedKernel


Times = tuple[list[float], dict[str, list[float]], dict[str, list[tuple[float, float]]]]


def time_model(model: qcnn.Model, backend: str, runs: int, batch: int, clock=time.perf_counter) -> Times:
    """(end-to-end seconds, per-layer seconds, per-layer (table, lookup) seconds) over ``runs`` passes of ``clock``."""
    session = qcnn.compile(model, backend)
    x = (np.random.default_rng(0).standard_normal((batch, *model.spec.input)) * 50).astype(np.float32)
    for _ in range(5):
        session.forward(x)
    e2e = []
    for _ in range(runs):
        t = clock()
        session.forward(x)
        e2e.append(clock() - t)
    per: dict[str, list[float]] = {p.layer.name: [] for p in session.layers}
    stages: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        h = x
        for p in session.layers:
            t0 = clock()
            if isinstance(p.kernel, StagedKernel):
                table = p.kernel.table(h)
                t1 = clock()
                h = p.kernel.lookup(table)
                t2 = clock()
                stages.setdefault(p.layer.name, []).append((t1 - t0, t2 - t1))
            else:
                h = p.kernel(h)
                t2 = clock()
            per[p.layer.name].append(t2 - t0)
    return e2e, per, stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcnn_numpy.timing", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    qcnn.set_threads(args.threads)
    ms = lambda v: float(np.median(v)) * 1e3  # noqa: E731
    for quantized in (True, False):
        model = qcnn.zoo.synthetic("alexnet", quantized=quantized)
        e2e, per, stages = time_model(model, args.backend, args.runs, args.batch, clock)
        print(f"{'quantized' if quantized else 'float'} AlexNet, backend {args.backend}, {args.threads} thread(s), "
              f"batch {args.batch}, {args.runs} runs, {args.clock} clock: "
              f"end-to-end median {ms(e2e):.2f} ms (min {min(e2e) * 1e3:.2f})")
        for name, ts in per.items():
            split = ""
            if name in stages:
                table, lookup = ms([s[0] for s in stages[name]]), ms([s[1] for s in stages[name]])
                split = f"  (table {table:.2f} + look-up {lookup:.2f})"
            print(f"  {name:8s} {ms(ts):8.3f}{split}")
        print(f"  {'sum':8s} {sum(ms(ts) for ts in per.values()):8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
