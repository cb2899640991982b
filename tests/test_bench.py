"""``qcnn bench`` and :mod:`qcnn.bench`: protocol counts, JSON schema, inputs, errors, peers, asv.

No speed assertions here: only that the protocol is followed and reported honestly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qcnn
from qcnn import reference
from qcnn.bench import _protocol as bench
from qcnn.cli import main
from qcnn.model import parse_spec

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "name": "tiny",
    "input": [3, 16, 16],
    "preprocess": {"channels": "BGR", "resize": [20, 20], "crop": 16, "mean": "image"},
    "layers": [
        {"name": "conv1", "type": "conv", "out": 8, "kernel": 3, "pad": 1},
        {"name": "relu1", "type": "relu"},
        {"name": "norm1", "type": "lrn", "size": 3},
        {"name": "pool1", "type": "pool", "kernel": 3, "stride": 2},
        {"name": "conv2", "type": "conv", "out": 8, "kernel": 3, "pad": 1, "groups": 2},
        {"name": "relu2", "type": "relu"},
        {"name": "fc1", "type": "fc", "out": 16},
        {"name": "relu3", "type": "relu"},
        {"name": "drop1", "type": "dropout"},
        {"name": "fc2", "type": "fc", "out": 10},
        {"name": "prob", "type": "softmax"},
    ],
}


def tiny(quantized: bool = True) -> qcnn.Model:
    return qcnn.model.synthetic(parse_spec(TINY, "tiny"), quantized=quantized, seed=5, conv="2:8", fc="4:16",
                              last_fc="2:8")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "tiny.qcnn"
    qcnn.save(tiny(), path)
    return path


@pytest.fixture(autouse=True)
def _peer_cache(tmp_path_factory, monkeypatch):
    """Peers cache their converted models in a temporary folder, not the user's cache."""
    from qcnn.bench import _peer_base

    cache = tmp_path_factory.getbasetemp() / "peer-cache"
    monkeypatch.setattr(_peer_base, "default_cache_dir", lambda: cache)


@pytest.fixture
def softmax_calls(monkeypatch) -> list[int]:
    """Counts every call of the reference softmax: each forward pass of a reference session
    on the tiny model ends with exactly one."""
    calls: list[int] = []
    real = reference.softmax

    def counting(x):
        calls.append(len(x))
        return real(x)

    monkeypatch.setattr(reference, "softmax", counting)
    return calls


# --------------------------------------------------------------------------- protocol
def test_per_layer_runs_the_stages_apart(monkeypatch):
    """A staged kernel runs once as the session runs it (timed: the layer) and once as its
    two stages (timed apart); the warm-up runs the same code as the timed passes."""
    calls: list[str] = []
    real_table, real_lookup = reference.qfc_table, reference.qfc_lookup
    monkeypatch.setattr(reference, "qfc_table", lambda *a: calls.append("table") or real_table(*a))
    monkeypatch.setattr(reference, "qfc_lookup", lambda *a: calls.append("lookup") or real_lookup(*a))
    bench.run_bench(tiny(), backends="reference", mode="quantized", batches=2, repeat=1, warmup=1, per_layer=True,
                    check=False, progress=False)
    # 2 qfc layers x (the kernel call + the staged call) x 2 stages x (1 warm-up + 2 timed passes)
    assert len(calls) == 2 * 2 * 2 * (1 + 2) and calls[:4] == ["table", "lookup", "table", "lookup"]


@pytest.mark.parametrize("per_layer", [False, True])
def test_protocol_counts_exact_passes(softmax_calls, per_layer):
    result = bench.run_bench(tiny(), backends="reference", mode="both", batches=3, repeat=2, warmup=0,
                             per_layer=per_layer, check=False, progress=False)
    assert len(softmax_calls) == 2 * 3 * 2  # 2 modes x 3 batches x 2 runs, nothing else
    assert [(s.engine, s.mode) for s in result.series] == [("reference", "float"), ("reference", "quantized")]
    for s in result.series:
        assert s.samples.shape == (2, 3) and s.passes == 6 and (s.samples > 0).all()
        assert (s.layer_samples is not None) == per_layer


