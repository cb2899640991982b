"""``Model``: a network spec plus its tensors. Pure data, checked once on construction.

Tensors per layer (O = outputs, C = input channels, G = groups, k = kernel,
S = subspaces, K = codewords, D = subspace dims):

=========  ==========================================================================
float conv ``weight`` float32 [O, C/G, k, k], ``bias`` float32 [O]
quant conv ``codebook`` float32 [S, K, D] with S = ceil((C/G)/D), ``codes`` uint8
           [O, k, k, S] (0-based, < K), ``bias`` float32 [O]
float fc   ``weight`` float32 [O, F] with F the flattened (C, H, W) input size, ``bias`` [O]
quant fc   ``codebook`` float32 [S, K, D] with S = ceil(F/D), ``codes`` uint8 [O, S], ``bias`` [O]
=========  ==========================================================================

The preprocessing mean image, when the spec says ``mean: image``, is the tensor
``params["preprocess"]["mean"]``, float32 [C, H, W] (at resize size, or crop size when
``mean_after_crop``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod

import numpy as np

from .._errors import QcnnError
from ._spec import Layer, NetSpec

__all__ = ["Model", "expected_params", "PREPROCESS"]

PREPROCESS = "preprocess"  #: params key of the preprocessing tensors


def expected_params(layer: Layer, in_shape: tuple[int, ...]) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of every tensor ``layer`` needs, for one input of shape ``in_shape``."""
    if layer.type == "conv":
        cg = in_shape[0] // layer.groups
        o, k = layer.out, layer.kernel
        if layer.quant is None:
            return {"weight": ((o, cg, k, k), np.float32), "bias": ((o,), np.float32)}
        q = layer.quant
        s = q.subspaces(cg)
        return {"codebook": ((s, q.K, q.D), np.float32), "codes": ((o, k, k, s), np.uint8), "bias": ((o,), np.float32)}
    if layer.type == "fc":
        f, o = prod(in_shape), layer.out
        if layer.quant is None:
            return {"weight": ((o, f), np.float32), "bias": ((o,), np.float32)}
        q = layer.quant
        s = q.subspaces(f)
        return {"codebook": ((s, q.K, q.D), np.float32), "codes": ((o, s), np.uint8), "bias": ((o,), np.float32)}
    return {}


def mean_shape(spec: NetSpec) -> tuple[int, int, int] | None:
    """Shape of the mean image the spec asks for, or None when it needs none."""
    pre = spec.preprocess
    if pre.get("mean") != "image":
        return None
    c = spec.input[0]
    if pre.get("mean_after_crop"):
        return (c, spec.input[1], spec.input[2])
    h, w = pre.get("resize", spec.input[1:])
    return (c, int(h), int(w))


@dataclass
class Model:
    """A network: ``spec`` plus ``params[layer name][tensor name]`` (see the module doc).

    Construction checks every tensor against the spec: presence, shape, dtype, finite
    values and codes < K. ``source`` names the file it came from, for error messages.
    """

    spec: NetSpec
    params: dict[str, dict[str, np.ndarray]]
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.params = {k: dict(v) for k, v in self.params.items()}
        self.validate()

    # ---------------------------------------------------------------- checks
    def _fail(self, message: str) -> QcnnError:
        return QcnnError(message, self.source)

    def validate(self) -> None:
        """Raise :class:`QcnnError` on the first tensor that contradicts the spec."""
        shapes = self.spec.shapes()
        wanted: dict[str, dict[str, tuple[tuple[int, ...], type]]] = {}
        for layer, in_shape in zip(self.spec.layers, shapes):
            if layer.has_weights:
                wanted[layer.name] = expected_params(layer, in_shape)
        ms = mean_shape(self.spec)
        if ms is not None:
            wanted[PREPROCESS] = {"mean": (ms, np.float32)}
        extra = sorted(set(self.params) - set(wanted))
        if extra:
            raise self._fail(f"tensors for unknown or weightless layer(s) {', '.join(extra)}")
        for lname, tensors in wanted.items():
            have = self.params.get(lname, {})
            missing = sorted(set(tensors) - set(have))
            if missing:
                raise self._fail(f"layer {lname} is missing tensor(s) {', '.join(missing)}")
            unknown = sorted(set(have) - set(tensors))
            if unknown:
                raise self._fail(f"layer {lname} has unexpected tensor(s) {', '.join(unknown)}")
            for tname, (shape, dtype) in tensors.items():
                self._check(lname, tname, have[tname], shape, dtype)

    def _check(self, lname: str, tname: str, arr: np.ndarray, shape: tuple[int, ...], dtype: type) -> None:
        what = f"{lname}.{tname}"
        if not isinstance(arr, np.ndarray):
            raise self._fail(f"{what} must be a numpy array, got {type(arr).__name__}")
        if arr.shape != shape:
            raise self._fail(f"{what} has shape {list(arr.shape)}, the architecture needs {list(shape)}")
        if arr.dtype != dtype:
            raise self._fail(f"{what} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        if dtype is np.float32 and not np.isfinite(arr).all():
            raise self._fail(f"{what} contains NaN or Inf")
        if tname == "codes":
            k = self.spec.layer(lname).quant.K  # type: ignore[union-attr]
            top = int(arr.max(initial=0))
            if top >= k:
                raise self._fail(f"{what} has code {top}, out of range for K={k}")

    # ---------------------------------------------------------------- views
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def quantized(self) -> bool:
        """True when at least one conv or fc layer is product-quantized."""
        return any(layer.quant is not None for layer in self.spec.layers)

    @property
    def mean(self) -> np.ndarray | None:
        return self.params.get(PREPROCESS, {}).get("mean")

    def layer_params(self, name: str) -> Mapping[str, np.ndarray]:
        return self.params.get(name, {})
