"""Per-layer timing of the numba backend on a synthetic model (batch 1 by default).

``python -m qcnn_numba.bench [--arch alexnet] [--threads 1] [--repeat 50] [--batch 1]``
prints median milliseconds end to end (``session.forward``) for the quantized model on
numba, the float model on numba (im2col + BLAS) and the float model on the reference,
then one line per layer of the quantized model with the table / look-up split.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import qcnn
from qcnn import zoo

__all__ = ["main"]


def _median_ms(fn, x: np.ndarray, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qcnn_numba.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="alexnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    quant = zoo.synthetic(args.arch)
    flt = zoo.synthetic(args.arch, quantized=False)
    sq = qcnn.compile(quant, "numba", threads=args.threads)
    sf = qcnn.compile(flt, "numba", threads=args.threads)
    sr = qcnn.compile(flt, "reference", threads=args.threads)
    x = np.random.default_rng(0).standard_normal((args.batch, *quant.spec.input)).astype(np.float32)
    info = qcnn.plugins.load_backend("numba").impl.info()
    print(f"{args.arch}, batch {args.batch}, {args.threads} thread(s), median of {args.repeat}; {info}")
    q_ms = _median_ms(sq.forward, x, args.repeat)
    f_ms = _median_ms(sf.forward, x, args.repeat)
    r_ms = _median_ms(sr.forward, x, max(3, args.repeat // 10))
    print(f"end to end: numba quantized {q_ms:.2f} ms | numba float {f_ms:.2f} ms | "
          f"reference float {r_ms:.2f} ms | float/quantized {f_ms / q_ms:.2f}x")
    print(f"{'layer':<8}{'op':<8}{'total ms':>10}{'table ms':>10}{'lookup ms':>10}{'float ms':>10}")
    h = x
    hf = x
    sums = [0.0, 0.0, 0.0, 0.0]
    for pq, pf in zip(sq.layers, sf.layers):
        k = pq.kernel
        tot = _median_ms(k, h, args.repeat)
        flt_ms = _median_ms(pf.kernel, hf, args.repeat)
        line = f"{pq.layer.name:<8}{pq.layer.op:<8}{tot:>10.3f}"
        if isinstance(k, qcnn.StagedKernel):
            tab = _median_ms(k.table, h, args.repeat)
            t = k.table(h)
            look = _median_ms(lambda _: k.lookup(t), h, args.repeat)
            line += f"{tab:>10.3f}{look:>10.3f}"
            sums[1] += tab
            sums[2] += look
        else:
            line += f"{'':>10}{'':>10}"
        sums[0] += tot
        sums[3] += flt_ms
        print(line + f"{flt_ms:>10.3f}")
        h = k(h)
        hf = pf.kernel(hf)
    print(f"{'sum':<16}{sums[0]:>10.3f}{sums[1]:>10.3f}{sums[2]:>10.3f}{sums[3]:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
