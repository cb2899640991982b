"""One engine alone in its own process: the synthetic AlexNet at batch 1, median ms per image.

``python benchmarks/alone.py ENGINE [--threads N] [--passes P] [--repeat R]``

ENGINE is ``BACKEND:TABLES`` for qcnn's quantized network (``cffi:fp32``, ``cffi:int8``) or a
peer name of ``qcnn bench --compare`` (``openvino-int8``), run on the float twin. Two runtimes'
thread pools in one process disturb each other at 2 threads, so thread-scaling comparisons run
each engine alone, alternating processes (see docs/kernels.md); one JSON line is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import qcnn
from qcnn.bench import machine_record, make_peer
from qcnn.model import float_twin


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    qcnn.set_threads(args.threads)
    model = qcnn.model.synthetic("alexnet")
    x = np.random.default_rng(0).standard_normal((1, *model.spec.input)).astype(np.float32)
    if ":" in args.engine:
        backend, tables = args.engine.split(":")
        run = qcnn.compile(model, backend, threads=args.threads, tables=tables).forward
    else:
        run = make_peer(args.engine, float_twin(model), threads=args.threads).run
    for _ in range(10):
        run(x)
    medians = []
    for _ in range(args.repeat):
        times = []
        for _ in range(args.passes):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        medians.append(1e3 * statistics.median(times))
    cpu = machine_record().get("cpu", {})
    print(json.dumps({"engine": args.engine, "threads": args.threads, "median_ms": statistics.median(medians),
                      "runs_ms": medians, "cpu": cpu.get("model") if isinstance(cpu, dict) else cpu}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
