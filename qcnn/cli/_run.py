"""``qcnn run``: run a model on one input and save chosen layer outputs to ``.npz``."""

from __future__ import annotations

import argparse
import io

import numpy as np

from .._errors import QcnnError
from .._runtime import compile
from ..io import load_model
from ..io._qcnn_file import atomic_write
from ._common import add_backend_args, add_tables_arg, load_input


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="run a model and save layer outputs to .npz",
                       description="Run MODEL on INPUT (an image, preprocessed with the model's pipeline, or a "
                                   ".npy blob [C,H,W] or [N,C,H,W]) and save the requested layers' outputs, one "
                                   "array per layer keyed by layer name. A single input is saved without the batch axis.")
    p.add_argument("model", metavar="MODEL", help="a .qcnn file or a built-in architecture (synthetic weights)")
    p.add_argument("input", metavar="INPUT", help="an image file or a .npy array")
    p.add_argument("--layers", default=None, help="'all' or comma-separated layer names (default: the last layer)")
    p.add_argument("--start", default=None, metavar="LAYER", help="INPUT is the input of this layer; run from there")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write the outputs")
    add_backend_args(p)
    add_tables_arg(p)
    return p


def run(args: argparse.Namespace) -> int:

    model = load_model(args.model)
    session = compile(model, args.backend, threads=args.threads, tables=args.tables)
    if args.start is not None:
        x = np.load(args.input, allow_pickle=False) if args.input.endswith(".npy") else None
        if x is None:
            raise QcnnError("--start needs a .npy input (the layer's input blob)", args.input)
        batched = x.ndim == len(session.layers[model.spec.index(args.start)].in_shape) + 1
    else:
        x, batched = load_input(args.input, model)
    if args.layers in (None, ""):
        outputs: str | list[str] = [model.spec.layers[-1].name]
    elif args.layers == "all":
        outputs = "all"
    else:
        outputs = [name.strip() for name in args.layers.split(",") if name.strip()]
    result = session.run(x, outputs=outputs, start=args.start)
    if outputs != "all":
        result = {name: result[name] for name in outputs}
    arrays = {name: (y if batched else y[0]) for name, y in result.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(args.output, lambda f: f.write(buf.getvalue()))
    print(f"wrote {args.output}: {', '.join(f'{k} {list(v.shape)}' for k, v in arrays.items())}")
    return 0
