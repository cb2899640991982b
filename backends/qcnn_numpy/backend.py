"""The numpy backend object: lays every layer out once in ``prepare``, returns vectorised kernels.

Each entry of the op table takes ``(layer, params, in_shape, out_shape)`` (shapes without
the batch axis) and returns a kernel x [N, *in_shape] float32 -> y [N, *out_shape] float32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

from qcnn.plugin import Kernel, Layer, OpTable, QcnnError, StagedKernel

from . import simple
from .conv import ConvKernel
from .fc import DenseQFc, FcKernel, QFcLookup, QFcTable, use_pairs
from .qconv import DenseQConv, QConvGeometry, QConvLookup, QConvTable

__all__ = ["NumpyBackend", "QUANT_MODES"]

#: How quantized layers run: "lut" (the Quantized-CNN way, the default) or "dense"
#: (decode to dense weights once, then the float kernels; for comparison only).
QUANT_MODES = ("lut", "dense")

Params = Mapping[str, np.ndarray]
Shape = tuple[int, ...]


def _conv(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return ConvKernel(p, in_shape, out_shape, layer.stride, layer.pad, layer.groups)


def _qconv_lut(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    geo = QConvGeometry(p["codebook"], p["codes"], in_shape, out_shape, layer.stride, layer.pad, layer.groups)
    return StagedKernel(QConvTable(geo, p["codebook"]), QConvLookup(geo, p["codes"], p["bias"]))


def _qconv_dense(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return DenseQConv(p, in_shape, out_shape, layer.stride, layer.pad, layer.groups)


def _fc(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return FcKernel(p["weight"], p["bias"])


def _qfc_lut(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    codebook = p["codebook"]
    pairs = use_pairs(codebook.shape, layer.out)
    return StagedKernel(QFcTable(codebook, int(np.prod(in_shape)), pairs),
                        QFcLookup(p["codes"], p["bias"], codebook.shape[1], pairs))


def _qfc_dense(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return DenseQFc(p, int(np.prod(in_shape)))


def _pool(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return simple.PoolKernel(in_shape, out_shape, layer.kernel, layer.stride, layer.pad)


def _lrn(layer: Layer, p: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    return simple.LrnKernel(in_shape, layer.size, layer.alpha, layer.beta, layer.k)


def _fixed(kernel: Kernel) -> Any:
    return lambda layer, p, in_shape, out_shape: kernel


_OPS = {"conv": _conv, "fc": _fc, "pool": _pool, "lrn": _lrn, "relu": _fixed(simple.relu),
        "dropout": _fixed(simple.dropout), "softmax": _fixed(simple.softmax)}


class NumpyBackend(OpTable):
    """Pure numpy: im2col + OpenBLAS GEMM for float layers, LUT GEMM + row gathers for quantized ones."""

    tables_note = "int16/int8: the runtime runs the reference's integer kernels for the quantized layers"

    def __init__(self, quantized: str = "lut") -> None:
        if quantized not in QUANT_MODES:
            raise QcnnError(f"numpy backend: quantized must be one of {', '.join(QUANT_MODES)}, got {quantized!r}")
        self.quantized = quantized
        self.threads: int | None = None
        lut = quantized == "lut"
        self.ops = {**_OPS, "qconv": _qconv_lut if lut else _qconv_dense, "qfc": _qfc_lut if lut else _qfc_dense}

    def info(self) -> dict[str, Any]:
        """numpy's own BLAS (as threadpoolctl sees it: the library loaded from numpy's
        directory, not another backend's), its version and threads; numpy version."""
        here = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))  # site-packages
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        own = [i for i in blas if os.path.abspath(i.get("filepath", "")).startswith(os.path.join(here, "numpy"))]
        first = (own or blas or [{}])[0]
        return {
            "numpy": np.__version__,
            "blas": first.get("internal_api", "unknown"),
            "blas_version": first.get("version"),
            "blas_architecture": first.get("architecture"),
            "blas_threads": first.get("num_threads"),
            "threads": self.threads if self.threads is not None else first.get("num_threads"),
            "quantized": self.quantized,
        }

    def set_threads(self, n: int) -> None:
        """Record ``n``: BLAS threads are set process-wide by ``qcnn.set_threads`` (threadpoolctl);
        the numpy kernels themselves are single-threaded."""
        self.threads = n
