"""The ``cffi`` backend object: prepares every layer op on the C kernels, reports build facts."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from qcnn.plugin import Kernel, Layer, QcnnError, get_threads

from . import float_ops
from ._ext import ffi, lib
from .qconv import qconv
from .qfc import qfc

__all__ = ["CffiBackend"]

_PREPARE: dict[str, Callable[[Layer, Mapping[str, np.ndarray], tuple[int, ...]], Kernel]] = {
    "conv": float_ops.conv,
    "qconv": qconv,
    "fc": float_ops.fc,
    "qfc": qfc,
    "pool": float_ops.max_pool,
    "relu": float_ops.relu,
    "lrn": float_ops.lrn,
    "dropout": float_ops.dropout,
    "softmax": float_ops.softmax,
}


def _text(p: Any) -> str:
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else ""


class CffiBackend:
    """Every op natively in C: quantized layers as LUT building + look-up, float ones via OpenBLAS."""

    def __init__(self) -> None:

        self.set_threads(get_threads() or os.cpu_count() or 1)

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        make = _PREPARE.get(layer.op)
        if make is None:
            return None  # an op without a C kernel: the runtime runs the reference kernel
        return make(layer, params, tuple(int(s) for s in in_shape))

    def info(self) -> dict[str, Any]:
        config = _text(lib.qc_blas_config())
        version = config.split()[1] if config.startswith("OpenBLAS ") and len(config.split()) > 1 else config
        return {
            "blas": _text(lib.qc_blas_name()),
            "blas_version": version,
            "blas_config": config,
            "simd": _text(lib.qc_simd()),
            "threads": int(lib.qc_get_threads()),
            "openmp": bool(lib.qc_openmp()),
            "compiler_flags": _text(lib.qc_cflags()),
            "conv_tile": f"{int(lib.qc_conv_r())} channels",
            "fc_block": int(lib.qc_fc_block()),
        }

    def set_threads(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise QcnnError(f"threads must be a positive integer, got {n!r}")
        lib.qc_set_threads(n)
