"""Regenerate the results table of docs/quantize.md: the digits LeNet quantized with plain
product quantization (pq) and with error correction (ec) at a grid of (D, K) settings.

    pip install -e ".[test]"    # scikit-learn
    python examples/digits/quantize_table.py [--iters 10] [--json results.json]

For every setting: conv layers D:K, hidden fc (fc1) D:K, last fc (fc2, 10 outputs, so at
most 10 sub-vectors per subspace) D:min(K, 8). Calibration inputs: the 1,347 training
images (no labels used); evaluation: the 450 held-out images. Reported per method:
held-out top-1 accuracy, and the relative response error of the last layer,
||fc2_q - fc2_float||_F / ||fc2_float||_F over the held-out images (logits, bias included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from digits_data import load_split  # noqa: E402

import qcnn  # noqa: E402

CONV_D = (2, 4)
FC_D = (4, 8)
KS = (8, 16, 32)


def evaluate(model: qcnn.Model, x: np.ndarray, y: np.ndarray, ref_logits: np.ndarray | None) -> tuple[float, float]:
    logits = qcnn.compile(model).run(x, outputs=["fc2"])["fc2"]
    acc = float((logits.argmax(1) == y).mean())
    err = 0.0 if ref_logits is None else float(np.linalg.norm(logits - ref_logits) / np.linalg.norm(ref_logits))
    return acc, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(HERE / "lenet_digits.qcnn"))
    ap.add_argument("--iters", type=int, default=10, help="ec sweeps per layer (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args()
    model = qcnn.load(args.model)
    x_tr, _, x_te, y_te = load_split()
    float_logits = qcnn.compile(model).run(x_te, outputs=["fc2"])["fc2"]
    float_acc, _ = evaluate(model, x_te, y_te, None)
    rows = []
    for cd in CONV_D:
        for fd in FC_D:
            for k in KS:
                setting = {"conv": f"{cd}:{k}", "fc": f"{fd}:{k}", "layers": {"fc2": f"{fd}:{min(k, 8)}"}}
                row = {**setting, "float_acc": float_acc}
                for method in ("pq", "ec"):
                    t0 = time.perf_counter()
                    q, rep = qcnn.quantize(model, x_tr, method=method, iters=args.iters, seed=args.seed,
                                           progress=False, **setting)
                    row[f"{method}_seconds"] = time.perf_counter() - t0
                    row[f"{method}_acc"], row[f"{method}_err"] = evaluate(q, x_te, y_te, float_logits)
                    row["speedup"], row["compression"] = rep.totals["speedup"], rep.totals["compression"]
                rows.append(row)
                print(f"conv {row['conv']:>5} fc {row['fc']:>5}: pq acc {row['pq_acc']:.4f} err {row['pq_err']:.4f} | "
                      f"ec acc {row['ec_acc']:.4f} err {row['ec_err']:.4f}", file=sys.stderr)
    print(f"float model: held-out accuracy {float_acc:.2%} ({len(y_te)} images)\n")
    print("| conv D:K | fc1 D:K | fc2 D:K | speed-up | compression | pq acc. | ec acc. | pq err. | ec err. |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['conv']} | {r['fc']} | {r['layers']['fc2']} | {r['speedup']:.2f}x | {r['compression']:.1f}x | "
              f"{r['pq_acc']:.2%} | {r['ec_acc']:.2%} | {r['pq_err']:.4f} | {r['ec_err']:.4f} |")
    better_err = sum(r["ec_err"] < r["pq_err"] for r in rows)
    ge_acc = sum(r["ec_acc"] >= r["pq_acc"] for r in rows)
    gt_acc = sum(r["ec_acc"] > r["pq_acc"] for r in rows)
    print(f"\nec vs pq over {len(rows)} settings: lower error in {better_err}, accuracy >= in {ge_acc}, "
          f"strictly higher in {gt_acc}")
    if args.json:
        Path(args.json).write_text(json.dumps({"float_acc": float_acc, "iters": args.iters, "seed": args.seed,
                                               "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
