"""qcnn: Quantized-CNN (Wu et al., CVPR 2016) inference, with pluggable backends.

Data flows one way: file -> :class:`Model` -> :func:`compile` on a backend -> run.

The sub-packages (``docs/architecture.md`` has the map):

* :mod:`qcnn.model`: spec, model, cost model, built-in architectures, float twin;
* :mod:`qcnn.io`: the ``.qcnn`` file, the authors' formats, ONNX, images, input sources;
* :mod:`qcnn.reference`: the reference kernels, the single statement of every layer's math;
* :mod:`qcnn.plugin`: the backend contract, discovery and threads;
* :mod:`qcnn.bench`: the paper's speed test, its results, peers and machine record;
* :mod:`qcnn.train`: quantizing float models (k-means, error correction);
* :mod:`qcnn.testing`: the conformance checks every backend must pass.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import model, reference
from ._errors import QcnnError
from ._runtime import Session, compile
from ._version import __version__
from .io import load, load_seed, preprocess, read_image, save, save_seed
from .model import Layer, Model, NetSpec, Quant
from .plugin import Backend, BackendSpec, StagedKernel, hookimpl, set_threads
from .train import quantize

__all__ = [
    "Backend", "BackendSpec", "Layer", "Model", "NetSpec", "QcnnError", "Quant", "Session", "StagedKernel",
    "compile", "hookimpl", "load", "load_seed", "model", "preprocess", "quantize", "read_image", "reference", "save",
    "save_seed", "set_threads", "__version__",
]

#: Module paths of the previous release and their new homes; they still import, for one
#: release (``qcnn.model.synthetic`` is ``qcnn.model.synthetic`` now, and so on).
_MOVED = ("zoo", "stats", "plugins", "onnx_import")


def __getattr__(name: str) -> ModuleType:
    if name in _MOVED:
        return importlib.import_module(f"qcnn.{name}")
    raise AttributeError(f"module 'qcnn' has no attribute {name!r}")
