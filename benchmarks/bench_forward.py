"""End-to-end forward time per image (batch 1, one thread) per backend and mode."""

from __future__ import annotations

from .common import BACKENDS, MODES, SLOW, session


class TimeForward:
    """The paper's speed test, one pass: AlexNet and CaffeNet, float CNN vs Q-CNN."""

    params = (["alexnet", "caffenet"], list(BACKENDS), list(MODES))
    param_names = ["arch", "backend", "mode"]
    timeout = 600

    def setup(self, arch: str, backend: str, mode: str) -> None:
        self.session, self.x = session(arch, backend, mode)

    def time_forward(self, arch: str, backend: str, mode: str) -> None:
        self.session.forward(self.x)


class TimeForwardVGG16:
    """VGG-16 (15.5 G multiply-adds float): slow, so run only with QCNN_ASV_SLOW=1."""

    params = (list(BACKENDS), list(MODES))
    param_names = ["backend", "mode"]
    timeout = 1800
    repeat = (1, 5, 120.0)
    number = 1

    def setup(self, backend: str, mode: str) -> None:
        if not SLOW:
            raise NotImplementedError("VGG-16 is slow (seconds per pass); set QCNN_ASV_SLOW=1 to run it")
        self.session, self.x = session("vgg16", backend, mode)

    def time_forward(self, backend: str, mode: str) -> None:
        self.session.forward(self.x)
