"""qcnn.quantize: k-means, pq and error-corrected pq on the committed digits LeNet, the CLI,
and every bad-input case. Real data: scikit-learn's digits (test extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import qcnn
from qcnn import reference as ref
from qcnn.cli import main
from qcnn.model import Layer, NetSpec, Quant
from qcnn.train import kmeans, pq_layer

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
MODEL = DIGITS / "lenet_digits.qcnn"


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(DIGITS))
    try:
        from digits_data import load_split
    finally:
        sys.path.remove(str(DIGITS))
    return load_split()


@pytest.fixture(scope="module")
def float_model() -> qcnn.Model:
    return qcnn.load(MODEL)


@pytest.fixture(scope="module")
def pq_ec(float_model, digits):
    """pq and ec at a small setting, 400 calibration images from the training split."""
    x_tr = digits[0]
    kw = dict(conv="4:8", fc="4:8", samples=400, iters=4, seed=0, progress=False)
    return (qcnn.quantize(float_model, x_tr, method="pq", **kw), qcnn.quantize(float_model, x_tr, method="ec", **kw))


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# ---------------------------------------------------------------- k-means and pq
def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    truth = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pts = np.concatenate([truth[i] + 0.1 * rng.standard_normal((50, 2)) for i in range(3)])
    batch = np.stack([pts, pts[::-1] * 2.0])  # two problems at once
    for init in ("k-means++", "random"):
        centers, labels = kmeans(batch, 3, seed=0, init=init)
        assert centers.shape == (2, 3, 2) and labels.shape == (2, 150)
        for b, scale in ((0, 1.0), (1, 2.0)):
            if init == "k-means++":  # random seeding may settle in a local optimum
                found = sorted(map(tuple, np.round(centers[b] / scale) + 0.0))
                assert found == sorted(map(tuple, truth)), init
            # every point sits with its nearest center
            d = ((batch[b][:, None] - centers[b][None]) ** 2).sum(-1)
            assert (labels[b] == d.argmin(1)).all()


def test_pq_fc_pads_last_subspace_with_zeros():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 10)).astype(np.float32)  # F = 10, D = 4: S = 3, last subspace 2 real dims
    codebook, codes = pq_layer(Layer("fc", "fc", out=40), w, Quant(4, 8))
    assert codebook.shape == (3, 8, 4) and codes.shape == (40, 3) and codes.dtype == np.uint8
    assert (codebook[2, :, 2:] == 0).all()
    dec = ref.decode_fc_weight(codebook, codes, 10)
    # each decoded sub-vector is its nearest codeword (k-means converged)
    for s in range(3):
        sub = np.pad(w, ((0, 0), (0, 2)))[:, 4 * s:4 * s + 4]
        d = ((sub[:, None] - codebook[s][None]) ** 2).sum(-1)
        assert (codes[:, s] == d.argmin(1)).all()
    assert np.linalg.norm(dec - w) < np.linalg.norm(w)


def test_pq_conv_shares_codebook_over_offsets_and_groups():
    rng = np.random.default_rng(0)
    layer = Layer("c", "conv", out=6, kernel=3, groups=2)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)  # C/G = 3, D = 2: S = 2, padded
    codebook, codes = pq_layer(layer, w, Quant(2, 16))
    assert codebook.shape == (2, 16, 2) and codes.shape == (6, 3, 3, 2)
    assert (codebook[1, :, 1] == 0).all()
    dec = ref.decode_conv_weight(codebook, codes, 3)
    # subspace 1 holds one real channel: 54 scalars into 16 levels is nearly exact
    assert np.abs(dec[:, 2] - w[:, 2]).max() < 0.25
    assert np.linalg.norm(dec - w) < 0.5 * np.linalg.norm(w)


# ---------------------------------------------------------------- pq vs ec on digits
def test_ec_beats_pq_on_digits(pq_ec, float_model, digits):
    (pq_model, pq_rep), (ec_model, ec_rep) = pq_ec
    _, _, x_te, y_te = digits
    assert [r.name for r in ec_rep.layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert ec_rep.layers[0].err_pq == pytest.approx(pq_rep.layers[0].err_pq)  # same seed, same input
    for r_pq, r_ec in zip(pq_rep.layers, ec_rep.layers):
        assert r_ec.err_ec < r_ec.err_pq and r_ec.err_ec < r_pq.err_pq, r_ec.name
    # held-out: the error of the last fc's responses against the float network's
    f = qcnn.compile(float_model).run(x_te, outputs=["fc2"])["fc2"]
    e_pq = np.linalg.norm(qcnn.compile(pq_model).run(x_te, outputs=["fc2"])["fc2"] - f) / np.linalg.norm(f)
    e_ec = np.linalg.norm(qcnn.compile(ec_model).run(x_te, outputs=["fc2"])["fc2"] - f) / np.linalg.norm(f)
    assert e_ec < e_pq
    acc = lambda m: float((qcnn.compile(m)(x_te).argmax(1) == y_te).mean())  # noqa: E731
    assert acc(ec_model) >= acc(pq_model) and acc(float_model) > 0.95
    for m in (pq_model, ec_model):
        assert m.quantized and all(layer.quant is not None for layer in m.spec.layers if layer.has_weights)


def test_report_errors_equal_direct_measurement(float_model, digits):
    """The statistics-based error equals ||Y_q - Y_f|| / ||Y_f - b|| measured by running the layers."""
    x = digits[0][:200]
    model, rep = qcnn.quantize(float_model, x, method="ec", conv="4:8", fc="8:8", iters=2, positions=None,
                               progress=False)
    fsess, qsess = qcnn.compile(float_model), qcnn.compile(model)
    for r in rep.layers:
        yf = fsess.run(x, outputs=[r.name], stop=r.name)[r.name]
        yq = qsess.run(x, outputs=[r.name], stop=r.name)[r.name]
        b = float_model.params[r.name]["bias"]
        b = b[None, :, None, None] if yf.ndim == 4 else b[None]
        direct = np.linalg.norm(yq - yf) / np.linalg.norm(yf - b)
        assert r.err_ec == pytest.approx(direct, rel=1e-4), r.name


def test_ec_handles_groups_and_strides():
    """A grouped, strided, padded conv and an fc whose D does not divide F, on random data."""
    spec = NetSpec("g", (4, 9, 9), (Layer("c1", "conv", out=8, kernel=3, stride=2, pad=1, groups=2),
                                    Layer("r1", "relu"), Layer("f1", "fc", out=12)))
    model = qcnn.model.synthetic(spec, quantized=False, seed=3)
    x = np.random.default_rng(0).standard_normal((60, 4, 9, 9)).astype(np.float32)
    q, rep = qcnn.quantize(model, x, conv="3:16", fc="6:8", iters=3, positions=None, progress=False)
    assert q.params["c1"]["codebook"].shape == (1, 16, 3) and q.params["f1"]["codebook"].shape == (34, 8, 6)
    assert (q.params["f1"]["codebook"][-1, :, 2:] == 0).all()  # F = 200 = 33 * 6 + 2
    fsess, qsess = qcnn.compile(model), qcnn.compile(q)
    for r in rep.layers:
        assert r.err_ec < r.err_pq
        yf = fsess.run(x, outputs=[r.name], stop=r.name)[r.name]
        yq = qsess.run(x, outputs=[r.name], stop=r.name)[r.name]
        b = model.params[r.name]["bias"]
        b = b[None, :, None, None] if yf.ndim == 4 else b[None]
        assert r.err_ec == pytest.approx(np.linalg.norm(yq - yf) / np.linalg.norm(yf - b), rel=1e-4)
    # statistics from 8 sampled output positions (of 25) of 100 images still let ec beat pq on
    # every position of 200 images (half of them unseen)
    x = np.random.default_rng(0).standard_normal((200, 4, 9, 9)).astype(np.float32)
    q8, rep8 = qcnn.quantize(model, x, conv="3:16", fc="6:8", iters=3, positions=8, samples=100, progress=False)
    yf = fsess.run(x, outputs=["c1"], stop="c1")["c1"]
    err = lambda m: np.linalg.norm(qcnn.compile(m).run(x, outputs=["c1"], stop="c1")["c1"] - yf)  # noqa: E731
    pq = qcnn.quantize(model, x, method="pq", conv="3:16", fc="6:8", progress=False)[0]
    assert rep8.layers[0].err_ec < rep8.layers[0].err_pq and err(q8) < err(pq)


def test_output_runs_on_every_backend(pq_ec, digits, tmp_path):
    from qcnn.plugin import backend_specs

    model = pq_ec[1][0]
    path = tmp_path / "q.qcnn"
    qcnn.save(model, path)
    loaded = qcnn.load(path)
    x = digits[2][:64]
    want = qcnn.compile(loaded, "reference")(x)
    ran = []
    for name in backend_specs():
        try:
            sess = qcnn.compile(loaded, name)
        except qcnn.QcnnError as err:  # listed but unavailable here (missing dependency)
            assert "unavailable" in str(err)
            continue
        got = sess(x)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), name
        ran.append(name)
    assert "reference" in ran and len(ran) >= 2


# ---------------------------------------------------------------- CLI
def test_cli_end_to_end_npy(digits, tmp_path, capsys):
    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:150])
    out = tmp_path / "q.qcnn"
    code = main(["quantize", str(MODEL), "--calib", str(calib), "-o", str(out), "--conv", "2:8", "--fc", "8:8",
                 "--layer", "fc2=4:8", "--skip", "conv1", "--iters", "2", "--seed", "1", "--json", "--quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in report["layers"]] == ["conv2", "fc1", "fc2"]
    assert report["layers"][2]["quant"] == "4:8" and report["samples"] == 150
    assert all(r["err_ec"] < r["err_pq"] for r in report["layers"])
    assert report["totals"]["speedup"] > 1 and report["totals"]["compression"] > 1
    q = qcnn.load(out)
    assert q.spec.layer("conv1").quant is None and q.spec.layer("conv2").quant == Quant(2, 8)
    # the plain-text report, pq without calibration data
    out2 = tmp_path / "pq.qcnn"
    assert main(["quantize", str(MODEL), "-o", str(out2), "--method", "pq", "--conv", "2:8", "--fc", "4:8",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "conv1" in text and "speed-up" in text and f"wrote {out2}" in text
    assert qcnn.load(out2).quantized


def test_cli_calibration_from_authors_dataset_dir(digits, tmp_path, capsys):
    from qcnn.io import write_bin

    write_bin(tmp_path / "dataMatTst.single.bin", digits[0][:40])
    out = tmp_path / "q.qcnn"
    assert main(["quantize", str(MODEL), "--calib", str(tmp_path), "-o", str(out), "--conv", "2:8",
                 "--fc", "4:8", "--iters", "1", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 40


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, needle", [
    ({"fc": "4:300"}, "K must be an integer in 2..256"),
    ({"conv": "0:16"}, "D must be a positive integer"),
    ({"conv": "-2:16"}, "D must be a positive integer"),
    ({"fc": "4:16"}, "layer fc2: K=16 codewords but only 10 weight sub-vectors"),
    ({"layers": {"fc9": "4:8"}}, "no conv or fc layer named fc9"),
    ({"conv": "4"}, "expected a D:K setting"),
])
def test_bad_settings(float_model, digits, kwargs, needle):
    args = {"conv": "2:8", "fc": "4:8", **kwargs}
    with pytest.raises(qcnn.QcnnError) as excinfo:
        qcnn.quantize(float_model, digits[0][:10], progress=False, **args)
    assert needle in _one_line_error(excinfo)


@pytest.mark.parametrize("x, needle", [
    (np.zeros((5, 3, 8, 8), np.float32), "shape [5, 3, 8, 8] does not match the model input"),
    (np.zeros((5, 64), np.float32), "expected [N, 1, 8, 8]"),
    (np.zeros((0, 1, 8, 8), np.float32), "empty calibration set"),
    (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN or Inf"),
    (np.array([["a"]]), "must be numeric"),
])
def test_bad_calibration(float_model, x, needle):
    with pytest.raises(qcnn.QcnnError) as excinfo:
        qcnn.quantize(float_model, x, conv="2:8", fc="4:8", progress=False)
    assert needle in _one_line_error(excinfo)


def test_ec_needs_calibration(float_model):
    with pytest.raises(qcnn.QcnnError) as excinfo:
        qcnn.quantize(float_model, None, conv="2:8", fc="4:8", progress=False)
    assert "needs calibration inputs" in _one_line_error(excinfo)


def test_rejects_quantized_model(pq_ec, digits):
    with pytest.raises(qcnn.QcnnError) as excinfo:
        qcnn.quantize(pq_ec[0][0], digits[0][:10], conv="2:8", fc="4:8", progress=False)
    assert "already quantized" in _one_line_error(excinfo)


def test_rejects_nan_weights(float_model, digits, tmp_path, capsys):
    params = {k: {t: a.copy() for t, a in v.items()} for k, v in float_model.params.items()}
    model = qcnn.Model(float_model.spec, params, source="nan.qcnn")
    model.params["fc1"]["weight"][3, 5] = np.nan  # corrupted after construction
    with pytest.raises(qcnn.QcnnError) as excinfo:
        qcnn.quantize(model, digits[0][:10], conv="2:8", fc="4:8", progress=False)
    assert "fc1.weight contains NaN" in _one_line_error(excinfo)
    # the same model as a file, through the CLI: one line on stderr, exit 1
    path = tmp_path / "nan.qcnn"
    qcnn.save(model, path)
    assert main(["quantize", str(path), "-o", str(tmp_path / "o.qcnn"), "--method", "pq", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "NaN" in err and not (tmp_path / "o.qcnn").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--calib", "{tmp}/missing.npy"], "no such calibration file"),
    (["--calib", "{tmp}/bad.npy"], "shape [3, 8, 8] does not match"),
    (["--calib", "{tmp}"], "no images"),
    (["--calib", "{tmp}/x.txt"], "must be a .npy file or a directory"),
    (["--method", "pq", "--fc", "4:999"], "K must be an integer in 2..256"),
    (["--layer", "fc2"], "--layer expects NAME=D:K"),
    (["--skip", "nope", "--method", "pq"], "no conv or fc layer named nope"),
])
def test_cli_bad_input_one_line(tmp_path, capsys, argv, needle):
    np.save(tmp_path / "bad.npy", np.zeros((3, 8, 8), np.float32))
    (tmp_path / "x.txt").write_text("hello")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(["quantize", str(MODEL), "-o", str(tmp_path / "o.qcnn"), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and needle in err, err
    assert not (tmp_path / "o.qcnn").exists()


def test_cli_calibration_from_image_dir(tmp_path, capsys):
    """A directory of images goes through the model's own preprocessing (here: centre crop)."""
    from PIL import Image

    spec = NetSpec("rgb", (3, 8, 8), (Layer("c1", "conv", out=8, kernel=3, pad=1), Layer("r1", "relu"),
                                      Layer("f1", "fc", out=16)))
    model_path = tmp_path / "rgb.qcnn"
    qcnn.save(qcnn.model.synthetic(spec, quantized=False, seed=0), model_path)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "q.qcnn"
    assert main(["quantize", str(model_path), "--calib", str(images), "-o", str(out), "--conv", "3:8",
                 "--fc", "8:8", "--samples", "4", "--iters", "2", "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4 and all(r["err_ec"] <= r["err_pq"] for r in report["layers"])
    assert qcnn.load(out).spec.layer("c1").quant == Quant(3, 8)


@pytest.mark.parametrize("lname, setting, capacity", [("conv2", "4:16", 8), ("conv2", "2:8", 256),
                                                      ("fc1", "8:8", 16), ("fc1", "2:8", 256)])
def test_ec_steps_never_raise_the_error(float_model, digits, lname, setting, capacity):
    """Every codebook and assignment step lowers (or keeps) L, and the queued G W stays exact."""
    from tqdm import tqdm

    Q = sys.modules["qcnn.train._quantize"]
    from qcnn.train import _ec as ec
    m = float_model
    index = m.spec.index(lname)
    layer, shape = m.spec.layers[index], m.spec.shapes()[index]
    q = Quant.parse(setting)
    groups, cg, kk = Q._layout(layer, shape)
    S = q.subspaces(cg)
    w = m.params[lname]["weight"]
    st = Q._collect(layer, shape, w, groups, S * q.D, m, qcnn.compile(m), qcnn.compile, "reference", digits[0][:300],
                    index, m.spec.names, 100, None, np.random.default_rng(0), False, tqdm)
    codebook, codes = pq_layer(layer, w, q)
    solver = ec.Solver(st, codebook, codes.reshape(codes.shape[0], kk, S), groups, kk, S * q.D)
    solver.gw.capacity = capacity
    before = prev = st.loss(solver.w)
    for s in range(S):
        solver.codebook_step(s)
        assert st.loss(solver.w) <= prev * (1 + 1e-9)
        prev = st.loss(solver.w)
        for a in range(kk):
            solver.assign_step(s, a)
            assert st.loss(solver.w) <= prev * (1 + 1e-9)
            prev = st.loss(solver.w)
        probe = solver.block(s, [0])
        assert np.allclose(solver.gw.rows(0, probe), (st.G[0] @ solver.w[0])[probe])
    assert prev < 0.7 * before
    assert np.allclose(solver.gw.full(0), st.G[0] @ solver.w[0])
    assert np.array_equal(solver.w[0], ec.decode_rows(solver.codebook, solver.codes, groups)[0])
