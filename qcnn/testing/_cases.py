"""The suite's inputs: randomised layer cases (every op, awkward shapes) and their data,
and the real AlexNet's layer activations from the seed files."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._runtime import compile
from ..io import load_seed, preprocess
from ..model import Layer, Model, Quant, expected_params, output_shape
from ..plugin import Backend, Kernel

__all__ = ["INT_RTOL", "RTOL", "ALEXNET_LAYERS", "Case", "alexnet_activations", "assert_close", "case_data", "layer_cases", "prepare_layer",
           "relative_error"]

RTOL = 1e-4
#: Integer tables: equal to the reference's integer sums; only the final float rescale may differ.
INT_RTOL = 1e-6


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    """max |y - ref| / max |ref| (0 when both are all zero)."""
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(y.astype(np.float64) - ref))) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(y: np.ndarray, ref: np.ndarray, what: str, rtol: float = RTOL) -> None:
    """Shapes equal, all finite, and :func:`relative_error` <= rtol."""
    if y.shape != ref.shape:
        raise AssertionError(f"{what}: shape {list(y.shape)}, reference {list(ref.shape)}")
    if not np.isfinite(y).all():
        raise AssertionError(f"{what}: output has NaN or Inf")
    err = relative_error(y, ref)
    if err > rtol:
        raise AssertionError(f"{what}: relative error {err:.3g} > {rtol:g}")


@dataclass(frozen=True)
class Case:
    """One layer on one input shape [N, C, H, W] (or [N, F] for fc)."""

    layer: Layer
    in_shape: tuple[int, ...]  # without batch
    batch: int
    seed: int

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The layer's output shape, without batch."""
        return output_shape(self.layer, self.in_shape)

    @property
    def id(self) -> str:
        layer = self.layer
        shape = "x".join(map(str, self.in_shape))
        parts = [layer.op, f"n{self.batch}", shape]
        if layer.type == "conv":
            parts.append(f"o{layer.out}k{layer.kernel}s{layer.stride}p{layer.pad}g{layer.groups}")
        elif layer.type == "pool":
            parts.append(f"k{layer.kernel}s{layer.stride}p{layer.pad}")
        elif layer.type == "fc":
            parts.append(f"o{layer.out}")
        elif layer.type == "lrn":
            parts.append(f"n{layer.size}")
        if layer.quant is not None:
            parts.append(f"D{layer.quant.D}K{layer.quant.K}")
        return "-".join(parts)


def _conv_cases() -> Iterator[Case]:
    # (C, H, W, O, k, stride, pad, groups, D, K, N): hand-picked to cover every axis,
    # AlexNet's shapes included (conv1's 3 channels with D=8, grouped conv2..conv5).
    table = [
        (3, 35, 35, 16, 11, 4, 0, 1, 8, 128, 1),
        (3, 17, 23, 8, 7, 2, 3, 1, 2, 16, 3),
        (8, 13, 11, 16, 5, 1, 2, 2, 3, 32, 1),
        (12, 9, 14, 12, 3, 1, 1, 3, 4, 256, 3),
        (16, 10, 10, 8, 3, 3, 1, 4, 4, 2, 1),
        (6, 7, 9, 4, 1, 1, 0, 1, 5, 64, 3),
        (10, 12, 8, 8, 2, 2, 0, 2, 8, 16, 1),
        (4, 20, 16, 8, 9, 1, 3, 1, 4, 8, 1),
        (5, 15, 13, 6, 4, 3, 2, 1, 1, 200, 3),
        (24, 13, 13, 16, 3, 1, 1, 2, 8, 128, 1),
        (3, 35, 31, 16, 11, 4, 0, 1, 8, 128, 1),   # conv1-like: S = 1, only 3 of 8 dims used
        (3, 19, 23, 8, 11, 4, 2, 1, 8, 32, 3),
        (12, 13, 17, 16, 5, 1, 2, 2, 4, 16, 1),
        (10, 12, 9, 12, 3, 2, 1, 2, 3, 256, 3),    # D = 3 does not divide Cg = 5
        (16, 11, 14, 8, 1, 1, 0, 4, 3, 2, 1),      # 1x1, K = 2, Cg = 4 split 3 + 1
        (8, 10, 10, 12, 1, 3, 1, 4, 1, 7, 3),      # 1x1 strided with padding
        (6, 16, 9, 6, 7, 3, 3, 3, 2, 64, 1),
        (9, 17, 21, 6, 4, 4, 3, 3, 5, 100, 3),     # even kernel, D > Cg
        (20, 9, 8, 10, 2, 2, 0, 1, 6, 50, 1),
        (4, 8, 13, 4, 3, 1, 0, 1, 8, 3, 3),
        (32, 13, 13, 24, 3, 1, 1, 2, 8, 128, 1),   # conv4-like
        (6, 24, 18, 4, 6, 2, 1, 2, 4, 9, 3),
        (4, 14, 12, 4, 9, 1, 3, 1, 4, 8, 1),       # 81 taps in one phase: split into several reductions
    ]
    for i, (c, h, w, o, k, st, p, g, d, kk, n) in enumerate(table):
        base = Layer(name=f"conv{i}", type="conv", out=o, kernel=k, stride=st, pad=p, groups=g)
        yield Case(base, (c, h, w), n, i)
        yield Case(base.with_quant(Quant(d, kk)), (c, h, w), n, 100 + i)


