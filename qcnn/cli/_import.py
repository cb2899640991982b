"""``qcnn import``: convert a float ONNX model into a ``.qcnn`` file (to quantize it next)."""

from __future__ import annotations

import argparse
import dataclasses

from ..io._onnx_import import SUPPORTED_OPS, import_onnx
from ..io._qcnn_file import save
from ..model._model import Model


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:

    p = sub.add_parser("import", help="convert a float ONNX model to .qcnn",
                       description="Convert MODEL.onnx (a single-path float CNN) into a float .qcnn file, e.g. as "
                                   "input for `qcnn quantize`. Supported ops: " + ", ".join(SUPPORTED_OPS) + ".")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    p.add_argument("-o", "--output", required=True, metavar="FLOAT.qcnn", help="where to write the float model")
    p.add_argument("--name", default=None, help="network name (default: the ONNX graph's name)")
    return p


def run(args: argparse.Namespace) -> int:

    model = import_onnx(args.model)
    if args.name:


        model = Model(dataclasses.replace(model.spec, name=args.name), model.params, source=model.source)
    save(model, args.output)
    layers = ", ".join(f"{layer.name}:{layer.type}" for layer in model.spec.layers)
    print(f"wrote {args.output}: {model.name}, input {list(model.spec.input)}, {len(model.spec.layers)} layers ({layers})")
    return 0
