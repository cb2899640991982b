"""``qcnn bench``: the paper's speed test (forward time per image, float CNN vs Q-CNN).

The measuring is :func:`qcnn.bench.run_bench`; this module parses options and prints the
tables: one row per run like the authors' README (plus mean, median, min, max), the
measured and theoretical speed-up, a summary per engine with ``--backend all`` or
``--compare``, and with ``--per-layer`` the per-layer times (quantized conv/fc split into
table building and look-up).
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..bench._machine import short_summary
from ..bench._plot import plot_engines, plot_layers
from ..bench._protocol import BenchResult, Series, run_bench
from ..io import load_model
from ._classify import read_truth
from ._common import emit_json, print_table
from ._quantize import load_calibration

__all__ = ["add_parser", "run", "format_report"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="the paper's speed test: forward time per image, CNN vs Q-CNN, across backends and peers",
        description="Forward time per image (default: batch size 1, 100 batches, the whole run repeated 5 "
                    "times, 1 thread), float CNN vs quantized Q-CNN, as in the Quantized-CNN README. The float "
                    "network of a quantized model is its decoded dense twin. Every result records the machine.")
    p.add_argument("--model", metavar="PATH|ARCH", default=None,
                   help="a .qcnn file, or a built-in architecture (synthetic quantized weights); "
                        "default: synthetic quantized alexnet")
    p.add_argument("--backend", metavar="NAME|all", default=None,
                   help="backend(s), comma-separated, or 'all' (every available one, side by side); "
                        "default: the fastest available of cffi, numba, numpy, reference")
    p.add_argument("--mode", choices=("float", "quantized", "both"), default="both",
                   help="which network to time (default: both)")
    p.add_argument("--batches", type=int, default=100, metavar="N", help="batches per run (default 100)")
    p.add_argument("--repeat", type=int, default=5, metavar="R", help="runs (default 5)")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="images per batch (default 1)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="threads for BLAS, backends and peers (default 1)")
    p.add_argument("--warmup", type=int, default=2, metavar="N",
                   help="untimed passes per engine and mode before timing (default 2)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="DIR", help="time on these images (preprocessed for the model)")
    src.add_argument("--dataset", metavar="DIR",
                     help="the authors' format: dataMatTst.single.bin [N,3,H,W] (+ lablVecTst.uint16.bin labels)")
    p.add_argument("--truth", metavar="image_labels.txt",
                   help="with --images: lines 'IMAGE_NAME <0-based class id>' for top-1..top-5 accuracy")
    p.add_argument("--per-layer", action="store_true",
                   help="per-layer times; quantized conv/fc split into table building and look-up")
    p.add_argument("--layers", metavar="NAMES|OPS", default=None,
                   help="with --per-layer: show only these layers, by name or op, comma-separated "
                        "(e.g. qconv,fc6); the JSON keeps every layer")
    p.add_argument("--stat", choices=("mean", "median", "min"), default="mean",
                   help="with --per-layer: the statistic of each layer's passes (default mean)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or the calling thread's CPU time (steadier on a busy machine at 1 thread, "
                        "blind to other threads' work; default wall)")
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON ('-' for stdout: no tables)")
    p.add_argument("--compare", metavar="PEERS", default="",
                   help="time the same float network in peer engines too, comma-separated, or 'all' (every "
                        "installed one): onnxruntime, onnxruntime-int8, openvino, openvino-f32, openvino-int8 "
                        '(pip install "qcnn[peers]"), torch, torch-compile (pip install "qcnn[torch]")')
    p.add_argument("--calib", metavar="SRC", default=None,
                   help="calibration inputs of the int8 peers, as qcnn quantize takes them: a .npy batch "
                        "[N, C, H, W], a directory of images, or the authors' dataset directory "
                        "(default: the benchmark's inputs)")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="where the peers' exported and quantized models are cached (default: the user cache "
                        "directory, e.g. ~/.cache/qcnn)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw the engines as bars (median, min-max) to FILE.png; with --per-layer also a stacked "
                        "per-layer chart (table building vs look-up) to FILE-layers.png (pip install \"qcnn[plot]\")")
    p.add_argument("--tables", metavar="PRECISIONS", default=None,
                   help="table precisions of the quantized mode, comma-separated from fp32, int16, int8 "
                        "(default: fp32, plus int8 on backends that implement it)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the output check against the reference on the first batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input images (default 0)")
    return p


def run(args: argparse.Namespace) -> int:

    if args.truth and not args.images:
        raise QcnnError("--truth needs --images")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise QcnnError(f"--plot writes a PNG file: give a name ending in .png, got {args.plot!r}")
    to_stdout = args.json == "-"
    calib = None
    if args.calib is not None:
        if not args.compare:
            raise QcnnError("--calib needs --compare (it calibrates the int8 peers)")
        calib = load_calibration(args.calib, load_model(args.model))
    result = run_bench(
        model=args.model, backends=args.backend, mode=args.mode, batches=args.batches, repeat=args.repeat,
        batch_size=args.batch_size, threads=args.threads, warmup=args.warmup, images=args.images,
        dataset=args.dataset, labels=read_truth(args.truth) if args.truth else None, per_layer=args.per_layer,
        compare=args.compare, check=not args.no_check, progress=not to_stdout, seed=args.seed,
        command=shlex.join(["qcnn", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else None, clock=args.clock,
        calib=calib, cache_dir=args.cache_dir, tables=args.tables)
    if args.json:
        emit_json(result.to_dict(), args.json)
    if not to_stdout:
        sys.stdout.write(format_report(result, stat=args.stat, layers=_layer_filter(args.layers)))
    if args.plot:
        written = [plot_engines(result, args.plot)]
        if args.per_layer:
            base = Path(args.plot)
            written.append(plot_layers(result, base.with_name(f"{base.stem}-layers{base.suffix or '.png'}")))
        if not to_stdout:
            print("wrote " + ", ".join(map(str, written)))
    return 0


# --------------------------------------------------------------------------- text
def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def _title(s: Series, many: bool) -> str:
    return f"{s.engine} {s.net}" if many else s.net


def _table(rows: list[list[str]], headers: list[str]) -> str:


    buf = io.StringIO()
    print_table(rows, headers, file=buf)
    return buf.getvalue()


def _layer_filter(text: str | None) -> set[str] | None:
    if text is None:
        return None
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names:
        raise QcnnError("--layers needs at least one layer name or op")
    return names


def format_report(result: BenchResult, stat: str = "mean", layers: set[str] | None = None) -> str:
    """The human-readable report of a :class:`BenchResult` (what ``qcnn bench`` prints).

    ``stat`` (mean, median, min) and ``layers`` (names or ops to keep) shape the per-layer table.
    """

    pr, series = result.protocol, result.series
    out: list[str] = []
    thr = f"{pr['threads']} thread{'s' if pr['threads'] != 1 else ''}"
    inputs = result.inputs
    src = inputs["kind"] if inputs["kind"] == "random" else f"{inputs['kind']} {inputs['source']} ({inputs['count']})"
    out.append(f"model: {result.model['name']} ({result.model['source']}); inputs: {src}")
    out.append(f"protocol: {pr['batches']} batches x {pr['repeat']} runs, batch size {pr['batch_size']}, {thr}, "
               f"warm-up {pr['warmup']} passes; ms per image ({pr.get('clock', 'wall')} clock)")
    out.append(f"machine: {short_summary(result.machine)}")
    for skip in result.skipped:
        out.append(f"skipped backend {skip['backend'] or '?'}: {skip['reason']}")
    for note in result.notes:
        out.append(f"note: {note}")
    for s in series:
        if s.fallbacks:
            out.append(f"note: {s.engine} {s.net}: layers run by the reference: {', '.join(s.fallbacks)}")
    many = len(result.engines) > 1
    out.append("")
    out.append("Forward time per image (ms)")
    headers = ["run"] + [_title(s, many) for s in series]
    rows = [[str(r + 1)] + [_ms(float(s.runs_ms[r])) for s in series] for r in range(pr["repeat"])]
    runs = [s.runs_ms for s in series]
    rows.append(["mean"] + [_ms(float(v.mean())) for v in runs])
    if pr["repeat"] > 1:
        rows.append(["median"] + [_ms(float(np.median(v))) for v in runs])
        rows.append(["min"] + [_ms(float(v.min())) for v in runs])
        rows.append(["max"] + [_ms(float(v.max())) for v in runs])
    out.append(_table(rows, headers).rstrip("\n"))
    out.append("")
    th = result.theory
    for sp in result.speedups():
        out.append(f"speed-up of Q-CNN over CNN ({sp['engine']}): {sp['mean']:.2f}x "
                   f"(of the means; {sp['median']:.2f}x of the medians)")
    if "quantized" in pr["modes"] or result.model["quantized_layers"]:
        out.append(f"theoretical speed-up (multiply-adds, qcnn.model.layer_costs): {th['speedup']:.2f}x "
                   f"({th['float_macs'] / 1e6:.1f}M -> {th['quant_macs'] / 1e6:.1f}M); "
                   f"storage {th['float_bytes'] / 1e6:.1f} MB -> {th['quant_bytes'] / 1e6:.1f} MB "
                   f"({th['compression']:.1f}x)")
    if many or any(s.kind == "peer" for s in series):
        out.append("")
        out.append(_summary(result))
    checks = [s for s in series if s.agreement is not None]
    if checks and not (many or any(s.kind == "peer" for s in series)):
        for s in checks:
            a = s.agreement
            assert a is not None
            out.append(f"check {s.engine} {s.net} vs {a['against']}: max rel. diff {_rel(a)} "
                       f"({'ok' if a['ok'] else 'MISMATCH'})")
    for s in series:
        acc = s.accuracy()
        if acc:
            out.append(f"accuracy {s.engine} {s.net} over {acc['images']} images: "
                       + ", ".join(f"top-{k} {100 * acc[f'top{k}']:.1f}%" for k in range(1, 6)))
    if pr["per_layer"]:
        out.append("")
        out.append(_per_layer(result, many, stat, layers))
    return "\n".join(out) + "\n"


def _rel(a: dict[str, Any]) -> str:
    d = a.get("max_rel_diff")
    return "-" if d is None else f"{d:.1e}"


def _check_text(a: dict[str, Any] | None) -> str:
    if a is None:
        return "-"
    verdict = {True: "ok", False: "MISMATCH", None: "(not judged)"}[a["ok"]]
    return f"{_rel(a)} {verdict}"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def _summary(result: BenchResult) -> str:
    """One row per series: speed, precision, graph variant, model size, set-up, agreement."""
    rows = []
    peers = any(s.kind == "peer" for s in result.series)
    for s in result.series:
        runs = s.runs_ms
        speed = ""
        if s.mode == "quantized":
            f = result.get(s.engine, "float")
            if f is not None:
                speed = f"{f.median_ms / s.median_ms:.2f}x"
        a = s.agreement
        row = [s.engine, s.net, _ms(s.median_ms), f"{_ms(float(runs.min()))}-{_ms(float(runs.max()))}",
               _ms(s.mean_ms), speed]
        if peers:
            setup = s.info.get("setup") or {}
            total = setup.get("total_s")
            graph = s.info.get("graph", "qcnn" if s.kind == "backend" else "-")
            top1 = a.get("top1_agreement") if a else None
            row += [s.precision, graph, _mb(s.model_bytes),
                    "-" if total is None else f"{total:.2f}{' (cached)' if setup.get('cached') else ''}",
                    "-" if top1 is None else f"{100 * top1:.0f}%"]
        rows.append(row + [_check_text(a)])
    headers = ["engine", "net", "median ms", "min-max ms", "mean ms", "CNN/Q-CNN"]
    if peers:
        headers += ["precision", "graph", "model MB", "set-up s", "top-1 agr."]
    out = _table(rows, headers + ["check (rel. diff)"]).rstrip("\n")
    notes = [f"{s.engine}: graph {s.info['graph']} chosen, trial median ms per batch "
             + ", ".join(f"{k} {v:.3f}" for k, v in s.info["graph_ms"].items())
             for s in result.series if s.kind == "peer" and s.info.get("graph_ms")]
    return out + ("\n" + "\n".join(notes) if notes else "")


_GROUPS = (("conv", ("conv", "qconv")), ("pool", ("pool",)), ("fc", ("fc", "qfc")), ("relu", ("relu",)),
           ("lrn", ("lrn",)), ("dropout", ("dropout",)), ("softmax", ("softmax",)))


def _per_layer(result: BenchResult, many: bool, stat: str = "mean", keep: set[str] | None = None) -> str:
    series = [s for s in result.series if s.layer_samples is not None]
    if not series:
        return "per-layer times: none (peers are timed end to end only)"
    prefix = "" if stat == "mean" else f"{stat}_"  # the keys of Series.layers()
    total, table, lookup = f"{stat}_ms", f"{prefix}table_ms", f"{prefix}lookup_ms"
    tables = [s.layers() or [] for s in series]
    names = series[0].layer_names
    shown = [i for i, name in enumerate(names)
             if keep is None or name in keep or any(s.layer_ops[i] in keep for s in series if i < len(s.layer_ops))]
    if not shown:
        return f"per-layer times: no layer matches --layers {','.join(sorted(keep or ()))}"
    rows: list[list[str]] = []
    for i in shown:
        rows.append([names[i], series[0].layer_ops[i]] + [_ms(t[i][total]) if i < len(t) else "-" for t in tables])
        if any(i < len(t) and table in t[i] for t in tables):
            rows.append(["  table", ""] + [_ms(t[i].get(table)) if i < len(t) else "-" for t in tables])
            rows.append(["  look-up", ""] + [_ms(t[i].get(lookup)) if i < len(t) else "-" for t in tables])
    picked = [[t[i] for i in shown if i < len(t)] for t in tables]
    rows.append(["sum", ""] + [_ms(sum(r[total] for r in t)) for t in picked])
    for group, ops in _GROUPS:
        vals = [sum(r[total] for r in t if r["op"] in ops) for t in picked]
        if any(any(r["op"] in ops for r in t) for t in picked):
            rows.append([f"[{group}]", ""] + [_ms(v) for v in vals])
    rows.append(["[table building]", ""] + [_ms(sum(r.get(table, 0.0) for r in t)) for t in picked])
    rows.append(["[look-up]", ""] + [_ms(sum(r.get(lookup, 0.0) for r in t)) for t in picked])
    headers = ["layer", "op"] + [_title(s, many) for s in series]
    what = {"mean": "mean over all passes", "median": "median of all passes", "min": "minimum over all passes"}[stat]
    return f"Per-layer time per image (ms, {what})\n" + _table(rows, headers).rstrip("\n")
