"""Built-in architectures (the six of the Quantized-CNN release) and synthetic models.

Timing does not depend on weight values, so :func:`synthetic` gives benchmark-ready
models without any download.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from .._errors import QcnnError
from ._model import PREPROCESS, Model, expected_params, mean_shape
from ._spec import Layer, NetSpec, Quant, parse_spec, read_spec

__all__ = ["ARCHS", "arch_spec", "synthetic", "default_quant", "quantize_spec", "resolve_spec"]

#: Built-in architecture names.
ARCHS = ("alexnet", "caffenet", "vgg_cnn_s", "vgg16", "caffenet_fgb", "caffenet_fgd")

#: Per-layer (D, K) of the published AlexNet: conv 8:128, hidden fc 4:32, last fc 1:16.
CONV_QUANT, FC_QUANT, LAST_FC_QUANT = Quant(8, 128), Quant(4, 32), Quant(1, 16)


def arch_spec(name: str) -> NetSpec:
    """The float spec of a built-in architecture."""

    key = name.lower().replace("-", "_")
    if key not in ARCHS:
        raise QcnnError(f"unknown architecture {name!r} (built-in: {', '.join(ARCHS)})")
    text = resources.files("qcnn.model.archs").joinpath(f"{key}.yaml").read_text(encoding="utf-8")
    return parse_spec(yaml.safe_load(text), f"built-in {key}")


def resolve_spec(arch: str | Path | NetSpec) -> NetSpec:
    """A built-in architecture name, a YAML spec file, or a spec already parsed."""
    if isinstance(arch, NetSpec):
        return arch
    if isinstance(arch, str) and arch.lower().replace("-", "_") in ARCHS:
        return arch_spec(arch)
    if Path(arch).is_file():
        return read_spec(arch)
    raise QcnnError(f"{arch}: not a built-in architecture ({', '.join(ARCHS)}) nor a spec file")


def default_quant(spec: NetSpec, conv: Quant = CONV_QUANT, fc: Quant = FC_QUANT,
                  last_fc: Quant = LAST_FC_QUANT) -> dict[str, Quant]:
    """The published AlexNet's (D, K) rule for every conv and fc layer of ``spec``."""
    fcs = [layer.name for layer in spec.layers if layer.type == "fc"]
    out: dict[str, Quant] = {}
    for layer in spec.layers:
        if layer.type == "conv":
            out[layer.name] = conv
        elif layer.type == "fc":
            out[layer.name] = last_fc if layer.name == fcs[-1] else fc
    return out


def quantize_spec(spec: NetSpec, quant: Mapping[str, Quant | None]) -> NetSpec:
    """``spec`` with the quantization of the named layers set (None: float)."""
    unknown = sorted(set(quant) - {layer.name for layer in spec.layers if layer.has_weights})
    if unknown:
        raise QcnnError(f"{spec.name}: no conv or fc layer named {', '.join(unknown)}")
    return spec.with_layers([layer.with_quant(quant[layer.name]) if layer.name in quant else layer
                             for layer in spec.layers])


def synthetic(arch: str | Path | NetSpec = "alexnet", quantized: bool = True, seed: int = 0,
              conv: Quant | str = CONV_QUANT, fc: Quant | str = FC_QUANT, last_fc: Quant | str = LAST_FC_QUANT,
              layers: Mapping[str, Quant | str | None] | None = None) -> Model:
    """A complete model with seeded random weights.

    ``arch`` is a built-in name or a spec file. With ``quantized`` every conv/fc layer
    gets the published AlexNet's (D, K) rule (``conv``, ``fc`` for hidden fc layers,
    ``last_fc`` for the classifier); ``layers`` overrides single layers
    (``{"fc8": "2:64"}``, or ``None`` to keep that layer float). Weights are He-scaled
    Gaussians (codewords likewise), biases small, so activations stay in a sane range.
    """
    base = resolve_spec(arch)
    as_quant = lambda q: Quant.parse(q) if isinstance(q, str) else q  # noqa: E731
    plan: dict[str, Quant | None] = {}
    if quantized:
        plan.update(default_quant(base, as_quant(conv), as_quant(fc), as_quant(last_fc)))
    for name, q in (layers or {}).items():
        plan[name] = None if q is None else as_quant(q)
    spec = quantize_spec(base, plan)
    rng = np.random.default_rng(seed)
    params: dict[str, dict[str, np.ndarray]] = {}
    for layer, in_shape in zip(spec.layers, spec.shapes()):
        if layer.has_weights:
            params[layer.name] = _random_params(layer, in_shape, rng)
    ms = mean_shape(spec)
    if ms is not None:
        params[PREPROCESS] = {"mean": np.full(ms, 117.0, np.float32)}
    return Model(spec, params, source=f"synthetic {spec.name}")


def _random_params(layer: Layer, in_shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    shapes = expected_params(layer, in_shape)
    fan_in = int(np.prod(in_shape)) if layer.type == "fc" else (in_shape[0] // layer.groups) * layer.kernel ** 2
    std = np.float32(np.sqrt(2.0 / fan_in))
    out: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in shapes.items():
        if name == "codes":
            out[name] = rng.integers(0, layer.quant.K, size=shape, dtype=np.uint8)  # type: ignore[union-attr]
        elif name == "bias":
            out[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01))
        else:
            out[name] = rng.standard_normal(shape, dtype=np.float32) * std
    return out
