"""The numba backend object: prepares layers, reports its machine facts, sets its threads."""

from __future__ import annotations

import os
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


def _numpy_blas() -> dict[str, Any]:
    """threadpoolctl's record of the BLAS numpy loaded (numpy.libs/...), {} if none is seen."""
    from qcnn.threads import blas_info

    libs = blas_info()
    own = [i for i in libs if "numpy" in str(i.get("filepath", ""))]
    return (own or libs or [{}])[0]


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
        blas = _numpy_blas()
        return {
            "blas": blas.get("internal_api", "unknown"),  # float conv/fc GEMMs go through numpy's BLAS
            "blas_version": blas.get("version"),
            "blas_threads": blas.get("num_threads"),
            "numba": numba.__version__,
            "llvmlite": llvmlite.__version__,
            "llvm": llvm,
            "cpu": cpu_name(),
            "simd": simd_level(),
            "fc_lookup": "avx512 vpermi2ps (K <= 32)" if HAS_AVX512 else "scalar",
            "threads": numba.get_num_threads(),
            "threading_layer": layer,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        }

    def set_threads(self, n: int) -> None:
        """numba.set_num_threads(n), capped at numba's pool size (NUMBA_NUM_THREADS)."""
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