def test_warmup_and_batch_size_are_counted(softmax_calls):
    result = bench.run_bench(tiny(), backends="reference", mode="quantized", batches=3, repeat=2, batch_size=4,
                             warmup=2, check=False, progress=False)
    assert len(softmax_calls) == 2 + 3 * 2 and set(softmax_calls) == {4}
    s = result.series[0]
    np.testing.assert_allclose(s.runs_ms, s.samples.mean(axis=1) * 1e3 / 4)


def test_cli_counts_and_json(tiny_path, tmp_path, softmax_calls, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", "--model", str(tiny_path), "--backend", "reference", "--batches", "3", "--repeat", "2",
                 "--warmup", "0", "--no-check", "--json", str(out)]) == 0
    assert len(softmax_calls) == 12
    text = capsys.readouterr().out
    assert "Forward time per image (ms)" in text and "Q-CNN" in text and "theoretical speed-up" in text
    data = json.loads(out.read_text())
    assert [len(s["samples_ms"]) for s in data["series"]] == [2, 2]
    assert all(len(row) == 3 for s in data["series"] for row in s["samples_ms"])


def test_interleaved_runs_rotate_the_order(monkeypatch):
    order: list[tuple[str, int]] = []
    real = bench._Runner.step

    def step(self, x, r, b):
        if b == 0:
            order.append((self.series.mode, r))
        return real(self, x, r, b)

    monkeypatch.setattr(bench._Runner, "step", step)
    bench.run_bench(tiny(), backends="reference", batches=1, repeat=3, warmup=0, check=False, progress=False)
    assert order == [("float", 0), ("quantized", 0), ("quantized", 1), ("float", 1), ("float", 2), ("quantized", 2)]


# --------------------------------------------------------------------------- JSON schema
def _check_schema(data: dict) -> None:
    """The documented schema (docs/bench.md), key by key."""
    assert data["schema"] == bench.SCHEMA and isinstance(data["qcnn_version"], str)
    assert set(data) >= {"created", "command", "model", "protocol", "inputs", "theory", "machine", "skipped",
                         "notes", "series", "speedups"}
    assert set(data["model"]) >= {"name", "source", "input", "quantized_layers"}
    assert set(data["protocol"]) >= {"modes", "backends", "peers", "batches", "repeat", "batch_size", "threads",
                                     "warmup", "per_layer", "interleaved", "checked", "timer", "unit"}
    assert set(data["inputs"]) == {"kind", "source", "count", "labeled"}
    assert set(data["theory"]) >= {"float_macs", "quant_macs", "speedup", "float_bytes", "quant_bytes", "compression"}
    m = data["machine"]
    assert set(m) >= {"cpu", "python", "packages", "blas", "threads", "backends", "recorded"}
    assert set(m["cpu"]) >= {"model", "simd", "logical_cpus", "usable_cpus"}
    assert m["packages"]["numpy"] == np.__version__ and m["packages"]["qcnn"]
    assert m["threads"]["qcnn"] == data["protocol"]["threads"]
    for s in data["series"]:
        assert set(s) >= {"engine", "kind", "mode", "runs_ms", "mean_ms", "median_ms", "min_ms", "max_ms",
                          "samples_ms", "passes", "fallbacks", "accuracy", "agreement", "layers", "info"}
        assert s["kind"] in ("backend", "peer") and s["mode"] in ("float", "quantized")
        assert len(s["runs_ms"]) == data["protocol"]["repeat"] == len(s["samples_ms"])
        assert s["min_ms"] <= s["median_ms"] <= s["max_ms"]
        assert abs(s["mean_ms"] - np.mean(s["runs_ms"])) < 1e-9
        np.testing.assert_allclose(s["runs_ms"], np.mean(s["samples_ms"], axis=1), rtol=1e-4)
    for sp in data["speedups"]:
        f = next(s for s in data["series"] if s["engine"] == sp["engine"] and s["mode"] == "float")
        q = next(s for s in data["series"] if s["engine"] == sp["engine"] and s["mode"] == "quantized")
        assert sp["mean"] == pytest.approx(f["mean_ms"] / q["mean_ms"])


