"""The paper's cost model: multiply-adds and storage of every layer, float vs quantized.

Float conv: Ho Wo O (C/G) k^2 multiply-adds. Quantized conv: table building H W C K
(every input pixel against every sub-codeword, over the real channels) plus look-ups
Ho Wo O k^2 S. Float fc: O F; quantized fc: F K + O S. Storage counts float32 weights and
biases, float32 codebooks and codes at ceil(log2 K) bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod

from ._model import Model
from ._spec import Layer, NetSpec

__all__ = ["LayerCost", "layer_costs", "totals"]


@dataclass(frozen=True)
class LayerCost:
    name: str
    type: str
    quant: str  # "D:K" or ""
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int  # float parameter count (weights + biases)
    float_macs: int
    quant_macs: int  # table building + look-ups; equals float_macs for float layers
    table_macs: int
    lookup_macs: int
    float_bytes: int
    quant_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _cost(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> LayerCost:
    macs = params = table = lookup = qbytes = 0
    if layer.type == "conv":
        c, h, w = in_shape
        o, ho, wo = out_shape
        k2 = layer.kernel ** 2
        params = o * (c // layer.groups) * k2 + o
        macs = ho * wo * o * (c // layer.groups) * k2
        if layer.quant is not None:
            q = layer.quant
            s = q.subspaces(c // layer.groups)
            table, lookup = h * w * c * q.K, ho * wo * o * k2 * s
            qbytes = 4 * (s * q.K * q.D + o) + -(-o * k2 * s * q.bits // 8)
    elif layer.type == "fc":
        f, o = prod(in_shape), layer.out
        params, macs = o * f + o, o * f
        if layer.quant is not None:
            q = layer.quant
            s = q.subspaces(f)
            table, lookup = f * q.K, o * s
            qbytes = 4 * (s * q.K * q.D + o) + -(-o * s * q.bits // 8)
    quantized = layer.quant is not None
    return LayerCost(layer.name, layer.type, f"{layer.quant.D}:{layer.quant.K}" if quantized else "",
                     in_shape, out_shape, params, macs, table + lookup if quantized else macs,
                     table, lookup, 4 * params, qbytes if quantized else 4 * params)


def layer_costs(model: Model | NetSpec) -> list[LayerCost]:
    """Per-layer costs of a model or spec (quantized columns follow its quant settings)."""
    spec = model.spec if isinstance(model, Model) else model
    shapes = spec.shapes()
    return [_cost(layer, shapes[i], shapes[i + 1]) for i, layer in enumerate(spec.layers)]


def totals(costs: list[LayerCost]) -> dict[str, float]:
    """Sums, with the theoretical speed-up (float / quantized multiply-adds) and compression."""
    t = {key: sum(getattr(c, key) for c in costs)
         for key in ("params", "float_macs", "quant_macs", "table_macs", "lookup_macs", "float_bytes", "quant_bytes")}
    t["speedup"] = t["float_macs"] / t["quant_macs"] if t["quant_macs"] else 1.0
    t["compression"] = t["float_bytes"] / t["quant_bytes"] if t["quant_bytes"] else 1.0
    return t
