"""The numba backend object: prepares layers, reports its machine facts, sets its threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import llvmlite
import numba
import numpy as np

from qcnn.plugin import Kernel, Layer, OpTable, Quant, StagedKernel, blas_info

from .config import NumbaConfig
from .layers import op_table
from .simd import HAS_AVX512, cpu_name, simd_level

__all__ = ["NumbaBackend"]


def _numpy_blas() -> dict[str, Any]:
    """threadpoolctl's record of the BLAS numpy loaded (numpy.libs/...), {} if none is seen."""

    libs = blas_info()
    own = [i for i in libs if "numpy" in str(i.get("filepath", ""))]
    return (own or libs or [{}])[0]


class NumbaBackend(OpTable):
    """Every layer as numba kernels; ``prepare`` also runs each kernel once so JIT
    compilation (or loading from numba's on-disk cache) never lands in a timing loop.

    ``NumbaBackend(config=NumbaConfig(...))`` or ``NumbaBackend(**fields)`` (the fields of
    :class:`NumbaConfig`, replacing those of ``config``); an unknown field is a QcnnError.
    """

    tables_note = ("int16/int8 not implemented yet (the native integer kernels are cffi's): with "
                   "tables=int16/int8 the runtime runs the reference's integer kernels for the quantized layers")

    #: The OMP_WAIT_POLICY in effect when the backend was loaded (``plugin.load`` records it;
    #: "" when the object was made directly). The OpenMP runtime reads it once, at its start.
    omp_wait_policy: str = ""

    def __init__(self, config: NumbaConfig | None = None, **fields: Any) -> None:
        self.config = NumbaConfig.from_options(config, **fields)
        self.ops = op_table(self.config, numba.get_num_threads)
        self._staged_warm = False

    def prepare(self, layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> Kernel | None:
        kernel = super().prepare(layer, params, in_shape, out_shape)
        if kernel is None:
            return None
        kernel(np.zeros((1, *in_shape), np.float32))  # warm-up: compile (or load from cache) now
        if isinstance(kernel, StagedKernel) and kernel.fused is not None and not self._staged_warm:
            # a fused call (the quantized convs') does not run the staged table/lookup pair (run
            # when the stages are timed apart): it compiles once per process, on a tiny layer, as
            # its signature does not depend on sizes
            tiny = self.ops["qconv"](Layer("warm-up", "conv", out=2, kernel=1, quant=Quant(1, 2)),
                                     {"codebook": np.zeros((1, 2, 1), np.float32),
                                      "codes": np.zeros((2, 1, 1, 1), np.uint8), "bias": np.zeros(2, np.float32)},
                                     (1, 2, 2), (2, 2, 2))
            assert isinstance(tiny, StagedKernel)
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
            "omp_wait_policy": self.omp_wait_policy,  # recorded at load: no environment read here
        }

    def set_threads(self, n: int) -> None:
        """numba.set_num_threads(n), capped at numba's pool size (NUMBA_NUM_THREADS)."""
        numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
