"""``qcnn info MODEL|ARCH``: the paper's cost table: multiply-adds and storage, float vs quantized."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io import load_model
from ..model import _zoo as zoo
from ..model._costs import layer_costs, totals
from ._common import emit_json, human, print_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="per-layer shapes, parameters, multiply-adds and storage",
                       description="Per-layer shapes, parameters, float vs quantized multiply-adds (the paper's "
                                   "count: table building plus look-ups) and storage, with totals. An ARCH name "
                                   "uses the published AlexNet's quantization rule (conv 8:128, fc 4:32, last fc 1:16).")
    p.add_argument("model", metavar="MODEL|ARCH", help="a .qcnn file, a spec .yaml, or a built-in architecture")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")
    return p


def _spec(text: str):

    if text.endswith((".yaml", ".yml")) or text.lower().replace("-", "_") in zoo.ARCHS and not Path(text).exists():
        spec = zoo.resolve_spec(text)
        return zoo.quantize_spec(spec, zoo.default_quant(spec)), "architecture, default quantization"

    model = load_model(text)
    return model.spec, str(text)


def run(args: argparse.Namespace) -> int:
    spec, source = _spec(args.model)
    costs = layer_costs(spec)
    tot = totals(costs)
    if args.json:
        emit_json({"model": spec.name, "source": source, "layers": [c.as_dict() for c in costs], "totals": tot})
        return 0
    print(f"{spec.name} ({source}), input {list(spec.input)}")
    rows = []
    for c in costs:
        rows.append([c.name, c.type, c.quant or "-", "x".join(map(str, c.out_shape)), human(c.params) if c.params else "-",
                     human(c.float_macs) if c.float_macs else "-", human(c.quant_macs) if c.quant_macs else "-",
                     human(c.float_bytes, "B") if c.float_bytes else "-", human(c.quant_bytes, "B") if c.quant_bytes else "-"])
    rows.append(["total", "", "", "", human(tot["params"]), human(tot["float_macs"]), human(tot["quant_macs"]),
                 human(tot["float_bytes"], "B"), human(tot["quant_bytes"], "B")])
    print_table(rows, ["layer", "type", "D:K", "output", "params", "float MACs", "quant MACs", "float size", "quant size"])
    print(f"multiply-adds: {tot['float_macs'] / 1e6:.1f}M -> {tot['quant_macs'] / 1e6:.1f}M "
          f"(table building {tot['table_macs'] / 1e6:.1f}M + look-ups {tot['lookup_macs'] / 1e6:.1f}M): "
          f"{tot['speedup']:.3f}x theoretical speed-up")
    print(f"storage: {tot['float_bytes'] / 1e6:.1f} MB -> {tot['quant_bytes'] / 1e6:.1f} MB: "
          f"{tot['compression']:.1f}x compression")
    return 0
