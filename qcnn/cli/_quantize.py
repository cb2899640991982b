"""``qcnn quantize``: train a Quantized-CNN from a float model (pq or error-corrected pq)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .._errors import QcnnError
from ..io._inputs import DATASET_IMAGES, IMAGE_SUFFIXES, image_files, read_dataset, read_images, read_npy
from ..io._qcnn_file import load, save
from ..model._model import Model
from ..plugin import set_threads
from ..train._quantize import check_calibration, quantize
from ._common import add_backend_args, emit_json, print_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quantize", help="quantize a float model (product quantization with error correction)",
        description="Quantize every conv and fc layer of FLOAT_MODEL (Wu et al., CVPR 2016). --method pq: k-means "
                    "per subspace; --method ec (default): pq refined by block coordinate descent on each layer's "
                    "response error, bottom-up, against the float network's responses on the calibration inputs "
                    "(no labels needed). Progress goes to stderr, the per-layer report to stdout.")
    p.add_argument("model", metavar="FLOAT_MODEL", help="a float .qcnn model")
    p.add_argument("--calib", metavar="SRC", default=None,
                   help="calibration inputs: a .npy batch [N, C, H, W], a directory of images (preprocessed with "
                        f"the model's pipeline), or the authors' dataset directory (holding {DATASET_IMAGES}); "
                        "required for ec, optional for pq (error report only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.qcnn", help="where to write the quantized model")
    p.add_argument("--method", choices=("ec", "pq"), default="ec", help="ec (default) or pq")
    p.add_argument("--conv", default="8:128", metavar="D:K", help="conv layers' subspace dims:codewords (default 8:128)")
    p.add_argument("--fc", default="4:32", metavar="D:K", help="fc layers' subspace dims:codewords (default 4:32)")
    p.add_argument("--layer", action="append", default=[], metavar="NAME=D:K", help="per-layer override (repeatable)")
    p.add_argument("--skip", action="append", default=[], metavar="NAME", help="keep this layer float (repeatable)")
    p.add_argument("--iters", type=int, default=10, metavar="N", help="error-correction sweeps per layer (default 10)")
    p.add_argument("--samples", type=int, default=None, metavar="N", help="use at most N calibration inputs (seeded subset)")
    p.add_argument("--positions", type=int, default=64, metavar="N",
                   help="output positions sampled per image for conv statistics (default 64)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (k-means init, subsets; default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_backend_args(p)
    return p


def _overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, dk = item.partition("=")
        if not sep or not name or not dk:
            raise QcnnError(f"--layer expects NAME=D:K, got {item!r}")
        out[name.strip()] = dk.strip()
    return out


def load_calibration(src: str, model: Model, samples: int | None = None, seed: int = 0) -> np.ndarray:
    """Calibration inputs from SRC (see ``--calib``) as an array [N, ...] (checked later by quantize)."""
    path = Path(src)
    if not path.exists():
        raise QcnnError("no such calibration file or directory", path)
    if path.is_dir():
        if (path / DATASET_IMAGES).is_file():
            return read_dataset(path, model)[0]
        try:
            files = image_files(path)
        except QcnnError:
            raise QcnnError(f"no images ({', '.join(IMAGE_SUFFIXES)}) and no {DATASET_IMAGES} in this directory",
                            path) from None
        if samples is not None and 0 < samples < len(files):
            pick = np.sort(np.random.default_rng(seed).choice(len(files), samples, replace=False))
            files = [files[i] for i in pick]
        return read_images(files, model)
    if path.suffix.lower() == ".npy":
        return read_npy(path)
    raise QcnnError(f"calibration source must be a .npy file or a directory (images or {DATASET_IMAGES})", path)


def run(args: argparse.Namespace) -> int:

    model = load(args.model)
    if args.threads is not None:
        set_threads(args.threads)
    x = None
    if args.calib is not None:
        x = check_calibration(model, load_calibration(args.calib, model, args.samples, args.seed), where=str(args.calib))
    qmodel, report = quantize(model, x, method=args.method, conv=args.conv, fc=args.fc,
                              layers=_overrides(args.layer), skip=args.skip, iters=args.iters,
                              samples=args.samples, seed=args.seed, backend=args.backend,
                              progress=not args.quiet, positions=args.positions)
    save(qmodel, args.output)
    if args.json:
        data = report.as_dict()
        data["output"] = args.output
        emit_json(data)
        return 0
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [(r.name, r.quant, fmt(r.err_input), fmt(r.err_pq), fmt(r.err_ec), f"{r.speedup:.2f}x",
             f"{r.compression:.1f}x", f"{r.seconds:.1f}", f"{r.stats_seconds:.1f}", f"{r.ec_seconds:.1f}")
            for r in report.layers]
    print_table(rows, ["layer", "D:K", "err float-w", "err pq", "err ec", "speed-up", "compression", "seconds",
                       "data s", "ec s"])
    t = report.totals
    print(f"network: {t['float_macs'] / 1e6:.2f}M -> {t['quant_macs'] / 1e6:.2f}M multiply-adds ({t['speedup']:.2f}x), "
          f"{t['float_bytes'] / 1e6:.3f} MB -> {t['quant_bytes'] / 1e6:.3f} MB ({t['compression']:.2f}x); "
          f"{report.samples} calibration inputs, {report.seconds:.1f} s")
    if report.samples:
        print("errors: relative response error ||T - Y|| / ||T|| of each layer on the calibration inputs "
              "(float-w: float weights on the quantized lower layers' output)")
    else:
        print("no --calib: response errors not measured")
    print(f"wrote {args.output}")
    return 0
