"""Benchmark peers: the same FLOAT network run by other inference engines.

* ``onnxruntime``: the graph of :func:`qcnn.io.build_onnx` in an ONNX Runtime
  CPU session, all graph optimisations on, ``intra_op_num_threads`` = threads,
  ``inter_op_num_threads`` = 1, sequential execution.
* ``torch``: eager PyTorch built from the same dense weights with ``torch.nn.functional``
  (conv2d, relu, local_response_norm, max_pool2d with ``ceil_mode=True``, linear,
  softmax), under ``torch.inference_mode`` with ``torch.set_num_threads(threads)``.

A peer is a callable ``x [N, C, H, W] float32 -> y [N, *out_shape] float32`` with a
``name``, a ``version``, an ``info()`` dict and ``probe(x)``: ``{layer name: output}``
for the final layer and the layers of :func:`check_layers` (for the agreement check). Missing packages give a one-line
:class:`QcnnError` that says what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..io import INPUT_NAME, build_onnx
from ..model import Model, float_twin

__all__ = ["PEERS", "Peer", "make_peer", "parse_peers", "check_layers"]

#: Known peers, in the order they are reported.
PEERS = ("onnxruntime", "torch")


@dataclass
class Peer:
    """One peer engine with the network loaded: ``peer(x) -> y``."""

    name: str
    version: str
    run: Callable[[np.ndarray], np.ndarray]
    probe: Callable[[np.ndarray], dict[str, np.ndarray]]
    details: dict[str, Any] = field(default_factory=dict)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def info(self) -> dict[str, Any]:
        return {"version": self.version, **self.details}


def check_layers(model: Model) -> tuple[str, ...]:
    """Layers whose outputs the agreement checks compare: the last conv/fc layer (the logits,
    which a saturated softmax would hide) and the final layer."""
    layers = model.spec.layers
    weighted = [layer.name for layer in layers if layer.has_weights]
    return tuple(dict.fromkeys([*weighted[-1:], layers[-1].name]))


def parse_peers(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"onnxruntime,torch"`` (or a list) -> a tuple of known peer names, checked."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    aliases = {"ort": "onnxruntime", "pytorch": "torch"}
    names = [aliases.get(n, n) for n in names]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise QcnnError(f"unknown peer {unknown[0]!r} for --compare (known: {', '.join(PEERS)})")
    return tuple(dict.fromkeys(names))


def make_peer(name: str, model: Model, threads: int) -> Peer:
    """Load the float network of ``model`` into peer ``name``, using ``threads`` threads."""
    if name == "onnxruntime":
        return _onnxruntime(model, threads)
    if name == "torch":
        return _torch(model, threads)
    raise QcnnError(f"unknown peer {name!r} (known: {', '.join(PEERS)})")


def _onnxruntime(model: Model, threads: int) -> Peer:
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError:
        raise QcnnError('--compare onnxruntime needs onnx and onnxruntime: pip install "qcnn[peers]"') from None
    checked = check_layers(model)
    proto = build_onnx(model, extra_outputs=checked)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise QcnnError(f"onnxruntime cannot load the exported {model.spec.name}: {str(err).splitlines()[0]}") \
            from None
    out_name = sess.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run([out_name], {INPUT_NAME: x})[0]

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(checked, sess.run(list(checked), {INPUT_NAME: x})))

    return Peer("onnxruntime", ort.__version__, run, probe,
                {"providers": sess.get_providers(), "intra_op_num_threads": threads, "inter_op_num_threads": 1,
                 "graph_optimization": "ORT_ENABLE_ALL", "opset": proto.opset_import[0].version})


def _torch(model: Model, threads: int) -> Peer:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        raise QcnnError("--compare torch needs PyTorch: pip install torch") from None
    fmodel = float_twin(model)
    torch.set_num_threads(threads)
    weights = {name: {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
               for name, tensors in fmodel.params.items()}
    layers = fmodel.spec.layers
    checked = check_layers(model)

    def forward(x: Any, keep: dict[str, Any] | None = None) -> Any:
        for layer in layers:
            t = layer.type
            if t == "conv":
                w = weights[layer.name]
                x = F.conv2d(x, w["weight"], w["bias"], stride=layer.stride, padding=layer.pad, groups=layer.groups)
            elif t == "fc":
                w = weights[layer.name]
                x = F.linear(x.reshape(x.shape[0], -1), w["weight"], w["bias"])
            elif t == "relu":
                x = F.relu(x)
            elif t == "lrn":  # torch divides alpha by size, like Caffe
                x = F.local_response_norm(x, layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)
            elif t == "pool":
                x = F.max_pool2d(x, layer.kernel, layer.stride, layer.pad, ceil_mode=True)
            elif t == "softmax":
                x = F.softmax(x.reshape(x.shape[0], -1), dim=1)
            # dropout: identity at test time
            if keep is not None and layer.name in checked:
                keep[layer.name] = x.numpy().copy()
        return x

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return forward(torch.from_numpy(x)).numpy()

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        keep: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            forward(torch.from_numpy(x), keep)
        return keep

    return Peer("torch", torch.__version__, run, probe,
                {"num_threads": torch.get_num_threads(), "mode": "eager, torch.nn.functional"})
