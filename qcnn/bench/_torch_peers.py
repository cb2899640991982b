"""PyTorch peers: the float network as a ``torch.nn.Module`` built from the same dense
weights with ``torch.nn.functional`` (conv2d, relu, local_response_norm, max_pool2d with
``ceil_mode=True``, linear, softmax), ``torch.set_num_threads(threads)``.

* ``torch``: eager, under ``torch.inference_mode``.
* ``torch-compile``: ``torch.compile`` (inductor, ``dynamic=False``) with
  ``torch._inductor.config.freezing`` on (weights folded into the graph as constants),
  under ``torch.no_grad``; the first call, which compiles, is timed as set-up.

torch has no LRN kernel of its own (``local_response_norm`` is itself built from
elementwise ops and ``avg_pool3d``), so there is one graph variant.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._errors import QcnnError
from ._peer_base import Peer, PeerContext, check_layers

__all__ = ["torch_peer", "INSTALL", "TORCH_VERSION"]

#: The pinned CPU build (the ``torch`` extra); an unpinned install may fetch a CUDA build of several GB.
TORCH_VERSION = "2.13.0"
INSTALL = f'pip install torch=={TORCH_VERSION} (CPU build), or pip install "qcnn[torch]"'


def _import_torch(peer: str) -> Any:
    try:
        import torch
        import torch.nn.functional
    except ImportError:
        raise QcnnError(f"--compare {peer} needs PyTorch: {INSTALL}") from None
    return torch


def torch_peer(ctx: PeerContext, compiled: bool = False) -> Peer:
    """Eager PyTorch, or (``compiled``) torch.compile with freezing."""
    name = "torch-compile" if compiled else "torch"
    torch = _import_torch(name)
    import torch.nn.functional as F

    model = ctx.model
    torch.set_num_threads(ctx.threads)
    layers = model.spec.layers
    logits = check_layers(model)[0]

    class Net(torch.nn.Module):  # type: ignore[misc, name-defined]
        """x [N, C, H, W] -> (output of the logits layer, final output)."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.ParameterDict()
            for lname, tensors in model.params.items():
                for k, v in tensors.items():
                    self.w[f"{lname}__{k}"] = torch.nn.Parameter(torch.from_numpy(np.array(v, np.float32, copy=True)),
                                                                 requires_grad=False)

        def forward(self, x: Any) -> tuple[Any, Any]:
            kept = x
            for layer in layers:
                t = layer.type
                if t == "conv":
                    x = F.conv2d(x, self.w[f"{layer.name}__weight"], self.w[f"{layer.name}__bias"],
                                 stride=layer.stride, padding=layer.pad, groups=layer.groups)
                elif t == "fc":
                    x = F.linear(x.reshape(x.shape[0], -1), self.w[f"{layer.name}__weight"],
                                 self.w[f"{layer.name}__bias"])
                elif t == "relu":
                    x = F.relu(x)
                elif t == "lrn":  # torch divides alpha by size, like Caffe
                    x = F.local_response_norm(x, layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)
                elif t == "pool":
                    x = F.max_pool2d(x, layer.kernel, layer.stride, layer.pad, ceil_mode=True)
                elif t == "softmax":
                    x = F.softmax(x.reshape(x.shape[0], -1), dim=1)
                # dropout: identity at test time
                if layer.name == logits:
                    kept = x
            return kept, x

    t0 = time.perf_counter()
    net = Net().eval()
    setup: dict[str, Any] = {"build_s": time.perf_counter() - t0}
    if compiled:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        fn = torch.compile(net, backend="inductor", dynamic=False)
        context = torch.no_grad
        t0 = time.perf_counter()
        try:
            with context():
                fn(torch.from_numpy(np.ascontiguousarray(ctx.sample)))
        except Exception as err:
            raise QcnnError(f"torch.compile cannot compile {model.spec.name}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
                            ) from None
        setup["compile_s"] = time.perf_counter() - t0
    else:
        fn, context = net, torch.inference_mode
    setup["total_s"] = sum(setup.values())
    setup["cached"] = False

    def run(x: np.ndarray) -> np.ndarray:
        with context():
            return fn(torch.from_numpy(x))[1].numpy()

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        with context():
            a, b = fn(torch.from_numpy(np.ascontiguousarray(x)))
        return dict(zip(check_layers(model), (a.numpy().copy(), b.numpy().copy())))

    nbytes = sum(int(np.asarray(v).size) * 4 for tensors in model.params.values() for v in tensors.values())
    info = {"mode": "torch.compile(inductor, freezing, dynamic=False), torch.no_grad" if compiled
            else "eager, torch.nn.functional, torch.inference_mode",
            "graph": "F.local_response_norm" if ctx.has_lrn else "functional", "graph_ms": None,
            "threads": {"num_threads": torch.get_num_threads(), "num_interop_threads": torch.get_num_interop_threads()},
            "setup": setup, "model_bytes_of": "fp32 weights (numel x 4)"}
    return Peer(name, torch.__version__, run, probe, info, precision="fp32", model_bytes=nbytes)
