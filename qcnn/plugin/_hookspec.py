"""The pluggy hook every qcnn backend implements, once, at discovery time."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

__all__ = ["hookspec", "hookimpl", "qcnn_register_backends"]

hookspec = pluggy.HookspecMarker("qcnn")
hookimpl = pluggy.HookimplMarker("qcnn")


@hookspec
def qcnn_register_backends(register: Callable[..., None]) -> None:  # type: ignore[empty-body]
    """Register backends: call ``register(BackendSpec(...))`` once per backend.

    Keep this cheap: do not import heavy dependencies here; do it in ``BackendSpec.load``.
    """
