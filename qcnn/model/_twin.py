"""The float twin of a quantized model: the same network with dense weights decoded from
the codebooks and codes. The benchmark's CNN series and every peer engine run it."""

from __future__ import annotations

import numpy as np

from ..reference import decode_conv_weight, decode_fc_weight
from ._model import Model

__all__ = ["float_twin", "is_quantized"]


def is_quantized(model: Model) -> bool:
    """True when any layer of ``model`` is product-quantized."""
    return any(layer.quant is not None for layer in model.spec.layers)


def float_twin(model: Model) -> Model:
    """The float network of ``model``: every quantized conv/fc replaced by its decoded dense weights.

    qconv codebook [S, K, D] + codes [O, k, k, S] -> weight [O, C/G, k, k] with
    W[o, sD + d, u, v] = codebook[s, codes[o, u, v, s], d]; qfc -> weight [O, F] likewise.
    Biases, float layers and the preprocessing tensors are kept. A float model is returned as is.
    """
    spec = model.spec
    if all(layer.quant is None for layer in spec.layers):
        return model
    shapes = spec.shapes()
    params = {name: dict(tensors) for name, tensors in model.params.items()}
    layers = []
    for layer, in_shape in zip(spec.layers, shapes):
        if layer.quant is not None:
            p = model.params[layer.name]
            if layer.type == "conv":
                weight = decode_conv_weight(p["codebook"], p["codes"], in_shape[0] // layer.groups)
            else:
                weight = decode_fc_weight(p["codebook"], p["codes"], int(np.prod(in_shape)))
            params[layer.name] = {"weight": np.ascontiguousarray(weight, np.float32), "bias": p["bias"]}
            layer = layer.with_quant(None)
        layers.append(layer)
    source = f"float twin of {model.source or spec.name}"
    return Model(spec.with_layers(layers), params, source=source)
