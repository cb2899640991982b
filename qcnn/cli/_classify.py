"""``qcnn classify``: top-k classes of images, with names and the ground truth when known."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .._errors import QcnnError
from .._runtime import compile
from ..io import load_model
from ..io._images import preprocess
from ._common import add_backend_args, add_tables_arg, emit_json


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("classify", help="top-k classes of images",
                       description="Classify images: preprocess each with the model's pipeline, run the model and "
                                   "print the top-k classes with probabilities (and names with --labels). With "
                                   "--truth (lines 'NAME.JPEG <class id>'), the ground truth of each image is "
                                   "shown when its base name is listed.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (BMP, PNG, JPEG, ...)")
    p.add_argument("--model", required=True, help="a .qcnn file or a built-in architecture (synthetic weights)")
    p.add_argument("--labels", metavar="class_names.txt", help="one class name per line, line i = class i")
    p.add_argument("--truth", metavar="image_labels.txt", help="lines 'IMAGE_NAME <0-based class id>'")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_backend_args(p)
    add_tables_arg(p)
    return p


def read_labels(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise QcnnError(f"cannot read class names: {getattr(err, 'strerror', None) or err}", path) from None


def read_truth(path: str) -> dict[str, int]:
    """``ILSVRC2012_val_00000001.JPEG 65`` lines -> {base name without extension: class id}."""
    truth: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise QcnnError(f"cannot read image labels: {getattr(err, 'strerror', None) or err}", path) from None
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise QcnnError(f"line {number} is not 'IMAGE_NAME CLASS_ID': {line[:60]!r}", path)
        truth[Path(parts[0]).stem] = int(parts[1])
    return truth


def run(args: argparse.Namespace) -> int:


    if args.top < 1:
        raise QcnnError(f"--top must be at least 1, got {args.top}")
    model = load_model(args.model)
    names = read_labels(args.labels) if args.labels else None
    truth = read_truth(args.truth) if args.truth else {}
    session = compile(model, args.backend, threads=args.threads, tables=args.tables)
    results = []
    for image in tqdm(args.images, desc="classify", unit="image", disable=len(args.images) < 4 or None, leave=False):
        prob = session(preprocess(image, model))[0].reshape(-1)
        top = np.argsort(-prob, kind="stable")[: args.top]
        entry = {"image": image, "top": [{"class": int(c), "prob": float(prob[c]),
                                           "name": names[c] if names and c < len(names) else None} for c in top]}
        t = truth.get(Path(image).stem)
        if t is not None:
            entry["truth"] = {"class": t, "name": names[t] if names and t < len(names) else None,
                              "rank": int(np.sum(prob > prob[t])) + 1}
        results.append(entry)
    if args.json:
        emit_json({"model": model.name, "backend": args.backend, "results": results})
        return 0
    for entry in results:
        print(entry["image"])
        for i, t in enumerate(entry["top"], 1):
            print(f"  {i}. {t['prob']:.4f}  {t['class']:4d}  {t['name'] or ''}".rstrip())
        if "truth" in entry:
            t = entry["truth"]
            print(f"  truth: {t['class']} {t['name'] or ''} (rank {t['rank']})")
    return 0
