"""The numba backend object: prepares layers, reports its machine facts, sets its threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import llvmlite
import numba
import numpy as np

from qcnn.backend import Kernel
from qcnn.spec import Layer

from .layers import make_kernel
from .simd import HAS_AVX512, cpu_name, simd_level

__all__ = ["NumbaBackend"]


class NumbaBackend:
    """Every layer as numba kernels; ``prepare`` also runs each kernel once so JIT
    compilation (or loading from numba's on-disk cache) never lands in a timing loop."""

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...]) -> Kernel:
        kernel = make_kernel(layer, params, in_shape, numba.get_num_threads)
        kernel(np.zeros((1, *in_shape), np.float32))  # warm-up: compile for these dtypes
        return kernel

    def info(self) -> dict[str, Any]:
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet
            layer = f"not started (configured: {numba.config.THREADING_LAYER})"
        llvm = ".".join(str(v) for v in llvmlite.binding.llvm_version_info)
        return {
            "numba": numba.__version__,
            "llvmlite": llvmlite.__version__,
            "llvm": llvm,
            "cpu": cpu_name(),
            "simd": simd_level(),
            "fc_lookup": "avx512 vpermi2ps (K <= 32)" if HAS_AVX512 else "scalar",
            "threads": numba.get_num_threads(),
            "threading_layer": layer,
        }

    def set_threads(self, n: int) -> None:
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
