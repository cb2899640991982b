"""Peer engines of ``qcnn bench --compare`` on a small network: agreement with qcnn, the
recorded configuration (precision, graph variant, threads, set-up, model bytes), the model
cache, ``all``, and the one-line message of a peer that is not installed."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from test_bench import TINY, tiny

import qcnn
from qcnn.bench import PEERS, PeerContext, make_peer, missing_packages, parse_peers, run_bench
from qcnn.cli import main
from qcnn.model import parse_spec

FAST = [p for p in PEERS if p != "torch-compile"]


def _installed(name: str) -> None:
    missing = missing_packages(name)
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.mark.parametrize("name", [*FAST, pytest.param("torch-compile", marks=pytest.mark.slow)])
def test_installed_peer_agrees_with_qcnn(name, cache):
    _installed(name)
    result = run_bench(tiny(), backends="reference", mode="float", batches=2, repeat=1, warmup=1, compare=name,
                       progress=False, cache_dir=cache)
    s = result.get(name)
    a = s.agreement
    assert s.kind == "peer" and a["against"] == "qcnn reference float"
    assert a["top1_images"] == 2 and 0.0 <= a["top1_agreement"] <= 1.0
    if s.precision == "fp32":
        assert a["ok"] is True and a["max_rel_diff"] <= 1e-4 and a["top1_agreement"] == 1.0
    else:  # bf16 / int8: reported, not judged
        assert s.precision in ("bf16", "fp16", "int8") and a["ok"] is None and a["tolerance"] is None
        assert a["max_rel_diff"] is not None and a["max_rel_diff"] < 0.2
    info = s.info
    assert info["precision"] == s.precision and s.model_bytes > 0 and info["model_bytes"] == s.model_bytes
    assert info["threads"] and info["setup"]["total_s"] >= 0
    if name.startswith(("onnxruntime", "openvino")):
        assert info["graph"] in ("op", "decomposed") and set(info["graph_ms"]) == {"op", "decomposed"}
        assert info["graph"] == min(info["graph_ms"], key=info["graph_ms"].get)
    if name == "ncnn":  # fp32 or fp16 storage, whichever the timed trial found faster
        assert set(info["precision_ms"]) == {"fp32", "fp16"}
        assert s.precision == min(info["precision_ms"], key=info["precision_ms"].get)
    if name.endswith("int8"):
        assert info["calibration_images"] == 2 and s.model_bytes < result.get("reference").model_bytes


def test_ncnn_fp32_agrees_within_the_float_tolerance(cache):
    """ncnn's fp32 configuration (fp32 weights from pnnx, no fp16 storage) is held to 1e-4."""
    _installed("ncnn")
    from qcnn.bench._ncnn_peer import ncnn_peer

    model = qcnn.model.float_twin(tiny())
    ctx = PeerContext(model, cache_dir=cache)
    peer = ncnn_peer(ctx, "fp32")
    x = np.random.default_rng(3).uniform(-128, 128, (2, *model.spec.input)).astype(np.float32)
    want = qcnn.compile(model, "reference").run(x)
    got = peer.probe(x)
    assert peer.precision == "fp32" and set(got) == {"fc2", "prob"}
    for name, y in got.items():
        ref = want[name].reshape(len(x), -1)
        assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max(), name


