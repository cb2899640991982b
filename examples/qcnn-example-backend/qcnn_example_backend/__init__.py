"""A sample third-party qcnn backend that implements only the quantized fc layer.

Every other layer is declined (``prepare`` returns None), so qcnn runs the reference
kernel for it. Copy this package to start a backend of your own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qcnn.plugin import BackendSpec, Layer, StagedKernel, hookimpl

__version__ = "0.1.0"


class ExampleBackend:
    """Quantized fc in the Quantized-CNN way: a look-up table, then sums of table entries."""

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> StagedKernel | None:
        if layer.op != "qfc":
            return None  # the runtime falls back to the reference kernel
        codebook = params["codebook"]  # [S, K, D]
        s, k, d = codebook.shape
        features = int(np.prod(in_shape))
        # Flat indices into the table [S * K]: entry (s, codes[o, s]) of every output o.
        flat = (np.arange(s) * k)[None, :] + params["codes"].astype(np.intp)  # [O, S]
        bias = params["bias"]

        def table(x: np.ndarray) -> np.ndarray:
            """x [N, ...] -> T [N, S*K], T[n, s*K + k] = <x[n, sD:(s+1)D], codebook[s, k]>."""
            xs = np.zeros((x.shape[0], s * d), np.float32)
            xs[:, :features] = x.reshape(x.shape[0], -1)
            return np.einsum("nsd,skd->nsk", xs.reshape(-1, s, d), codebook).reshape(x.shape[0], s * k)

        def lookup(t: np.ndarray) -> np.ndarray:
            """T [N, S*K] -> y [N, O] = bias + sum_s T[n, s, codes[o, s]]."""
            return np.ascontiguousarray(bias + t[:, flat].sum(axis=2, dtype=np.float32))

        return StagedKernel(table, lookup)

    def info(self) -> dict[str, Any]:
        return {"numpy": np.__version__, "layers": "qfc only"}

    def set_threads(self, n: int) -> None:
        pass


@hookimpl
def qcnn_register_backends(register) -> None:
    register(BackendSpec("example", ExampleBackend,
                         summary="sample third-party plugin: quantized fc only"))
