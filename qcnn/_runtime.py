"""``compile(model, backend) -> Session``: every layer prepared once, then run many times."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import QcnnError
from .model import TABLE_PRECISIONS, Layer, Model
from .plugin import Kernel, StagedKernel, configured_backend, load_backend, reference_kernel, set_threads

__all__ = ["compile", "Session", "PreparedLayer", "as_batch"]


def as_batch(x: np.ndarray, in_shape: tuple[int, ...], where: str) -> np.ndarray:
    """The kernel input contract, checked once: x (numeric, [N, *in_shape] with N >= 1, or one
    sample [*in_shape]) as a C-contiguous float32 [N, *in_shape] array (a copy only when needed).
    Anything else is a one-line :class:`QcnnError` naming ``where``."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise QcnnError(f"input for {where} must be numeric, got dtype {x.dtype}")
    if x.shape == in_shape:
        x = x[None]
    if x.ndim != len(in_shape) + 1 or x.shape[1:] != in_shape or x.shape[0] < 1:
        want = ", ".join(str(s) for s in in_shape)
        raise QcnnError(f"input for {where} has shape {list(x.shape)}; expected [N, {want}] or [{want}]")
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class PreparedLayer:
    """One layer as the session runs it: the kernel and which backend provided it."""

    layer: Layer
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: Kernel
    provider: str

    @property
    def staged(self) -> bool:
        return isinstance(self.kernel, StagedKernel)


class Session:
    """A compiled model. ``session(x)`` runs the whole network; ``session.run`` gives more.

    ``times`` holds the wall time in seconds of each layer of the last run.
    """

    def __init__(self, model: Model, backend: str, layers: list[PreparedLayer], tables: str = "fp32") -> None:
        self.model = model
        self.backend = backend
        self.layers = layers
        self.tables = tables  #: the look-up table precision of the quantized layers
        self.times: dict[str, float] = {}

    @property
    def fallbacks(self) -> list[str]:
        """Layers the backend declined, run by the reference kernels instead."""
        return [p.layer.name for p in self.layers if p.provider != self.backend]

    def run(self, x: np.ndarray, outputs: str | Iterable[str] = "all", start: str | None = None,
            stop: str | None = None) -> dict[str, np.ndarray]:
        """Run layers ``start`` (default: the first) to ``stop`` (default: the last).

        x is the input of layer ``start``: [N, *in_shape] or one sample without the batch
        axis. Returns ``{layer name: [N, *out_shape] float32}`` for the requested layers
        (``"all"`` or a list of names; the last layer run is always available).
        """
        names = [p.layer.name for p in self.layers]
        if start is not None and start not in names:
            raise QcnnError(f"no layer named {start!r} to start from")
        first = names.index(start) if start is not None else 0
        last = len(names) - 1
        if stop is not None:
            if stop not in names:
                raise QcnnError(f"no layer named {stop!r} to stop at")
            last = names.index(stop)
        if outputs == "all":
            wanted = set(names[first:last + 1])
        else:
            wanted = set([outputs] if isinstance(outputs, str) else outputs)
            unknown = sorted(wanted - set(names[first:last + 1]))
            if unknown:
                raise QcnnError(f"requested layer(s) {', '.join(unknown)} not in the run {names[first]}..{names[last]}")
        x = as_batch(x, self.layers[first].in_shape, names[first])
        result: dict[str, np.ndarray] = {}
        self.times = {}
        for p in self.layers[first:last + 1]:
            t0 = time.perf_counter()
            x = p.kernel(x)
            self.times[p.layer.name] = time.perf_counter() - t0
            if p.layer.name in wanted:
                result[p.layer.name] = x
        result.setdefault(names[last], x)
        return result

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The final output for x [N, C, H, W] or [C, H, W]: [N, *out_shape]."""
        return self.run(x, outputs=[])[self.layers[-1].layer.name]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Like ``__call__`` but without per-layer timers or input checks: x must already be
        a C-contiguous float32 batch. For timing loops."""
        for p in self.layers:
            x = p.kernel(x)
        return x


def compile(model: Model, backend: str = "reference", threads: int | None = None,
            options: Mapping[str, Any] | None = None, tables: str = "fp32") -> Session:
    """Prepare every layer of ``model`` on ``backend``; layers it declines use the reference.

    ``threads`` (if given) sets BLAS, numba and C-kernel threads process-wide first.
    ``options`` are the backend's tunables (for the built-in backends, the fields of their
    config dataclass, e.g. ``{"band": False}`` on cffi); without them the backend's
    measured defaults run. ``tables`` is the look-up table precision of every quantized
    layer: "fp32" (exact), "int16" or "int8" (integer tables, see :mod:`qcnn.reference`);
    a layer whose backend does not implement it runs the reference kernel.
    """
    if tables not in TABLE_PRECISIONS:
        raise QcnnError(f"tables must be one of {', '.join(TABLE_PRECISIONS)}, got {tables!r}")
    if threads is not None:
        set_threads(threads)  # before loading: a backend loaded now gets the count once, on load
    impl = configured_backend(backend, options) if options else load_backend(backend).impl
    shapes = model.spec.shapes()
    prepared: list[PreparedLayer] = []
    supported = getattr(impl, "table_precisions", ("fp32",))
    for i, layer in enumerate(model.spec.layers):
        params = model.layer_params(layer.name)
        if layer.quant is not None:
            layer = layer.with_quant(dataclasses.replace(layer.quant, tables=tables))
        native = layer.quant is None or tables in supported
        kernel = impl.prepare(layer, params, shapes[i], shapes[i + 1]) if native else None
        provider = backend
        if kernel is None:
            kernel, provider = reference_kernel(layer, params), "reference"
        prepared.append(PreparedLayer(layer, shapes[i], shapes[i + 1], kernel, provider))
    return Session(model, backend, prepared, tables)
