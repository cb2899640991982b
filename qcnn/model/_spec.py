"""Network specs: the layer list, hyper-parameters, quantization settings and preprocessing.

A spec is plain data, read from YAML with ``yaml.safe_load`` and checked field by field:
unknown layer types or fields are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import yaml

from .._errors import QcnnError

__all__ = ["Quant", "Layer", "NetSpec", "LAYER_TYPES", "TABLE_PRECISIONS", "conv_out", "pool_out", "output_shape", "parse_spec", "read_spec",
           "spec_to_dict"]

#: Fields each layer type accepts, besides ``name`` and ``type``.
LAYER_TYPES: dict[str, tuple[str, ...]] = {
    "conv": ("out", "kernel", "stride", "pad", "groups", "quant"),
    "fc": ("out", "quant"),
    "pool": ("kernel", "stride", "pad"),
    "relu": (),
    "lrn": ("size", "alpha", "beta", "k"),
    "dropout": ("ratio",),
    "softmax": (),
}
_PREPROCESS_FIELDS = ("channels", "resize", "resize_mode", "crop", "mean", "mean_after_crop", "scale")


#: Look-up table precisions: exact float32, and the integer tables of qcnn.reference.
TABLE_PRECISIONS = ("fp32", "int16", "int8")


@dataclass(frozen=True)
class Quant:
    """Product-quantization setting of one conv or fc layer.

    The layer's input channels (fc: input elements) are cut into S = ceil(C / D) subspaces
    of D dims; each subspace has a codebook of K sub-codewords, so each code takes
    ceil(log2(K)) bits.
    """

    D: int
    K: int
    #: Table precision at run time (not stored in files): "fp32" (exact float tables), or the
    #: integer tables "int16" / "int8" of :mod:`qcnn.reference` (``qcnn.compile(..., tables=)``).
    tables: str = "fp32"

    def __post_init__(self) -> None:
        if self.tables not in TABLE_PRECISIONS:
            raise QcnnError(f"table precision must be one of {', '.join(TABLE_PRECISIONS)}, got {self.tables!r}")
        if not (isinstance(self.D, int) and self.D >= 1):
            raise QcnnError(f"quantization D must be a positive integer, got {self.D!r}")
        if not (isinstance(self.K, int) and 2 <= self.K <= 256):
            raise QcnnError(f"quantization K must be an integer in 2..256, got {self.K!r}")

    @property
    def bits(self) -> int:
        """Bits per stored code: enough for the largest 0-based index K-1."""
        return max(1, (self.K - 1).bit_length())

    def subspaces(self, channels: int) -> int:
        """S = ceil(channels / D)."""
        return -(-channels // self.D)

    @classmethod
    def parse(cls, text: str) -> Quant:
        """Parse ``"D:K"``, e.g. ``"8:128"``."""
        try:
            d, k = (int(p) for p in text.split(":"))
        except ValueError:
            raise QcnnError(f"expected a D:K setting such as 8:128, got {text!r}") from None
        return cls(d, k)


@dataclass(frozen=True)
class Layer:
    """One layer of a network. Only the fields of its ``type`` are meaningful.

    ``op`` names the kernel that runs it: ``conv``/``qconv``, ``fc``/``qfc``, ``pool``,
    ``relu``, ``lrn``, ``dropout`` or ``softmax``.
    """

    name: str
    type: str
    out: int = 0
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    groups: int = 1
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    ratio: float = 0.5
    quant: Quant | None = None

    @property
    def op(self) -> str:
        return ("q" + self.type) if self.quant is not None else self.type

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv", "fc")

    def with_quant(self, quant: Quant | None) -> Layer:
        return dataclasses.replace(self, quant=quant)


@dataclass(frozen=True)
class NetSpec:
    """A whole network: input shape [C, H, W], layers in order, preprocessing settings."""

    name: str
    input: tuple[int, int, int]
    layers: tuple[Layer, ...]
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    seed_prefix: str | None = None

    def __post_init__(self) -> None:
        self.shapes()  # validates every layer against its input

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise QcnnError(f"no layer named {name!r} in {self.name} (layers: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        return self.layers.index(self.layer(name))

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def shapes(self) -> list[tuple[int, ...]]:
        """Input shape of every layer, then the output shape: ``len(layers) + 1`` entries.

        Spatial maps are (C, H, W); fc and softmax outputs are (O,).
        """
        shapes: list[tuple[int, ...]] = [tuple(self.input)]
        for layer in self.layers:
            shapes.append(output_shape(layer, shapes[-1]))
        return shapes

    def input_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes()[self.index(name)]

    def with_layers(self, layers: list[Layer]) -> NetSpec:
        return dataclasses.replace(self, layers=tuple(layers))


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Conv output size: floor((size + 2 pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Max-pool output size, Caffe's ceil rounding: ceil((size + 2 pad - kernel) / stride) + 1."""
    return -(-(size + 2 * pad - kernel) // stride) + 1


def output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of ``layer`` for one input of shape ``shape`` (no batch axis)."""
    where = f"layer {layer.name}"
    if layer.type in ("conv", "pool"):
        if len(shape) != 3:
            raise QcnnError(f"{where} ({layer.type}) needs a [C, H, W] input, got {list(shape)}")
        c, h, w = shape
        if layer.kernel > h + 2 * layer.pad or layer.kernel > w + 2 * layer.pad:
            raise QcnnError(f"{where}: kernel {layer.kernel} is larger than its padded input {h}x{w}")
        if layer.type == "pool":
            ho, wo = (pool_out(n, layer.kernel, layer.stride, layer.pad) for n in (h, w))
            if (ho - 1) * layer.stride - layer.pad >= h or (wo - 1) * layer.stride - layer.pad >= w:
                raise QcnnError(f"{where}: with ceil rounding the last pooling window of a {h}x{w} input "
                                f"starts in the padding (kernel {layer.kernel}, stride {layer.stride}, pad {layer.pad})")
            return (c, ho, wo)
        if c % layer.groups or layer.out % layer.groups:
            raise QcnnError(f"{where}: {c} input and {layer.out} output channels do not split into {layer.groups} groups")
        return (layer.out, conv_out(h, layer.kernel, layer.stride, layer.pad), conv_out(w, layer.kernel, layer.stride, layer.pad))
    if layer.type == "fc":
        return (layer.out,)
    if layer.type == "softmax":
        return (prod(shape),)  # over the flattened input, as fc sees it
    if layer.type == "lrn" and len(shape) != 3:
        raise QcnnError(f"{where} (lrn) needs a [C, H, W] input, got {list(shape)}")
    return shape


_INT_FIELDS = {"out": 1, "kernel": 1, "stride": 1, "pad": 0, "groups": 1, "size": 1}
_FLOAT_FIELDS = ("alpha", "beta", "k", "ratio")


def _parse_layer(raw: Any, where: str) -> Layer:
    if not isinstance(raw, Mapping):
        raise QcnnError(f"{where}: a layer must be a mapping, got {type(raw).__name__}")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise QcnnError(f"{where}: every layer needs a non-empty string 'name'")
    if kind not in LAYER_TYPES:
        raise QcnnError(f"{where}: layer {name} has unknown type {kind!r} (known: {', '.join(LAYER_TYPES)})")
    allowed = LAYER_TYPES[kind]
    unknown = sorted(set(raw) - {"name", "type", *allowed})
    if unknown:
        raise QcnnError(f"{where}: layer {name} ({kind}) has unknown field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key in allowed:
        if key not in raw:
            continue
        value = raw[key]
        if key == "quant":
            if value is None:
                continue
            if isinstance(value, (str, Mapping)) and (isinstance(value, str) or set(value) == {"D", "K"}):
                try:
                    values[key] = Quant.parse(value) if isinstance(value, str) else Quant(value["D"], value["K"])
                except QcnnError as err:
                    raise QcnnError(f"{where}: layer {name}: {err}") from None
            else:
                raise QcnnError(f"{where}: layer {name} quant must be {{D: int, K: int}} or 'D:K', got {value!r}")
        elif key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or not _INT_FIELDS[key] <= value <= 1 << 20:
                raise QcnnError(f"{where}: layer {name} field {key} must be an integer >= {_INT_FIELDS[key]}, got {value!r}")
            values[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise QcnnError(f"{where}: layer {name} field {key} must be a finite number, got {value!r}")
            values[key] = float(value)
    if kind in ("conv", "fc") and "out" not in values:
        raise QcnnError(f"{where}: layer {name} ({kind}) needs 'out'")
    if kind in ("conv", "pool") and "kernel" not in values:
        raise QcnnError(f"{where}: layer {name} ({kind}) needs 'kernel'")
    if kind == "lrn" and values.get("size", 5) % 2 == 0:
        raise QcnnError(f"{where}: layer {name} LRN size must be odd, got {values['size']}")
    return Layer(name=name, type=kind, **values)


def parse_spec(raw: Any, where: str = "spec") -> NetSpec:
    """Build a :class:`NetSpec` from the plain dict read from YAML, checking every field."""
    if not isinstance(raw, Mapping):
        raise QcnnError(f"{where}: a network spec must be a mapping")
    unknown = sorted(set(raw) - {"name", "input", "layers", "preprocess", "seed_prefix"})
    if unknown:
        raise QcnnError(f"{where}: unknown top-level field(s) {', '.join(unknown)}")
    shape = raw.get("input")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 1 << 16 for s in shape)):
        raise QcnnError(f"{where}: 'input' must be [C, H, W] with positive integers, got {shape!r}")
    layers = raw.get("layers")
    if not isinstance(layers, list) or not layers:
        raise QcnnError(f"{where}: 'layers' must be a non-empty list")
    parsed = [_parse_layer(item, where) for item in layers]
    names = [layer.name for layer in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise QcnnError(f"{where}: duplicate layer name(s) {', '.join(dupes)}")
    pre = raw.get("preprocess") or {}
    if not isinstance(pre, Mapping) or set(pre) - set(_PREPROCESS_FIELDS):
        raise QcnnError(f"{where}: 'preprocess' accepts only {', '.join(_PREPROCESS_FIELDS)}")
    prefix = raw.get("seed_prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise QcnnError(f"{where}: 'seed_prefix' must be a string")
    name = raw.get("name", "net")
    if not isinstance(name, str):
        raise QcnnError(f"{where}: 'name' must be a string")
    try:
        return NetSpec(name=name, input=tuple(shape), layers=tuple(parsed), preprocess=dict(pre), seed_prefix=prefix)
    except QcnnError as err:
        raise QcnnError(f"{where}: {err}") from None


def read_spec(path: str | Path) -> NetSpec:
    """Read a YAML network spec file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise QcnnError(f"cannot read spec: {err.strerror}", path) from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise QcnnError(f"not a valid YAML spec ({str(err).splitlines()[0]})", path) from None
    return parse_spec(raw, str(path))


def spec_to_dict(spec: NetSpec) -> dict[str, Any]:
    """The inverse of :func:`parse_spec`: plain data for YAML, with defaults left out."""
    defaults = Layer(name="", type="relu")
    layers = []
    for layer in spec.layers:
        item: dict[str, Any] = {"name": layer.name, "type": layer.type}
        for key in LAYER_TYPES[layer.type]:
            value = getattr(layer, key)
            if key == "quant":
                if value is not None:
                    item[key] = {"D": value.D, "K": value.K}
            elif key in ("out", "kernel") or value != getattr(defaults, key):
                item[key] = value
        layers.append(item)
    out: dict[str, Any] = {"name": spec.name, "input": list(spec.input)}
    if spec.preprocess:
        out["preprocess"] = dict(spec.preprocess)
    if spec.seed_prefix:
        out["seed_prefix"] = spec.seed_prefix
    out["layers"] = layers
    return out