def test_json_schema_and_per_layer_split(tiny_path, capsys):
    assert main(["bench", "--model", str(tiny_path), "--backend", "reference", "--batches", "2", "--repeat", "2",
                 "--per-layer", "--json", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # only JSON on stdout with --json -
    _check_schema(data)
    assert data["theory"]["speedup"] == pytest.approx(qcnn.model.totals(qcnn.model.layer_costs(tiny()))["speedup"])
    q = next(s for s in data["series"] if s["mode"] == "quantized")
    layers = {row["name"]: row for row in q["layers"]}
    assert list(layers) == [layer["name"] for layer in TINY["layers"]]
    for name in ("conv1", "conv2", "fc1", "fc2"):  # staged: table building + look-up
        row = layers[name]
        assert row["op"] in ("qconv", "qfc") and row["table_ms"] > 0 and row["lookup_ms"] > 0
    assert "table_ms" not in layers["pool1"]
    assert sum(r["mean_ms"] for r in q["layers"]) == pytest.approx(q["mean_ms"])  # a pass = its layers


def test_every_installed_backend_side_by_side(tiny_path, capsys):
    result = bench.run_bench(str(tiny_path), backends="all", batches=2, repeat=2, warmup=1, progress=False)
    data = result.to_dict()
    _check_schema(data)
    names = {s.engine for s in result.series}
    assert "reference" in names
    assert names | {s["backend"] for s in data["skipped"]} >= set(qcnn.plugin.backend_specs())
    for s in result.series:
        if s.engine != "reference":  # every backend checked against the reference, in its mode
            assert s.agreement is not None and s.agreement["ok"], (s.engine, s.mode, s.agreement)
            assert set(s.agreement["layers"]) == {"fc2", "prob"}
    from qcnn.cli._bench import format_report

    text = format_report(result)
    assert "median ms" in text and "min-max ms" in text


# --------------------------------------------------------------------------- inputs
def test_dataset_reuses_the_last_image_and_reports_accuracy(tmp_path, softmax_calls):
    from qcnn.io import write_bin

    model = tiny()
    rng = np.random.default_rng(0)
    data = rng.uniform(-100, 100, size=(2, 3, 16, 16)).astype(np.float32)
    probs = qcnn.compile(model).forward(data)
    order = np.argsort(-probs, axis=1)
    labels = np.array([order[0, 0], order[1, 2]], np.uint16)  # image 0: top-1; image 1: top-3
    write_bin(tmp_path / "dataMatTst.single.bin", data)
    write_bin(tmp_path / "lablVecTst.uint16.bin", labels.reshape(1, 1, 1, 2))
    softmax_calls.clear()
    result = bench.run_bench(model, backends="reference", mode="quantized", batches=4, repeat=1, warmup=0,
                             dataset=tmp_path, check=False, progress=False)
    assert result.inputs == {"kind": "dataset", "source": str(tmp_path), "count": 2, "labeled": 2}
    assert any("reused" in n for n in result.notes)
    # batches 0..3 use images 0, 1, 1, 1 (the last image is reused, as in the original)
    acc = result.series[0].accuracy()
    assert acc == {"images": 4, "top1": 0.25, "top2": 0.25, "top3": 1.0, "top4": 1.0, "top5": 1.0}
    assert len(softmax_calls) == 4


def test_dataset_shape_must_match_the_model(tmp_path):
    from qcnn.io import write_bin

    write_bin(tmp_path / "dataMatTst.single.bin", np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(qcnn.QcnnError, match=r"dataMatTst.single.bin: holds \[2, 3, 8, 8\]"):
        bench.run_bench(tiny(), backends="reference", batches=1, repeat=1, dataset=tmp_path, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(qcnn.QcnnError, match="has no dataMatTst.single.bin"):
        bench.run_bench(tiny(), backends="reference", batches=1, repeat=1, dataset=tmp_path / "empty",
                        progress=False)


def test_images_directory_with_truth(tiny_path, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(2)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(d / f"img_{i}.bmp")
    (d / "notes.txt").write_text("not an image")
    truth = tmp_path / "image_labels.txt"
    truth.write_text("img_0.JPEG 1\nimg_1.JPEG 2\nimg_2.JPEG 3\n")
    out = tmp_path / "r.json"
    assert main(["bench", "--model", str(tiny_path), "--backend", "reference", "--batches", "3", "--repeat", "1",
                 "--images", str(d), "--truth", str(truth), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["inputs"] == {"kind": "images", "source": str(d), "count": 3, "labeled": 3}
    model = qcnn.load(tiny_path)
    from qcnn.io import preprocess

    x = np.stack([preprocess(d / f"img_{i}.bmp", model) for i in range(3)])
    for s in data["series"]:
        m = model if s["mode"] == "quantized" else bench.float_twin(model)
        top = np.argsort(-qcnn.compile(m).forward(x), axis=1)[:, :5]
        want = [float(np.mean([lab in top[i, :k] for i, lab in enumerate([1, 2, 3])])) for k in range(1, 6)]
        assert [s["accuracy"][f"top{k}"] for k in range(1, 6)] == want
    assert "accuracy reference Q-CNN over 3 images" in capsys.readouterr().out


# --------------------------------------------------------------------------- models
def test_float_twin_computes_the_quantized_network():
    model = tiny()
    twin = bench.float_twin(model)
    assert all(layer.quant is None for layer in twin.spec.layers)
    assert bench.float_twin(twin) is twin
    x = np.random.default_rng(3).uniform(-50, 50, size=(2, 3, 16, 16)).astype(np.float32)
    got = qcnn.compile(twin).run(x)
    want = qcnn.compile(model).run(x)
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert np.abs(got[name] - want[name]).max() <= 1e-4 * np.abs(want[name]).max(), name


def test_float_model_runs_float_only():
    result = bench.run_bench(tiny(False), backends="reference", batches=1, repeat=1, warmup=0, progress=False)
    assert [s.mode for s in result.series] == ["float"] and result.notes
    with pytest.raises(qcnn.QcnnError, match="no quantized layers"):
        bench.run_bench(tiny(False), backends="reference", mode="quantized", batches=1, repeat=1, progress=False)


def test_default_backend_is_an_available_one():
    name = bench.default_backend()
    order = qcnn.plugin.preferred_backends()  # from BackendSpec.preference
    assert order[:3] == ["cffi", "numba", "numpy"] and order[-1] == "reference"
    assert name in order
    qcnn.plugin.load_backend(name)
    for better in order[:order.index(name)]:
        with pytest.raises(qcnn.QcnnError):
            qcnn.plugin.load_backend(better)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, message", [
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--batches", "0"], "batches must be a positive integer, got 0"),
    (["--repeat", "-1"], "repeat must be a positive integer, got -1"),
    (["--threads", "0"], "threads must be a positive integer, got 0"),
    (["--warmup", "-2"], "warmup must be an integer >= 0, got -2"),
    (["--model", "/no/such/model.qcnn"], "/no/such/model.qcnn: no such model file"),
    (["--compare", "tensorflow"], "unknown peer 'tensorflow'"),
    (["--truth", "labels.txt"], "--truth needs --images"),
    (["--dataset", "/no/such/dir"], "/no/such/dir: not a dataset directory"),
])
def test_bad_options_are_one_line_errors(tiny_path, capsys, args, message):
    base = ["bench", "--batches", "1", "--repeat", "1", "--backend", "reference", "--model", str(tiny_path)]
    assert main(base + args) == 1
    err = capsys.readouterr().err
    assert err.startswith("qcnn bench: error: ") and message in err and err.count("\n") == 1


def test_images_and_dataset_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--images", "a", "--dataset", "b"])
    assert exc.value.code == 2


def test_compare_without_onnxruntime_says_what_to_install(tiny_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert main(["bench", "--model", str(tiny_path), "--backend", "reference", "--batches", "1", "--repeat", "1",
                 "--compare", "onnxruntime"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "qcnn[peers]"' in err


def test_compare_without_torch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(qcnn.QcnnError, match="pip install torch"):
        bench.run_bench(tiny(), backends="reference", batches=1, repeat=1, compare="torch", progress=False)


def test_compare_onnxruntime_same_protocol_and_agreement(tiny_path, capsys):
    pytest.importorskip("onnxruntime", reason='onnxruntime is in the peers extra: pip install "qcnn[peers]"')
    result = bench.run_bench(str(tiny_path), backends="reference", mode="quantized", batches=3, repeat=2,
                             warmup=1, compare="onnxruntime", progress=False)
    peer = result.get("onnxruntime", "float")
    assert peer is not None and peer.kind == "peer" and peer.samples.shape == (2, 3)
    assert peer.agreement["ok"] and peer.agreement["against"] == "qcnn reference float"
    assert peer.info["intra_op_num_threads"] == 1
    assert result.protocol["peers"] == ["onnxruntime"]


def test_compare_torch_agreement():
    pytest.importorskip("torch", reason="PyTorch is optional")
    result = bench.run_bench(tiny(), backends="reference", mode="float", batches=2, repeat=1, compare="torch",
                             progress=False)
    assert result.get("torch").agreement["ok"]


# --------------------------------------------------------------------------- machine
def test_machine_record_parses_cpuinfo(tmp_path):
    from qcnn.bench import _machine as machine

    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx avx2 fma avx512f\n\n"
                    "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx avx2 fma avx512f\n")
    info = machine.cpu_info(fake)
    assert info["model"] == "Test CPU 9000" and info["simd"] == ["sse2", "avx", "fma", "avx2", "avx512f"]
    record = machine.machine_record()
    json.dumps(record)
    assert record["python"]["version"] and "numpy" in record["packages"]


# --------------------------------------------------------------------------- asv
def test_asv_check(tmp_path):
    """asv discovers and validates every benchmark in benchmarks/ (in this environment)."""
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    if not Path(asv).exists():
        pytest.skip("asv is in the test extra: pip install -e '.[test]'")
    proc = subprocess.run([asv, "check", "--python=same"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_tables_series_side_by_side(tiny_path, capsys):
    """By default the quantized mode is timed with exact tables and, on backends with native
    integer tables, int8 tables; --tables picks the precisions, each recorded in its series."""
    result = bench.run_bench(str(tiny_path), backends="cffi,numpy", mode="quantized", batches=2, repeat=1,
                             warmup=0, progress=False)
    got = {(s.engine, s.precision) for s in result.series}
    assert got == {("cffi", "fp32"), ("cffi", "int8"), ("numpy", "fp32")}
    int8 = result.get("cffi", "quantized", "int8")
    assert int8 is not None and int8.net == "Q-CNN int8" and int8.fallbacks == []
    assert int8.agreement is not None and int8.agreement["ok"], int8.agreement  # exact integer sums
    assert main(["bench", "--model", str(tiny_path), "--backend", "cffi,numpy", "--mode", "quantized",
                 "--tables", "int16", "--batches", "1", "--repeat", "1", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["engine"], s["precision"]) for s in data["series"]] == [("cffi", "int16")]
    assert any("numpy has no int16 tables" in n for n in data["notes"])
    assert data["protocol"]["tables"] == ["int16"]
    assert main(["bench", "--model", str(tiny_path), "--tables", "int4"]) != 0
    assert "tables must be a comma-separated list of fp32, int16, int8" in capsys.readouterr().err
