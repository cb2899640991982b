"""Backend discovery: a pluggy manager over the ``qcnn.backends`` entry-point group.

Broken plugins never break discovery: a plugin that fails to import, registers a name
that is already taken, or registers something that is not a :class:`BackendSpec`, is
recorded in :func:`problems` and skipped.
"""

from __future__ import annotations

import functools
import importlib.metadata
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pluggy

from .._errors import QcnnError
from . import _hookspec, _reference
from ._contract import Backend, BackendSpec
from ._threads import get_threads, set_blas_threads

__all__ = ["ENTRY_POINT_GROUP", "Problem", "LoadedBackend", "backend_specs", "problems", "load_backend",
           "loaded_backends", "configured_backend", "preferred_backends", "set_threads"]

ENTRY_POINT_GROUP = "qcnn.backends"


@dataclass(frozen=True)
class Problem:
    """A plugin that could not be used: its entry-point name and why."""

    plugin: str
    message: str


@dataclass
class _Registry:
    specs: dict[str, BackendSpec]
    problems: list[Problem]


def _discover() -> tuple[pluggy.PluginManager, dict[str, str], list[Problem]]:
    """The manager with the reference backend and every entry point registered, each
    plugin's distribution version, and the plugins that failed to load."""
    pm = pluggy.PluginManager("qcnn")
    pm.add_hookspecs(_hookspec)
    pm.register(_reference, name="qcnn.reference")
    versions: dict[str, str] = {"qcnn.reference": _reference.version()}
    problems: list[Problem] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as err:  # a broken third-party plugin must not break discovery
            problems.append(Problem(ep.name, f"cannot load plugin {ep.name} ({ep.value}): {type(err).__name__}: {err}"))
            continue
        versions[ep.name] = ep.dist.version if ep.dist is not None else ""
    return pm, versions, problems


@functools.cache
def _registry() -> _Registry:
    pm, versions, problems = _discover()
    specs: dict[str, BackendSpec] = {}
    for impl in pm.hook.qcnn_register_backends.get_hookimpls():
        owner = pm.get_name(impl.plugin) or "?"

        def register(spec: BackendSpec, _owner: str = owner) -> None:
            if not isinstance(spec, BackendSpec):
                problems.append(Problem(_owner, f"plugin {_owner} registered {spec!r}, not a BackendSpec"))
            elif spec.name in specs:
                problems.append(Problem(_owner, f"plugin {_owner} registers backend {spec.name!r}, "
                                                f"already registered by {specs[spec.name].plugin}; ignored"))
            else:
                specs[spec.name] = replace(spec, plugin=_owner, version=spec.version or versions.get(_owner, ""))

        try:
            impl.function(register=register)
        except Exception as err:
            problems.append(Problem(owner, f"plugin {owner} failed to register: {type(err).__name__}: {err}"))
    ordered = sorted(specs.values(), key=lambda s: s.name != "reference")  # the reference first
    return _Registry({s.name: s for s in ordered}, problems)


def backend_specs() -> dict[str, BackendSpec]:
    """Every registered backend by name, the reference first."""
    return dict(_registry().specs)


def problems() -> list[Problem]:
    """Plugins that could not be loaded or registered: ``.plugin`` (entry-point name) and ``.message``."""
    return list(_registry().problems)


def preferred_backends() -> list[str]:
    """Backend names from the most to the least preferred (``BackendSpec.preference``)."""
    specs = backend_specs()
    return sorted(specs, key=lambda name: -specs[name].preference)


@dataclass
class LoadedBackend:
    """A backend loaded in this process: its spec and the object ``spec.load()`` returned."""

    spec: BackendSpec
    impl: Backend

    @property
    def name(self) -> str:
        return self.spec.name


_loaded: dict[str, LoadedBackend] = {}


def loaded_backends() -> list[LoadedBackend]:
    """The backends loaded so far in this process."""
    return list(_loaded.values())


def _load(spec: BackendSpec, options: Mapping[str, Any]) -> Backend:
    """``spec.load(**options)``, checked; every failure is a one-line QcnnError."""
    try:
        impl = spec.load(**options)
    except QcnnError:
        raise
    except TypeError as err:
        if options:
            raise QcnnError(f"backend {spec.name} does not take the options {dict(options)}: {err}") from None
        raise QcnnError(f"backend {spec.name} is unavailable: TypeError: {err}") from None
    except Exception as err:
        raise QcnnError(f"backend {spec.name} is unavailable: {type(err).__name__}: {err}") from None
    if not isinstance(impl, Backend):
        raise QcnnError(f"backend {spec.name} is unavailable: its load() returned {type(impl).__name__}, "
                        "which lacks prepare, info or set_threads")
    threads = get_threads()
    if threads is not None:
        set_blas_threads(threads)  # again: the backend may have brought a BLAS of its own
        impl.set_threads(threads)
    return impl


def _spec(name: str) -> BackendSpec:
    specs = backend_specs()
    if name not in specs:
        raise QcnnError(f"unknown backend {name!r} (available: {', '.join(specs) or 'none'})")
    return specs[name]


#: Backend objects made with options (``compile(..., options=...)``): they get thread counts too.
_configured: weakref.WeakSet[Any] = weakref.WeakSet()


def configured_backend(name: str, options: Mapping[str, Any]) -> Backend:
    """A new object of backend ``name`` made with ``options`` (its ``load(**options)``; for
    the built-in backends, the fields of their config dataclass). The shared one
    :func:`load_backend` gives is left as it is."""
    load_backend(name)  # the plain load first: a missing dependency reads the same either way
    impl = _load(_spec(name), options)
    _configured.add(impl)
    return impl


def load_backend(name: str) -> LoadedBackend:
    """Load backend ``name`` once per process; a :class:`QcnnError` says why it cannot be used.

    The thread count set by :func:`set_threads` is applied to it on loading.
    """
    if name not in _loaded:
        spec = _spec(name)
        _loaded[name] = LoadedBackend(spec, _load(spec, {}))
    return _loaded[name]


def set_threads(n: int) -> None:
    """Use ``n`` threads in BLAS (and OpenMP) pools and in every backend loaded now or later."""
    set_blas_threads(n)
    for impl in [b.impl for b in _loaded.values()] + list(_configured):
        impl.set_threads(n)


def _reset() -> None:
    """Forget discovery results (for tests that install or remove plugins)."""
    _registry.cache_clear()
    _loaded.clear()
