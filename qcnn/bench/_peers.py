"""Benchmark peers: the same FLOAT network run by other inference engines, each in its
fastest correct configuration (the report says which).

==================  ===========================================================  ==========
name                what                                                         precision
==================  ===========================================================  ==========
onnxruntime         ONNX Runtime CPU on qcnn's ONNX export                       fp32
onnxruntime-int8    ONNX Runtime on the static per-channel QDQ model             int8
openvino            OpenVINO CPU, its default precision                          bf16 on CPUs
                                                                                 with AVX512_BF16,
                                                                                 else fp32
openvino-f32        OpenVINO CPU with ``INFERENCE_PRECISION_HINT=f32``            fp32
openvino-int8       OpenVINO CPU on the same QDQ model as onnxruntime-int8       int8
torch               eager PyTorch (torch.nn.functional)                          fp32
torch-compile       torch.compile (inductor, freezing)                           fp32
ncnn                ncnn CPU on the pnnx conversion (fp32 weights)               fp32 or fp16
                                                                                 storage, the
                                                                                 faster
==================  ===========================================================  ==========

``all`` is every peer whose packages are installed. The ONNX peers are in
:mod:`qcnn.bench._onnx_peers` (graph variant chosen per engine by a timed trial, model
cache), the torch peers in :mod:`qcnn.bench._torch_peers`, ncnn in :mod:`qcnn.bench._ncnn_peer`. A peer is a :class:`Peer`:
``peer(x [N, C, H, W] float32) -> y [N, *out_shape] float32`` with ``info()`` and
``probe(x)`` (``{layer name: output}`` for :func:`check_layers`). A missing package gives
a one-line :class:`QcnnError` with the install command.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from .._errors import QcnnError
from ..model import Model
from . import _ncnn_peer, _onnx_peers, _torch_peers
from ._peer_base import Peer, PeerContext, check_layers

__all__ = ["PEERS", "Peer", "PeerContext", "make_peer", "parse_peers", "check_layers", "missing_packages",
           "install_command"]

#: Known peers, in the order they are reported.
PEERS = ("onnxruntime", "onnxruntime-int8", "openvino", "openvino-f32", "openvino-int8", "torch", "torch-compile",
         "ncnn")

#: The Python packages each peer needs.
_NEEDS = {
    "onnxruntime": ("onnx", "onnxruntime"), "onnxruntime-int8": ("onnx", "onnxruntime"),
    "openvino": ("onnx", "openvino"), "openvino-f32": ("onnx", "openvino"),
    "openvino-int8": ("onnx", "onnxruntime", "openvino"),
    "torch": ("torch",), "torch-compile": ("torch",),
    "ncnn": ("onnx", "ncnn", "pnnx"),
}
_ALIASES = {"ort": "onnxruntime", "ort-int8": "onnxruntime-int8", "pytorch": "torch", "ov": "openvino",
            "ov-int8": "openvino-int8", "ov-f32": "openvino-f32"}


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(name: str) -> list[str]:
    """The packages peer ``name`` needs that are not installed here."""
    return [m for m in _NEEDS[name] if not _installed(m)]


def install_command(name: str) -> str:
    """How to install what peer ``name`` needs."""
    if name == "ncnn":
        return _ncnn_peer.INSTALL
    return _torch_peers.INSTALL if name.startswith("torch") else _onnx_peers.INSTALL


def parse_peers(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"onnxruntime,torch"`` (or a list, or ``"all"``: every installed peer) -> a tuple of known peer names."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [_ALIASES.get(n, n) for n in names if n]
    if "all" in names:
        if len(names) > 1:
            raise QcnnError("--compare all cannot be combined with other peer names")
        return tuple(n for n in PEERS if not missing_packages(n))
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise QcnnError(f"unknown peer {unknown[0]!r} for --compare (known: {', '.join(PEERS)}, all)")
    return tuple(dict.fromkeys(names))


def make_peer(name: str, model: Model | PeerContext, threads: int = 1, *, batch_size: int = 1,
              sample: np.ndarray | None = None, calib: np.ndarray | None = None,
              cache_dir: str | os.PathLike[str] | None = None) -> Peer:
    """Load the float network ``model`` into peer ``name`` with ``threads`` threads.

    ``model`` may be a :class:`PeerContext` (shared by the peers of one run: the model hash
    is computed once); then the other arguments are ignored. sample: an input batch
    [batch_size, C, H, W] for the set-up trials; calib: calibration inputs [N, C, H, W] of
    the int8 peers (default: sample); cache_dir: the model cache root.
    """
    ctx = model if isinstance(model, PeerContext) else PeerContext(
        model, threads=threads, batch_size=batch_size, sample=sample, calib=calib, cache_dir=cache_dir)
    if name == "onnxruntime":
        return _onnx_peers.onnxruntime_peer(ctx)
    if name == "onnxruntime-int8":
        return _onnx_peers.onnxruntime_peer(ctx, int8=True)
    if name == "openvino":
        return _onnx_peers.openvino_peer(ctx)
    if name == "openvino-f32":
        return _onnx_peers.openvino_peer(ctx, "f32")
    if name == "openvino-int8":
        return _onnx_peers.openvino_peer(ctx, "int8")
    if name == "torch":
        return _torch_peers.torch_peer(ctx)
    if name == "torch-compile":
        return _torch_peers.torch_peer(ctx, compiled=True)
    if name == "ncnn":
        return _ncnn_peer.ncnn_peer(ctx)
    raise QcnnError(f"unknown peer {name!r} (known: {', '.join(PEERS)})")
