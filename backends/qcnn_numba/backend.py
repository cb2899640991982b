"""The numba backend object: prepares layers, reports its machine facts, sets its threads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import llvmlite
import numba
import numpy as np

from qcnn.plugin import Kernel, Layer, Quant, blas_info

from .layers import TiledStagedKernel, make_kernel
from .simd import HAS_AVX512, cpu_name, simd_level

__all__ = ["NumbaBackend"]


def _numpy_blas() -> dict[str, Any]:
    """threadpoolctl's record of the BLAS numpy loaded (numpy.libs/...), {} if none is seen."""

    libs = blas_info()
    own = [i for i in libs if "numpy" in str(i.get("filepath", ""))]
    return (own or libs or [{}])[0]


class NumbaBackend:
    """Every layer as numba kernels; ``prepare`` also runs each kernel once so JIT
    compilation (or loading from numba's on-disk cache) never lands in a timing loop."""

    def __init__(self) -> None:
        self._staged_warm = False

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        kernel = make_kernel(layer, params, in_shape, numba.get_num_threads)
        if kernel is None:
            return None
        kernel(np.zeros((1, *in_shape), np.float32))  # warm-up: compile (or load from cache) now
        if isinstance(kernel, TiledStagedKernel) and not self._staged_warm:
            # the staged table/lookup pair (run when the stages are timed apart) compiles once
            # per process, on a tiny layer: its signature does not depend on sizes
            tiny = make_kernel(Layer("warm-up", "conv", out=2, kernel=1, quant=Quant(1, 2)),
                               {"codebook": np.zeros((1, 2, 1), np.float32), "codes": np.zeros((2, 1, 1, 1), np.uint8),
                                "bias": np.zeros(2, np.float32)}, (1, 2, 2), numba.get_num_threads)
            assert isinstance(tiny, TiledStagedKernel)
            tiny.lookup(tiny.table(np.zeros((1, 1, 2, 2), np.float32)))
            self._staged_warm = True
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
            "fc_lookup": "avx512 vpermi2ps/vpermps on 5/4-bit packed codes (K <= 32)" if HAS_AVX512 else "scalar",
            "threads": numba.get_num_threads(),
            "threading_layer": layer,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        }

    def set_threads(self, n: int) -> None:
        """numba.set_num_threads(n), capped at numba's pool size (NUMBA_NUM_THREADS)."""
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
