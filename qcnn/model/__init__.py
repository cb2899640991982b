"""The network and its weights as pure data: spec, model, cost model, built-in architectures.

* :class:`NetSpec` / :class:`Layer` / :class:`Quant`: the network (YAML-shaped, validated);
* :class:`Model`: a spec plus its tensors; :func:`float_twin` decodes a quantized model;
* :func:`layer_costs` / :func:`totals`: the paper's multiply-add and byte counts;
* :func:`synthetic` / :func:`arch_spec`: the built-in architectures (``ARCHS``) with seeded
  random weights, for benchmarks that need no download.
"""

from __future__ import annotations

from ._costs import LayerCost, layer_costs, totals
from ._model import PREPROCESS, Model, expected_params, mean_shape
from ._spec import (LAYER_TYPES, TABLE_PRECISIONS, Layer, NetSpec, Quant, conv_out, output_shape, parse_spec, pool_out,
                    read_spec, spec_to_dict)
from ._twin import float_twin, is_quantized
from ._zoo import ARCHS, arch_spec, default_quant, quantize_spec, resolve_spec, synthetic

__all__ = [
    "ARCHS", "LAYER_TYPES", "TABLE_PRECISIONS", "PREPROCESS", "Layer", "LayerCost", "Model", "NetSpec", "Quant", "arch_spec", "conv_out",
    "default_quant", "expected_params", "float_twin", "is_quantized", "layer_costs", "mean_shape", "output_shape",
    "parse_spec", "pool_out", "quantize_spec", "read_spec", "resolve_spec", "spec_to_dict", "synthetic", "totals",
]
