"""Discovery through entry points, fallbacks, and plugins that misbehave."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn.cli import main
from qcnn.model import Quant
from qcnn.plugin import _registry as plugins


@pytest.fixture
def fresh_discovery():
    plugins._reset()
    yield
    plugins._reset()


def _install_fake_dist(tmp_path, monkeypatch, name: str, module_source: str, ep_value: str) -> None:
    """A real installed distribution on sys.path: a module plus a .dist-info with entry points."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[qcnn.backends]\n{name} = {ep_value}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def _need_example() -> None:
    if "example" not in plugins.backend_specs():
        message = "the sample plugin is not installed: pip install ./examples/qcnn-example-backend"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_reference_is_registered_first():
    assert next(iter(plugins.backend_specs())) == "reference"


def test_example_plugin_is_discovered_through_entry_points():
    _need_example()
    spec = plugins.backend_specs()["example"]
    assert spec.plugin == "example" and spec.version == "0.1.0"


@pytest.mark.slow  # a few seconds: CI runs it too
def test_declined_layers_fall_back_to_the_reference():
    _need_example()
    model = qcnn.model.synthetic("alexnet", seed=1, layers={"fc7": None, "fc6": Quant(8, 16)})
    session = qcnn.compile(model, "example")
    providers = {p.layer.name: p.provider for p in session.layers}
    assert providers["fc6"] == providers["fc8"] == "example"  # quantized fc: the plugin's own
    assert providers["fc7"] == "reference"  # a float fc: declined
    assert providers["conv1"] == providers["pool5"] == "reference"
    assert set(session.fallbacks) == set(providers) - {"fc6", "fc8"}
    x = np.random.default_rng(0).standard_normal((2, 3, 227, 227)).astype(np.float32)
    want = qcnn.compile(model, "reference").run(x, outputs=["fc6", "fc8"])
    got = session.run(x, outputs=["fc6", "fc8"])
    for name in ("fc6", "fc8"):
        assert np.abs(got[name] - want[name]).max() <= 1e-4 * np.abs(want[name]).max()


def test_plugin_that_raises_on_import_is_reported_not_fatal(tmp_path, monkeypatch, fresh_discovery, capsys):
    _install_fake_dist(tmp_path, monkeypatch, "qcnn_broken", "raise RuntimeError('compiled for another CPU')\n",
                       "qcnn_broken")
    plugins._reset()
    assert "reference" in plugins.backend_specs()
    assert any("qcnn_broken" in p.message and "compiled for another CPU" in p.message for p in plugins.problems())
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "qcnn_broken" in out and "compiled for another CPU" in out and "reference" in out
    model = qcnn.model.synthetic(qcnn.model.arch_spec("alexnet"), quantized=True, seed=0)
    assert qcnn.compile(model, "reference") is not None


def test_duplicate_backend_name_is_rejected(tmp_path, monkeypatch, fresh_discovery):
    _install_fake_dist(tmp_path, monkeypatch, "qcnn_dupe", """
        import qcnn

        @qcnn.hookimpl
        def qcnn_register_backends(register):
            register(qcnn.BackendSpec("reference", lambda: None, summary="an impostor"))
    """, "qcnn_dupe")
    plugins._reset()
    assert plugins.backend_specs()["reference"].summary != "an impostor"
    assert any("already registered" in p.message for p in plugins.problems())


def test_backend_whose_load_fails_is_unavailable_with_reason(tmp_path, monkeypatch, fresh_discovery, capsys):
    _install_fake_dist(tmp_path, monkeypatch, "qcnn_needs_gpu", """
        import qcnn

        def load():
            raise ImportError("No module named 'cupy'")

        @qcnn.hookimpl
        def qcnn_register_backends(register):
            register(qcnn.BackendSpec("gpu", load, version="9.9"))
    """, "qcnn_needs_gpu")
    plugins._reset()
    with pytest.raises(QcnnError, match="backend gpu is unavailable: ImportError: No module named 'cupy'"):
        plugins.load_backend("gpu")
    assert main(["backends", "--json"]) == 0
    assert '"reason": "backend gpu is unavailable' in capsys.readouterr().out


def test_unknown_backend_name():
    with pytest.raises(QcnnError, match=r"unknown backend 'nope' \(available: reference"):
        qcnn.compile(qcnn.model.synthetic("alexnet"), "nope")
