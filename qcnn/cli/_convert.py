"""``qcnn convert``: the authors' Bin.Files <-> a single ``.qcnn`` file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._errors import QcnnError
from ..io._qcnn_file import load, save
from ..io._seed import load_seed, save_seed


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="convert the authors' Bin.Files to .qcnn, or back",
                       description="qcnn convert SEED_DIR --arch alexnet -o OUT.qcnn reads the authors' "
                                   "files (ctrdLst/asmtLst/biasVec, or convKnl/fcntWei for float layers). "
                                   "qcnn convert MODEL.qcnn --to-seed DIR writes them back.")
    p.add_argument("source", metavar="SEED_DIR|MODEL.qcnn", help="a Bin.Files directory (or its parent), or a .qcnn file")
    p.add_argument("-o", "--output", metavar="OUT.qcnn", help="the .qcnn file to write (from a seed directory)")
    p.add_argument("--to-seed", metavar="DIR", help="write the model in the authors' format into DIR")
    p.add_argument("--arch", default="alexnet", help="architecture of the seed files (built-in name or spec .yaml; default alexnet)")
    p.add_argument("--prefix", default=None, help="file name prefix, e.g. bvlc_alexnet_aCaF (default: the architecture's)")
    p.add_argument("--mean", default=None, metavar="FILE", help="mean image .bin (default: imagenet_mean.single.bin beside Bin.Files)")
    p.add_argument("--extra-dir", action="append", default=[], metavar="DIR",
                   help="also look for missing layer files here (e.g. the fc6 stand-in); repeatable")
    return p


def run(args: argparse.Namespace) -> int:

    source = Path(args.source)
    if source.is_dir():
        if not args.output or args.to_seed:
            raise QcnnError("converting a seed directory needs -o OUT.qcnn (and no --to-seed)")
        model = load_seed(source, arch=args.arch, prefix=args.prefix, mean=args.mean, extra_dirs=args.extra_dir)
        save(model, args.output)
        print(f"wrote {args.output} ({Path(args.output).stat().st_size / 1e6:.2f} MB): {model.name}, "
              f"{sum(1 for layer in model.spec.layers if layer.quant is not None)} quantized layers")
        return 0
    if not args.to_seed or args.output:
        raise QcnnError("converting a .qcnn file needs --to-seed DIR (and no -o)")
    model = load(source)
    save_seed(model, args.to_seed, prefix=args.prefix)
    print(f"wrote {model.name} in the authors' format to {args.to_seed}")
    return 0
