"""qcnn: Quantized-CNN (Wu et al., CVPR 2016) inference, with pluggable backends.

Data flows one way: file -> :class:`Model` -> :func:`compile` on a backend -> run.
"""

from __future__ import annotations

from . import reference, zoo
from .backend import Backend, BackendSpec, StagedKernel
from .errors import QcnnError
from .fileformat import load, save
from .hookspecs import hookimpl
from .model import Model
from .quantize import quantize
from .preprocess import preprocess, read_image
from .runtime import Session, compile
from .seed import load_seed, save_seed
from .spec import Layer, NetSpec, Quant
from .threads import set_threads

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendSpec", "Layer", "Model", "NetSpec", "QcnnError", "Quant", "Session", "StagedKernel",
    "compile", "hookimpl", "load", "load_seed", "preprocess", "quantize", "read_image", "reference", "save", "save_seed",
    "set_threads", "zoo", "__version__",
]
