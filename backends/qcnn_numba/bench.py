"""Per-layer timing of the numba backend on synthetic models (batch 1, 1 thread by default).

``python -m qcnn_numba.bench [--arch alexnet] [--threads 1] [--repeat 50] [--batch 1]``

Prints end-to-end medians (``session.forward``) of the quantized model on numba and of
the float model on numba (im2col + BLAS) and on the ``numpy`` backend when it is
installed, in wall time and in process CPU time (CPU time is what the paper's timers
measure, and it is robust to other processes sharing the machine). Then one line per
layer of the quantized model, timed in sequence inside forward passes, with the table
building / look-up split of the quantized layers timed through their two stages.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import qcnn
from qcnn import zoo
from qcnn.errors import QcnnError
from qcnn.plugins import load_backend

__all__ = ["main"]


def _medians(fn: Callable[[np.ndarray], object], x: np.ndarray, repeat: int) -> tuple[float, float, float]:
    """(wall ms median, CPU ms median, CPU ms minimum) of ``fn(x)`` after one warm-up call."""
    fn(x)
    wall, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3), float(np.min(cpu) * 1e3)


def _per_layer(session: qcnn.Session, x: np.ndarray, repeat: int) -> dict[str, list[float]]:
    """CPU ms per layer, timed in sequence over ``repeat`` forward passes: {name: [call, table, lookup]}.

    ``call`` comes from clean passes (each kernel as the session runs it); ``table`` and
    ``lookup`` from separate passes that run the two stages of quantized layers apart.
    """
    calls: dict[str, list[float]] = {p.layer.name: [] for p in session.layers}
    stages: dict[str, list[list[float]]] = {p.layer.name: [] for p in session.layers if p.staged}
    for _ in range(repeat):
        h = x
        for p in session.layers:
            c0 = time.process_time()
            h = p.kernel(h)
            calls[p.layer.name].append(time.process_time() - c0)
    for _ in range(repeat):
        h = x
        for p in session.layers:
            k = p.kernel
            if isinstance(k, qcnn.StagedKernel):
                c0 = time.process_time()
                t = k.table(h)
                c1 = time.process_time()
                h = k.lookup(t)
                stages[p.layer.name].append([c1 - c0, time.process_time() - c1])
            else:
                h = k(h)
    return {name: [float(np.median(v) * 1e3)] + (list(np.median(np.array(stages[name]), axis=0) * 1e3)
                                                 if name in stages else [])
            for name, v in calls.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qcnn_numba.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    quant = zoo.synthetic(args.arch)
    flt = zoo.synthetic(args.arch, quantized=False)
    x = np.random.default_rng(0).standard_normal((args.batch, *quant.spec.input)).astype(np.float32)
    sessions = {"numba quantized": qcnn.compile(quant, "numba", threads=args.threads),
                "numba float": qcnn.compile(flt, "numba", threads=args.threads)}
    try:
        sessions["numpy float"] = qcnn.compile(flt, "numpy", threads=args.threads)
    except QcnnError as err:
        print(f"(numpy backend not available: {err})")
    print(f"{args.arch}, batch {args.batch}, {args.threads} thread(s), medians of {args.repeat}")
    print(f"numba backend: {load_backend('numba').impl.info()}")
    ends = {name: _medians(s.forward, x, args.repeat) for name, s in sessions.items()}
    for name, (wall, cpu, cpu_min) in ends.items():
        print(f"end to end  {name:<16} wall {wall:8.2f} ms   CPU {cpu:8.2f} ms (min {cpu_min:.2f})")
    q_cpu = ends["numba quantized"][1]
    for name, (wall, cpu, _) in ends.items():
        if name != "numba quantized":
            print(f"speed-up of numba quantized over {name}: CPU {cpu / q_cpu:.2f}x, "
                  f"wall {wall / ends['numba quantized'][0]:.2f}x")
    print("\nper layer of the quantized model, CPU ms medians, in sequence (call: the kernel as the session runs"
          " it; table, lookup: its two stages run apart, whole LUT materialised)")
    print(f"{'layer':<8}{'op':<9}{'call':>8}{'table':>8}{'lookup':>8}")
    stats = _per_layer(sessions["numba quantized"], x, args.repeat)
    sums = np.zeros(3)
    for p in sessions["numba quantized"].layers:
        v = stats[p.layer.name]
        line = f"{p.layer.name:<8}{p.layer.op:<9}{v[0]:>8.3f}"
        if len(v) == 3:
            line += f"{v[1]:>8.3f}{v[2]:>8.3f}"
            sums[1:] += v[1:]
        sums[0] += v[0]
        print(line)
    print(f"{'sum':<17}{sums[0]:>8.3f}{sums[1]:>8.3f}{sums[2]:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
