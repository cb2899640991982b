"""Per-layer time (AlexNet, batch 1, one thread) per backend and mode, and the two stages of
quantized layers: table building and look-up."""

from __future__ import annotations

from .common import BACKENDS, MODES, images, session

LAYERS = ["conv1", "norm1", "pool1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
WEIGHTED = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


def _layer(backend: str, mode: str, name: str):
    """The prepared layer ``name`` of AlexNet on ``backend``, and a post-ReLU-like input for it."""
    s, _ = session("alexnet", backend, mode)
    prepared = next(p for p in s.layers if p.layer.name == name)
    x = images(prepared.in_shape, low=0.0, high=50.0)  # timing does not depend on the values
    return prepared, x


class TimeLayer:
    """One layer's kernel, as the session runs it (reference fallbacks included)."""

    params = (list(BACKENDS), list(MODES), LAYERS)
    param_names = ["backend", "mode", "layer"]
    timeout = 300

    def setup(self, backend: str, mode: str, layer: str) -> None:
        prepared, self.x = _layer(backend, mode, layer)
        self.kernel = prepared.kernel
        self.kernel(self.x)  # warm-up

    def time_layer(self, backend: str, mode: str, layer: str) -> None:
        self.kernel(self.x)


class TimeQuantizedStages:
    """Table building and look-up of quantized conv/fc layers (staged kernels only)."""

    params = (list(BACKENDS), WEIGHTED)
    param_names = ["backend", "layer"]
    timeout = 300

    def setup(self, backend: str, layer: str) -> None:
        import qcnn

        prepared, self.x = _layer(backend, "quantized", layer)
        if not isinstance(prepared.kernel, qcnn.StagedKernel):
            raise NotImplementedError(f"{backend} runs {layer} as one stage (not a StagedKernel)")
        self.table, self.lookup = prepared.kernel.table, prepared.kernel.lookup
        self.t = self.table(self.x)
        self.lookup(self.t)  # warm-up

    def time_table(self, backend: str, layer: str) -> None:
        self.table(self.x)

    def time_lookup(self, backend: str, layer: str) -> None:
        self.lookup(self.t)
