"""The numpy backend object: lays every layer out once in ``prepare``, returns vectorised kernels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qcnn.plugin import Layer, StagedKernel

from . import simple
from .conv import ConvKernel
from .fc import DenseQFc, FcKernel, QFcLookup, QFcTable, use_pairs
from .qconv import DenseQConv, QConvGeometry, QConvLookup, QConvTable

__all__ = ["NumpyBackend", "QUANT_MODES"]

#: How quantized layers run: "lut" (the Quantized-CNN way, the default) or "dense"
#: (decode to dense weights once, then the float kernels; for comparison only).
QUANT_MODES = ("lut", "dense")


class NumpyBackend:
    """Pure numpy: im2col + OpenBLAS GEMM for float layers, LUT GEMM + row gathers for quantized ones."""

    def __init__(self, quantized: str = "lut") -> None:
        if quantized not in QUANT_MODES:
            raise ValueError(f"quantized must be one of {QUANT_MODES}, got {quantized!r}")
        self.quantized = quantized
        self.threads: int | None = None

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Any:
        """A kernel for ``layer``: x [N, *in_shape] float32 C-contiguous -> y [N, *out_shape] float32."""
        op = layer.op
        if op == "conv":
            return ConvKernel(params, in_shape, layer.stride, layer.pad, layer.groups)
        if op == "qconv":
            if self.quantized == "dense":
                return DenseQConv(params, in_shape, layer.stride, layer.pad, layer.groups)
            geo = QConvGeometry(params["codebook"], params["codes"], in_shape, layer.stride, layer.pad, layer.groups)
            return StagedKernel(QConvTable(geo, params["codebook"]), QConvLookup(geo, params["codes"], params["bias"]))
        if op == "fc":
            return FcKernel(params["weight"], params["bias"])
        if op == "qfc":
            inputs = int(np.prod(in_shape))
            if self.quantized == "dense":
                return DenseQFc(params, inputs)
            codebook = params["codebook"]
            pairs = use_pairs(codebook.shape, layer.out)
            return StagedKernel(QFcTable(codebook, inputs, pairs),
                                QFcLookup(params["codes"], params["bias"], codebook.shape[1], pairs))
        if op == "pool":
            return simple.PoolKernel(in_shape, layer.kernel, layer.stride, layer.pad)
        if op == "relu":
            return simple.relu
        if op == "lrn":
            return simple.LrnKernel(in_shape, layer.size, layer.alpha, layer.beta, layer.k)
        if op == "dropout":
            return simple.dropout
        if op == "softmax":
            return simple.softmax
        return None  # an op this backend does not know: the runtime falls back to the reference

    def info(self) -> dict[str, Any]:
        """numpy's own BLAS (as threadpoolctl sees it: the library loaded from numpy's
        directory, not another backend's), its version and threads; numpy version."""
        import os

        from threadpoolctl import threadpool_info

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
