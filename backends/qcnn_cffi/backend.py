"""The ``cffi`` backend object: prepares every layer op on the C kernels, reports build facts."""

from __future__ import annotations

import functools
from typing import Any

from qcnn.plugin import OpTable, QcnnError

from . import float_ops
from ._ext import ffi, lib
from .config import CffiConfig, make_config
from .qconv import qconv
from .qfc import qfc

__all__ = ["CffiBackend"]


def _text(p: Any) -> str:
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else ""


class CffiBackend(OpTable):
    """Every op natively in C: quantized layers as LUT building + look-up, float ones via OpenBLAS.

    ``CffiBackend(config=CffiConfig(...))`` or ``CffiBackend(**fields)`` (the fields of
    :class:`~qcnn_cffi.config.CffiConfig`; both: ``config`` with ``fields`` replaced). The thread
    count is the process's (C kernels and BLAS): every core until ``set_threads``."""

    #: exact float tables and the reference's two integer precisions, all natively in C
    table_precisions = ("fp32", "int16", "int8")

    def __init__(self, config: CffiConfig | None = None, **fields: Any) -> None:
        self.config = make_config(config, **fields)
        self.ops = {
            "conv": float_ops.conv,
            "qconv": functools.partial(qconv, config=self.config),
            "fc": float_ops.fc,
            "qfc": qfc,
            "pool": float_ops.max_pool,
            "relu": float_ops.relu,
            "lrn": float_ops.lrn,
            "dropout": float_ops.dropout,
            "softmax": float_ops.softmax,
        }

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