def test_openvino_reports_its_real_precision(cache):
    _installed("openvino")
    import openvino as ov

    peer = make_peer("openvino", tiny(False), 1, cache_dir=cache)
    hint = peer.info()["inference_precision_hint"]
    assert peer.precision == ("fp32" if hint == "f32" else hint)
    bf16 = "AVX512_BF16" in " ".join(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")) or \
        "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if bf16:
        assert peer.precision == "bf16"
    f32 = make_peer("openvino-f32", tiny(False), 1, cache_dir=cache)
    assert f32.precision == "fp32" and f32.info()["inference_precision_hint"] == "f32"
    assert f32.info()["threads"] == {"INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1", "PERFORMANCE_HINT": "LATENCY"}


def test_the_cache_is_reused_on_a_second_run(cache):
    _installed("openvino-int8")
    model = tiny(False)
    first = PeerContext(model, cache_dir=cache)
    make_peer("onnxruntime-int8", first)
    assert len(first.written) == 4  # float and int8, LRN op and decomposed
    mtimes = {p: os.stat(p).st_mtime_ns for p in first.written}
    second = PeerContext(model, cache_dir=cache)
    for name in ("onnxruntime", "onnxruntime-int8", "openvino-int8"):
        peer = make_peer(name, second)
        assert peer.info()["setup"]["cached"] is True
    assert second.written == []
    assert {p: os.stat(p).st_mtime_ns for p in first.written} == mtimes
    other = PeerContext(model, cache_dir=cache, calib=np.zeros((3, *model.spec.input), np.float32))
    make_peer("onnxruntime-int8", other)  # new calibration inputs: a new QDQ model, the float ONNX reused
    assert len(other.written) == 2 and all("int8" in p for p in other.written)


def test_network_without_lrn_has_one_graph_variant(cache):
    _installed("onnxruntime")
    spec = dict(TINY, layers=[layer for layer in TINY["layers"] if layer["type"] != "lrn"])
    model = qcnn.model.synthetic(parse_spec(spec, "nolrn"), quantized=False, seed=1)
    peer = make_peer("onnxruntime", model, 1, cache_dir=cache)
    assert peer.info()["graph"] == "op" and peer.info()["graph_ms"] is None


@pytest.mark.parametrize("peer, module", [("openvino", "openvino"), ("openvino-int8", "openvino"),
                                          ("onnxruntime-int8", "onnxruntime"), ("torch-compile", "torch"),
                                          ("ncnn", "ncnn")])
def test_uninstalled_peer_says_what_to_install(peer, module, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    assert peer not in parse_peers("all")
    path = tmp_path / "tiny.qcnn"
    qcnn.save(tiny(), path)
    assert main(["bench", "--model", str(path), "--backend", "reference", "--batches", "1", "--repeat", "1",
                 "--compare", peer, "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    want = {"torch": 'pip install "qcnn[torch]"', "ncnn": 'pip install "qcnn[ncnn]"'}.get(module, 'pip install "qcnn[peers]"')
    assert err.count("\n") == 1 and f"--compare {peer} needs" in err and want in err


def test_compare_all_records_every_installed_peer(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # torch-compile is slow to compile; its own test covers it
    path = tmp_path / "tiny.qcnn"
    qcnn.save(tiny(), path)
    out = tmp_path / "out.json"
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).uniform(-128, 128, (5, 3, 16, 16)).astype(np.float32))
    assert main(["bench", "--model", str(path), "--backend", "reference", "--batches", "2", "--repeat", "1",
                 "--compare", "all", "--calib", str(calib), "--cache-dir", str(tmp_path / "c"),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    peers = [s for s in data["series"] if s["kind"] == "peer"]
    assert [s["engine"] for s in peers] == list(parse_peers("all")) and data["protocol"]["calibration"] == "given"
    assert "note: peer torch not installed (torch): pip install torch==2.13.0" in text
    for s in peers:
        assert s["precision"] in ("fp32", "bf16", "fp16", "int8") and s["model_bytes"] > 0
        assert {"threads", "setup", "graph"} <= set(s["info"]) and s["agreement"]["top1_agreement"] is not None
        assert s["engine"] in text
        if s["engine"].endswith("int8"):
            assert s["info"]["calibration_images"] == 5
    for s in data["series"]:
        if s["kind"] == "backend":
            assert s["model_bytes"] == os.path.getsize(path) or s["mode"] == "float"
    assert "model MB" in text and "top-1 agr." in text


def test_calib_needs_compare(tmp_path, capsys):
    assert main(["bench", "--batches", "1", "--calib", str(tmp_path)]) == 1
    assert "--calib needs --compare" in capsys.readouterr().err


# --------------------------------------------------------------------------- plots
def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plots_render(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason='plots need matplotlib: pip install "qcnn[plot]"')
    from qcnn.bench import _plot

    path = tmp_path / "tiny.qcnn"
    qcnn.save(tiny(), path)
    png = tmp_path / "bench.png"
    args = ["bench", "--model", str(path), "--backend", "reference", "--batches", "2", "--repeat", "2",
            "--per-layer", "--plot", str(png), "--cache-dir", str(tmp_path / "c")]
    if not missing_packages("onnxruntime"):
        args += ["--compare", "onnxruntime"]
    assert main(args) == 0
    assert "wrote " in capsys.readouterr().out
    for p in (png, tmp_path / "bench-layers.png"):
        assert _png_size(p) == (_plot.WIDTH, _plot.HEIGHT)
        from PIL import Image

        with Image.open(p) as im:
            im.verify()


def test_plot_needs_a_png_name(capsys):
    assert main(["bench", "--plot", "out.svg"]) == 1
    assert "--plot writes a PNG file" in capsys.readouterr().err


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run_bench(tiny(), backends="reference", batches=1, repeat=1, progress=False)
    with pytest.raises(qcnn.QcnnError, match=r'pip install "qcnn\[plot\]"'):
        qcnn.bench.plot_engines(result, tmp_path / "x.png")
