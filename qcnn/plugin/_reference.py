"""The ``reference`` backend: the reference kernels (:mod:`qcnn.reference`), registered
through the same hook as every other backend."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

import numpy as np

from .. import reference as ref
from .._errors import QcnnError
from ..model import TABLE_PRECISIONS, Layer
from ._contract import BackendSpec, Kernel, StagedKernel
from ._hookspec import hookimpl
from ._threads import blas_info, get_threads

__all__ = ["ReferenceBackend", "reference_kernel", "version"]


def version() -> str:
    """qcnn's distribution version ("" when running from an uninstalled tree)."""
    try:
        return metadata.version("qcnn")
    except metadata.PackageNotFoundError:
        return ""


def reference_kernel(layer: Layer, params: Mapping[str, np.ndarray]) -> Kernel:
    """The reference kernel of ``layer`` with its tensors bound, returning C-contiguous float32
    as the contract asks (the reference math itself may return views); quantized layers are staged."""
    kernel = _reference_math(layer, params)
    if isinstance(kernel, StagedKernel):
        return StagedKernel(kernel.table, _contiguous(kernel.lookup))
    return _contiguous(kernel)


def _contiguous(fn: Kernel) -> Kernel:
    return lambda x: np.ascontiguousarray(fn(x), dtype=np.float32)


def _qconv(layer: Layer, p: Mapping[str, np.ndarray]) -> StagedKernel:
    tables = layer.quant.tables if layer.quant is not None else "fp32"
    if tables == "fp32":
        return StagedKernel(lambda x: ref.qconv_table(x, p["codebook"], layer.groups),
                            lambda t: ref.qconv_lookup(t, p["codes"], p["bias"], layer.stride, layer.pad))
    return StagedKernel(lambda x: ref.qconv_int_table(x, p["codebook"], layer.groups, tables),
                        lambda t: ref.qconv_int_lookup(t, p["codes"], p["bias"], layer.stride, layer.pad))


def _qfc(layer: Layer, p: Mapping[str, np.ndarray]) -> StagedKernel:
    tables = layer.quant.tables if layer.quant is not None else "fp32"
    if tables == "fp32":
        return StagedKernel(lambda x: ref.qfc_table(x, p["codebook"]), lambda t: ref.qfc_lookup(t, p["codes"], p["bias"]))
    return StagedKernel(lambda x: ref.qfc_int_table(x, p["codebook"], tables),
                        lambda t: ref.qfc_int_lookup(t, p["codes"], p["bias"]))


#: The reference kernel of each op, its tensors bound: ``(layer, params) -> Kernel``.
_OPS: dict[str, Any] = {
    "conv": lambda layer, p: lambda x: ref.conv(x, p["weight"], p["bias"], layer.stride, layer.pad, layer.groups),
    "qconv": lambda layer, p: _qconv(layer, p),
    "fc": lambda layer, p: lambda x: ref.fc(x, p["weight"], p["bias"]),
    "qfc": lambda layer, p: _qfc(layer, p),
    "pool": lambda layer, p: lambda x: ref.max_pool(x, layer.kernel, layer.stride, layer.pad),
    "relu": lambda layer, p: ref.relu,
    "lrn": lambda layer, p: lambda x: ref.lrn(x, layer.size, layer.alpha, layer.beta, layer.k),
    "dropout": lambda layer, p: ref.dropout,
    "softmax": lambda layer, p: ref.softmax,
}


def _reference_math(layer: Layer, params: Mapping[str, np.ndarray]) -> Kernel:
    if layer.op not in _OPS:
        raise QcnnError(f"layer {layer.name}: no reference kernel for op {layer.op!r}")
    return _OPS[layer.op](layer, params)


class ReferenceBackend:
    """Clarity-first numpy; the semantics every other backend is checked against."""

    table_precisions = TABLE_PRECISIONS

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        return reference_kernel(layer, params) if layer.op in _OPS else None

    def info(self) -> dict[str, Any]:
        blas = blas_info()
        return {"numpy": np.__version__, "blas": blas[0]["internal_api"] if blas else "",
                "blas_version": blas[0]["version"] if blas else "", "threads": get_threads() or "default"}

    def set_threads(self, n: int) -> None:
        """Reference kernels have no threads of their own; BLAS threads are set centrally."""


@hookimpl
def qcnn_register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(BackendSpec("reference", ReferenceBackend, preference=0,
                         summary="clarity-first numpy reference kernels"))