def _fc_cases() -> Iterator[Case]:
    # (input shape, O, D, K, N): F not a multiple of D, D = 1, K = 2..256, the pair tables of the numpy backend
    table = [((256, 3, 3), 64, 4, 32, 1), ((10,), 7, 3, 16, 3), ((37,), 5, 1, 16, 1),
             ((6, 2, 5), 33, 8, 256, 3), ((64,), 24, 2, 2, 1), ((3, 4, 4), 10, 5, 100, 3),
             ((256, 2, 2), 64, 4, 32, 1),
             ((10, 3, 3), 17, 4, 16, 3),     # F = 90 is not a multiple of D
             ((100,), 30, 1, 16, 1),         # fc8-like: D = 1
             ((37,), 5, 8, 256, 3),          # D > some of F's remainder, K = 256
             ((7, 5, 3), 12, 2, 2, 1),
             ((512,), 1, 16, 3, 3),
             ((30,), 40, 1, 4, 3),           # pairs of subspaces (K^2 <= O / 2), S even
             ((21,), 50, 3, 4, 1),           # pairs, S = 7 odd
             ((10, 3, 3), 200, 4, 8, 3)]    # pairs, S = 23 odd and a partial last subspace
    for i, (shape, o, d, k, n) in enumerate(table):
        base = Layer(name=f"fc{i}", type="fc", out=o)
        yield Case(base, shape, n, 200 + i)
        yield Case(base.with_quant(Quant(d, k)), shape, n, 300 + i)


def _other_cases() -> Iterator[Case]:
    pools = [((8, 13, 13), 3, 2, 0, 1), ((4, 11, 15), 3, 3, 0, 3), ((3, 10, 10), 2, 2, 1, 1),
             ((5, 8, 12), 4, 3, 2, 3), ((2, 7, 7), 1, 1, 0, 1), ((6, 9, 6), 3, 1, 1, 1)]
    for i, (shape, k, st, p, n) in enumerate(pools):
        yield Case(Layer(name=f"pool{i}", type="pool", kernel=k, stride=st, pad=p), shape, n, 400 + i)
    lrns = [((16, 9, 7), 5, 1e-4, 0.75, 1.0, 1), ((7, 5, 6), 3, 5e-4, 0.75, 2.0, 3), ((3, 4, 4), 7, 1e-2, 0.5, 1.0, 1)]
    for i, (shape, size, alpha, beta, k, n) in enumerate(lrns):
        yield Case(Layer(name=f"lrn{i}", type="lrn", size=size, alpha=alpha, beta=beta, k=k), shape, n, 500 + i)
    for i, (shape, n) in enumerate([((6, 7, 5), 1), ((4, 9, 11), 3)]):
        yield Case(Layer(name=f"relu{i}", type="relu"), shape, n, 600 + i)
        yield Case(Layer(name=f"drop{i}", type="dropout"), shape, n, 650 + i)
    for i, (shape, n) in enumerate([((1000,), 1), ((10,), 3)]):
        yield Case(Layer(name=f"prob{i}", type="softmax"), shape, n, 700 + i)


def layer_cases() -> list[Case]:
    """Every randomised layer case of the suite."""
    return [*_conv_cases(), *_fc_cases(), *_other_cases()]


def case_data(case: Case) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(case.seed)
    params: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in expected_params(case.layer, case.in_shape).items():
        if name == "codes":
            params[name] = rng.integers(0, case.layer.quant.K, size=shape, dtype=np.uint8)  # type: ignore[union-attr]
        else:
            params[name] = rng.standard_normal(shape, dtype=np.float32)
    scale = 10.0 if case.layer.type == "lrn" else 1.0  # make LRN's denominator matter
    x = (rng.standard_normal((case.batch, *case.in_shape)) * scale).astype(np.float32)
    return params, x


@functools.cache
def alexnet_activations(seed_dir: str) -> tuple[Model, dict[str, np.ndarray]]:
    """The seed AlexNet and the reference's input to ("") and output of every layer, on image 1."""
    root = Path(seed_dir)
    model = load_seed(root / "Bin.Files", arch="alexnet", extra_dirs=[root / "fc6-synthetic"],
                      mean=root / "imagenet_mean.single.bin")
    x = preprocess(root / "images" / "ILSVRC2012_val_00000001.BMP", model)[None]
    acts = {"": x, **compile(model, "reference").run(x)}
    return model, acts


def prepare_layer(backend: Backend, layer: Layer, params: dict[str, np.ndarray] | Any,
                  in_shape: tuple[int, ...]) -> Kernel | None:
    """``backend.prepare`` with the output shape the runtime would pass (``in_shape`` without batch)."""
    in_shape = tuple(int(s) for s in in_shape)
    return backend.prepare(layer, params, in_shape, output_shape(layer, in_shape))


ALEXNET_LAYERS = ("conv1 relu1 norm1 pool1 conv2 relu2 norm2 pool2 conv3 relu3 conv4 relu4 conv5 relu5 pool5 "
                  "fc6 relu6 drop6 fc7 relu7 drop7 fc8 prob").split()
