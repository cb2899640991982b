"""Every installed backend against the reference: the public conformance suite."""

from __future__ import annotations

import os

import pytest
from conftest import SEED

import qcnn
from qcnn import QcnnError
from qcnn.plugin import _registry as plugins
from qcnn.plugin import backend_specs, load_backend
from qcnn.testing import parametrize_with_checks

BACKENDS = [name for name in backend_specs() if name != "reference"]


@parametrize_with_checks(BACKENDS, seed_dir=SEED if SEED.is_dir() else None)
def test_conformance(backend, check):
    try:
        load_backend(backend)
    except QcnnError as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"backend {backend} must be available in CI: {err}", pytrace=False)
        pytest.skip(str(err))
    check(backend)


def test_alexnet_checks_have_data(seed_dir):
    """Fails under CI=true when shared/seed-alexnet is missing (the AlexNet checks would skip)."""
    assert (seed_dir / "Bin.Files").is_dir()


def test_reference_passes_its_own_checks():
    """The suite's own sanity: the reference agrees with itself on every layer case."""
    from qcnn.testing import backend_checks

    for check in backend_checks(None):
        if not check.id.startswith("alexnet-"):
            check("reference")


@pytest.mark.parametrize("name", ["numpy", "numba", "cffi"])
def test_builtin_backend_is_installed_and_loads(name):
    """The three built-in backends come with `pip install`; CI fails if one is missing."""
    try:
        specs = backend_specs()
        if name not in specs:
            broken = [p.message for p in plugins.problems() if p.plugin == name]
            raise QcnnError(broken[0] if broken else f"backend {name} is not registered")
        load_backend(name)
    except QcnnError as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))


@pytest.mark.parametrize("quantized", [True, False], ids=["quantized", "float"])
@pytest.mark.parametrize("name", ["numpy", "numba", "cffi"])
def test_builtin_backend_runs_every_alexnet_layer_itself(name, quantized):
    """No built-in backend falls back to the reference on AlexNet, and quantized layers are
    staged (the suite's per-layer checks skip declined layers, so this is said here)."""
    session = qcnn.compile(qcnn.model.synthetic("alexnet", quantized=quantized, seed=1), name)
    assert session.fallbacks == []
    assert all(p.staged == (p.layer.quant is not None) for p in session.layers)
