"""Shared set-up for the asv suites: models, sessions, inputs; one thread everywhere.

Everything is built lazily and cached per process, so that importing a benchmark module
(which asv does to discover benchmarks) costs nothing.
"""

from __future__ import annotations

import functools
import os

import numpy as np

#: Every built-in backend; those that cannot load here are skipped (NotImplementedError).
BACKENDS = ("reference", "numpy", "numba", "cffi")
MODES = ("float", "quantized")
#: Warm-up passes before timing (JIT compilation, first-touch allocations).
WARMUP = 2
#: Set QCNN_ASV_SLOW=1 to run the slow suites (VGG-16).
SLOW = os.environ.get("QCNN_ASV_SLOW", "") not in ("", "0")


def pin_threads() -> None:
    import qcnn

    qcnn.set_threads(1)


def require_backend(name: str) -> None:
    """Load backend ``name`` or skip the benchmark (asv skips on NotImplementedError)."""
    import qcnn
    from qcnn.plugin import load_backend

    try:
        load_backend(name)
    except qcnn.QcnnError as err:
        raise NotImplementedError(str(err)) from None


@functools.lru_cache(maxsize=4)
def model(arch: str, mode: str):
    """The synthetic quantized model of ``arch`` (published AlexNet's D:K rule), or its float twin."""
    import qcnn
    from qcnn.bench._protocol import float_twin

    quantized = qcnn.model.synthetic(arch)
    return quantized if mode == "quantized" else float_twin(quantized)


def session(arch: str, backend: str, mode: str):
    """A compiled, warmed-up session on one thread, and a batch-1 random input for it."""
    import qcnn

    require_backend(backend)
    pin_threads()
    m = model(arch, mode)
    s = qcnn.compile(m, backend, threads=1)
    x = images(tuple(m.spec.input))
    for _ in range(WARMUP):
        s.forward(x)
    return s, x


def images(shape: tuple[int, ...], n: int = 1, low: float = -128.0, high: float = 128.0) -> np.ndarray:
    """Seeded random float32 [n, *shape], uniform in [low, high) (mean-subtracted pixels by default)."""
    rng = np.random.default_rng(0)
    return rng.uniform(low, high, size=(n, *shape)).astype(np.float32)
