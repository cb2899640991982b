"""What a backend is: a named loader, an object that prepares layers, and its kernels.

A backend package registers a :class:`BackendSpec` from the ``qcnn_register_backends``
hook. ``spec.load()`` imports the heavy parts lazily and returns a :class:`Backend`.
``backend.prepare(layer, params, in_shape)`` lays the weights out its own way and returns
a kernel (a callable ``[N, *in_shape] -> [N, *out_shape]``), or ``None`` to let the
reference kernel run that layer.

Quantized kernels may be :class:`StagedKernel` s, so that the table-building and the
look-up stages can be timed apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .spec import Layer

__all__ = ["Backend", "BackendSpec", "Kernel", "StagedKernel"]

Kernel = Callable[[np.ndarray], np.ndarray]


@dataclass
class StagedKernel:
    """A quantized layer in the paper's two stages: ``lookup(table(x))``."""

    table: Callable[[np.ndarray], Any]
    lookup: Callable[[Any], np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.lookup(self.table(x))


@runtime_checkable
class Backend(Protocol):
    """The object ``BackendSpec.load()`` returns."""

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...]) -> Kernel | None:
        """Return a kernel for ``layer`` (x [N, *in_shape] float32 C-contiguous -> y), or None to decline."""

    def info(self) -> dict[str, Any]:
        """Facts for ``qcnn backends`` and benchmark records: BLAS, SIMD level, threads..."""

    def set_threads(self, n: int) -> None:
        """Use ``n`` threads in this backend's own kernels."""


@dataclass(frozen=True)
class BackendSpec:
    """A backend as registered: ``name``, a lazy ``load()``, and what ``qcnn backends`` shows."""

    name: str
    load: Callable[[], Backend]
    version: str = ""
    summary: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the manager: which plugin registered it
