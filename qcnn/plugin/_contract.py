"""What a backend is: a named loader, an object that prepares layers, and its kernels.

A backend package registers a :class:`BackendSpec` from the ``qcnn_register_backends``
hook. ``spec.load()`` imports the heavy parts lazily and returns a :class:`Backend`.
``backend.prepare(layer, params, in_shape, out_shape)`` lays the weights out its own way
and returns a kernel (a callable ``[N, *in_shape] -> [N, *out_shape]``), or ``None`` to let
the reference kernel run that layer. An op the backend does not know, or a layer it does
not support, is declined with ``None``; :class:`OpTable` makes that the default.

The runtime checks a kernel's input once: x is float32, C-contiguous, [N, *in_shape] with
N >= 1. Kernels may rely on it and need not check again.

Quantized kernels may be :class:`StagedKernel` s, so that the table-building and the
look-up stages can be timed apart.

Table precision: ``layer.quant.tables`` is "fp32" (exact float tables) unless the user
compiled with ``tables="int16"`` or ``"int8"``; those are stated in :mod:`qcnn.reference`
(``int_tables``) and every backend must reproduce the reference's integer sums exactly. A
backend lists the precisions it implements in an optional attribute
``table_precisions`` (default: ``("fp32",)``); for any other the runtime runs the
reference kernel, so a backend never sees a precision it did not claim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..model import Layer

__all__ = ["Backend", "BackendSpec", "Kernel", "OpTable", "Prepare", "StagedKernel"]

#: A prepared layer: x [N, *in_shape] float32 C-contiguous -> y [N, *out_shape] float32.
Kernel = Callable[[np.ndarray], np.ndarray]
#: One entry of an op table: ``prepare(layer, params, in_shape, out_shape) -> Kernel | None``.
Prepare = Callable[[Layer, Mapping[str, np.ndarray], tuple[int, ...], tuple[int, ...]], "Kernel | None"]


@dataclass
class StagedKernel:
    """A quantized layer in the paper's two stages: ``lookup(table(x))``.

    ``fused`` (optional) is a call that computes both stages at once (for example with the
    table built piece by piece right before its look-ups). Its rule: ``fused(x)`` equals
    ``lookup(table(x))`` within float rounding (exactly, for integer tables). Calling the
    kernel runs ``fused`` when it is given; ``table`` and ``lookup`` stay for stage timing.
    """

    table: Callable[[np.ndarray], Any]
    lookup: Callable[[Any], np.ndarray]
    fused: Kernel | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.fused is not None:
            return self.fused(x)
        return self.lookup(self.table(x))


@runtime_checkable
class Backend(Protocol):
    """The object ``BackendSpec.load()`` returns (checked with ``isinstance`` at load)."""

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        """Return a kernel for ``layer`` (x [N, *in_shape] -> y [N, *out_shape]), or None to decline."""

    def info(self) -> dict[str, Any]:
        """Facts for ``qcnn backends`` and benchmark records: BLAS, SIMD level, threads..."""

    def set_threads(self, n: int) -> None:
        """Use ``n`` threads in this backend's own kernels."""


class OpTable:
    """A backend base whose ``prepare`` looks the layer's op up in ``self.ops``.

    ``ops`` maps an op name (``layer.op``: conv, qconv, fc, qfc, pool, relu, lrn, dropout,
    softmax, ...) to a :data:`Prepare`; an op that is not in it is declined (None), and so
    is a layer for which the entry returns None. Subclasses set ``ops`` as a class attribute
    or in ``__init__``, and still define ``info`` and ``set_threads``.
    """

    ops: Mapping[str, Prepare] = {}
    #: Table precisions the quantized entries of ``ops`` implement (see the module doc).
    table_precisions: tuple[str, ...] = ("fp32",)
    #: Why precisions are missing, shown by ``qcnn backends`` (optional).
    tables_note: str = ""

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        make = self.ops.get(layer.op)
        return None if make is None else make(layer, params, in_shape, out_shape)


@dataclass(frozen=True)
class BackendSpec:
    """A backend as registered.

    ``name``: what users pass to ``compile``; ``load``: a lazy loader returning a
    :class:`Backend`; ``summary``: one line for ``qcnn backends``; ``preference``: the rank
    for ``qcnn bench``'s default backend (higher is preferred; the reference is 0).
    ``plugin`` and ``version`` are filled in by the registry: the entry-point name that
    registered it, and that plugin's distribution version (``version`` given here wins).
    """

    name: str
    load: Callable[[], Backend]
    version: str = ""
    summary: str = ""
    preference: int = 10
    plugin: str = field(default="", compare=False)
