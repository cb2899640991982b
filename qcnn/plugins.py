"""Backend discovery: a pluggy manager over the ``qcnn.backends`` entry-point group.

Broken plugins never break discovery: a plugin that fails to import, or registers a name
that is already taken, is recorded in :func:`problems` and skipped.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass, replace

import pluggy

from . import hookspecs
from .backend import Backend, BackendSpec
from .errors import QcnnError
from .threads import get_threads, set_threads

__all__ = ["ENTRY_POINT_GROUP", "Problem", "backend_specs", "problems", "load_backend", "loaded_backends", "LoadedBackend", "plugin_manager"]

ENTRY_POINT_GROUP = "qcnn.backends"


@dataclass(frozen=True)
class Problem:
    plugin: str
    message: str


@dataclass
class _Registry:
    specs: dict[str, BackendSpec]
    problems: list[Problem]


def plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the built-in reference backend and every entry point registered."""
    pm, _ = _discover()
    return pm


def _discover() -> tuple[pluggy.PluginManager, list[Problem]]:
    from . import reference_backend

    pm = pluggy.PluginManager("qcnn")
    pm.add_hookspecs(hookspecs)
    pm.register(reference_backend, name="qcnn.reference")
    problems: list[Problem] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as err:  # a broken third-party plugin must not break discovery
            problems.append(Problem(ep.name, f"cannot load plugin {ep.name} ({ep.value}): {type(err).__name__}: {err}"))
    return pm, problems


@functools.cache
def _registry() -> _Registry:
    pm, problems = _discover()
    specs: dict[str, BackendSpec] = {}
    for impl in pm.hook.qcnn_register_backends.get_hookimpls():  # registration order: reference first
        owner = pm.get_name(impl.plugin) or "?"

        def register(spec: BackendSpec, _owner: str = owner) -> None:
            if not isinstance(spec, BackendSpec):
                problems.append(Problem(_owner, f"plugin {_owner} registered {spec!r}, not a BackendSpec"))
            elif spec.name in specs:
                problems.append(Problem(_owner, f"plugin {_owner} registers backend {spec.name!r}, "
                                                f"already registered by {specs[spec.name].plugin}; ignored"))
            else:
                specs[spec.name] = replace(spec, plugin=_owner)

        try:
            impl.function(register=register)
        except Exception as err:
            problems.append(Problem(owner, f"plugin {owner} failed to register: {type(err).__name__}: {err}"))
    return _Registry(specs, problems)


def backend_specs() -> dict[str, BackendSpec]:
    """Every registered backend by name, the reference first."""
    return dict(_registry().specs)


def problems() -> list[Problem]:
    """Plugins that could not be loaded or registered: ``.plugin`` (entry-point name) and ``.message``."""
    return list(_registry().problems)


@dataclass
class LoadedBackend:
    spec: BackendSpec
    impl: Backend

    @property
    def name(self) -> str:
        return self.spec.name


_loaded: dict[str, LoadedBackend] = {}


def loaded_backends() -> list[LoadedBackend]:
    """The backends loaded so far in this process."""
    return list(_loaded.values())


def load_backend(name: str) -> LoadedBackend:
    """Load backend ``name`` once per process; a :class:`QcnnError` says why it cannot be used.

    The thread count set by :func:`qcnn.set_threads` is applied to it on loading.
    """
    if name in _loaded:
        return _loaded[name]
    specs = backend_specs()
    if name not in specs:
        raise QcnnError(f"unknown backend {name!r} (available: {', '.join(specs) or 'none'})")
    spec = specs[name]
    try:
        impl = spec.load()
    except QcnnError:
        raise
    except Exception as err:
        raise QcnnError(f"backend {name} is unavailable: {type(err).__name__}: {err}") from None
    _loaded[name] = LoadedBackend(spec, impl)
    threads = get_threads()
    if threads is not None:
        set_threads(threads)  # again: the backend may have brought a BLAS of its own
    return _loaded[name]


def _reset() -> None:
    """Forget discovery results (for tests that install or remove plugins)."""
    _registry.cache_clear()
    _loaded.clear()
