"""The numba backend against the reference kernels, op by op, on random shapes.

Every op is compared with ``qcnn.reference`` to 1e-4 relative (max|diff| / max|ref|):
quantized conv through both of its paths (the staged table -> lookup and the tiled
``__call__``, which must agree bit for bit), the quantized fc through both look-up
kernels (AVX-512 permute and portable scalar), the synthetic AlexNet layer by layer, and
1 vs 2 threads (bit-identical).
"""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from qcnn import reference as ref  # noqa: E402
from qcnn import model as zoo  # noqa: E402
from qcnn.model import Layer, Quant, output_shape  # noqa: E402
from qcnn.plugin import StagedKernel  # noqa: E402
from qcnn.plugin import backend_specs, load_backend  # noqa: E402
from qcnn.testing import prepare_layer

TOL = 1e-4
RNG = np.random.default_rng(20161)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    scale = float(np.abs(want).max())
    return float(np.abs(got.astype(np.float64) - want).max() / (scale if scale > 0 else 1.0))


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    impl = load_backend("numba").impl
    impl.set_threads(1)
    return impl


def batch(n: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal((n, *shape)) * scale).astype(np.float32)


def conv_params(layer: Layer, c: int) -> dict[str, np.ndarray]:
    cg, k, o = c // layer.groups, layer.kernel, layer.out
    p = {"bias": (RNG.standard_normal(o) * 0.1).astype(np.float32)}
    if layer.quant is None:
        p["weight"] = RNG.standard_normal((o, cg, k, k)).astype(np.float32)
    else:
        s = layer.quant.subspaces(cg)
        p["codebook"] = RNG.standard_normal((s, layer.quant.K, layer.quant.D)).astype(np.float32)
        p["codes"] = RNG.integers(0, layer.quant.K, size=(o, k, k, s), dtype=np.uint8)
    return p


# (C, H, W, out, kernel, stride, pad, groups, D:K or None, N)
CONV_CASES = [
    (3, 23, 19, 8, 11, 4, 0, 1, "8:128", 1),   # conv1-like: D > C, stride 4
    (6, 17, 12, 8, 5, 1, 2, 2, "4:32", 3),     # grouped, D divides Cg... twice
    (12, 9, 14, 12, 3, 1, 1, 3, "5:16", 1),    # D does not divide Cg = 4? (S = 1, partial)
    (20, 11, 11, 16, 3, 2, 3, 4, "3:2", 3),    # K = 2, pad 3, 4 groups, Cg = 5 (partial last subspace)
    (7, 13, 10, 6, 1, 1, 0, 1, "2:256", 1),    # 1x1 kernel, K = 256
    (9, 15, 16, 6, 4, 3, 2, 3, "16:7", 3),     # D = 16 > Cg = 3, stride 3, even kernel
    (10, 12, 9, 4, 2, 4, 1, 2, "3:64", 1),     # stride 4 > kernel
    (16, 8, 8, 8, 7, 1, 3, 1, "9:33", 1),      # D = 9 > 8 rows per pass, K = 33
    (10, 13, 13, 16, 3, 1, 1, 2, "4:32", 3),   # narrow band path, conv3-like
    (5, 6, 11, 8, 5, 1, 2, 1, "8:16", 2),      # narrow band path, k = 5, D > C
    (5, 30, 21, 4, 6, 2, 0, 1, None, 3),       # float, non-square
    (6, 14, 9, 6, 3, 3, 1, 3, None, 1),        # float grouped, stride 3
    (8, 7, 7, 4, 1, 1, 0, 2, None, 3),         # float 1x1 (no im2col)
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(str(v) for v in c))
def test_conv_matches_reference(backend, case) -> None:  # type: ignore[no-untyped-def]
    c, h, w, o, k, st, pad, g, quant, n = case
    layer = Layer("c", "conv", out=o, kernel=k, stride=st, pad=pad, groups=g,
                  quant=Quant.parse(quant) if quant else None)
    out_shape = output_shape(layer, (c, h, w))
    params = conv_params(layer, c)
    x = batch(n, (c, h, w))
    kernel = prepare_layer(backend, layer, params, (c, h, w))
    y = kernel(x)
    assert y.shape == (n, *out_shape) and y.flags.c_contiguous
    if quant:
        want = ref.qconv(x, params["codebook"], params["codes"], params["bias"], st, pad, g)
        assert isinstance(kernel, StagedKernel)
        staged = kernel.lookup(kernel.table(x))
        assert_matches_stages(kernel, y, staged)
    else:
        want = ref.conv(x, params["weight"], params["bias"], st, pad, g)
    assert rel_err(y, want) < TOL


def assert_matches_stages(kernel, y: np.ndarray, staged: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The fused call equals the two stages bit for bit, except on the rotated band path (another
    summation order): there within float rounding."""
    if kernel.fused.schedule == "band-rotated":
        assert rel_err(y, staged) < 1e-6
    else:
        assert np.array_equal(staged, y), "tiled and staged quantized conv must agree bit for bit"


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("rows", [1, 4, 5])
def test_narrow_band_path_in_several_bands(rows, rotate) -> None:  # type: ignore[no-untyped-def]
    """Bands of 1, 4 (13 = 4 + 4 + 4 + 1) and 5 output rows, rotated or shifted loads: the staged
    stages' values (bit for bit when shifted), reference values."""
    from qcnn_numba.backend import NumbaBackend

    backend = NumbaBackend(band_rows=rows, band_rotate=rotate)
    layer = Layer("c", "conv", out=16, kernel=3, pad=1, groups=2, quant=Quant.parse("4:32"))
    params = conv_params(layer, 10)
    x = batch(2, (10, 13, 13))
    kernel = prepare_layer(backend, layer, params, (10, 13, 13))
    assert kernel.fused.schedule == ("band-rotated" if rotate else "band-shifted")
    y = kernel(x)
    assert_matches_stages(kernel, y, kernel.lookup(kernel.table(x)))
    assert rel_err(y, ref.qconv(x, params["codebook"], params["codes"], params["bias"], 1, 1, 2)) < TOL


# (F shape, out, D:K, N)
QFC_CASES = [((4096,), 300, "4:32", 1), ((5, 3, 3), 70, "4:32", 3), ((50,), 17, "1:16", 1),
             ((37,), 33, "3:2", 3), ((64,), 20, "8:256", 1), ((2, 5, 3), 260, "7:33", 3), ((9,), 5, "16:20", 1)]


@pytest.mark.parametrize("case", QFC_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-n{c[3]}")
def test_qfc_matches_reference(backend, case) -> None:  # type: ignore[no-untyped-def]
    from qcnn_numba import kernels_qfc as kf

    shape, o, quant, n = case
    q = Quant.parse(quant)
    f = int(np.prod(shape))
    s = q.subspaces(f)
    params = {"codebook": RNG.standard_normal((s, q.K, q.D)).astype(np.float32),
              "codes": RNG.integers(0, q.K, size=(o, s), dtype=np.uint8),
              "bias": RNG.standard_normal(o).astype(np.float32)}
    x = batch(n, shape)
    kernel = prepare_layer(backend, Layer("f", "fc", out=o, quant=q), params, shape)
    assert isinstance(kernel, StagedKernel)
    want = ref.qfc(x, params["codebook"], params["codes"], params["bias"])
    y = kernel(x)
    assert y.shape == (n, o)
    assert rel_err(y, want) < TOL
    table = kernel.table(x)
    assert rel_err(table[:, :, :q.K], ref.qfc_table(x, params["codebook"])) < TOL
    # the portable look-up gives the same sums in the same order as the packed-code permute one
    y2 = np.empty_like(y)
    kf.qfc_lookup_scalar(table, kf.block_codes(params["codes"]), params["bias"], y2)
    assert np.array_equal(y2, y)


@pytest.mark.parametrize("n", [1, 3])
def test_float_fc_matches_reference(backend, n) -> None:  # type: ignore[no-untyped-def]
    params = {"weight": RNG.standard_normal((30, 72)).astype(np.float32),
              "bias": RNG.standard_normal(30).astype(np.float32)}
    x = batch(n, (2, 6, 6))
    y = prepare_layer(backend, Layer("f", "fc", out=30), params, (2, 6, 6))(x)
    assert rel_err(y, ref.fc(x, params["weight"], params["bias"])) < TOL


# (C, H, W, kernel, stride, pad, N): ceil rounding and windows clipped at the far edge. Two geometries
# were dropped: 2x10x7 k2 s2 p1 and 3x3 k3 s3 p2 put their last window in the padding, which the
# spec's output_shape rejects, so no such layer can reach a backend.
POOL_CASES = [(3, 55, 55, 3, 2, 0, 1), (2, 109, 20, 3, 3, 0, 3), (4, 8, 9, 3, 2, 1, 1), (1, 6, 6, 4, 3, 2, 1),
              (2, 5, 11, 1, 1, 0, 1)]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(str(v) for v in c))
def test_pool_matches_reference(backend, case) -> None:  # type: ignore[no-untyped-def]
    c, h, w, k, st, pad, n = case
    x = batch(n, (c, h, w)) - 3.0  # mostly negative: padding must never win
    y = prepare_layer(backend, Layer("p", "pool", kernel=k, stride=st, pad=pad), {}, (c, h, w))(x)
    np.testing.assert_array_equal(y, ref.max_pool(x, k, st, pad))


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (3, 5e-4, 0.75, 2.0), (5, 1e-2, 0.5, 1.0),
                                                (7, 1e-3, 1.0, 1.5), (5, 1e-2, 0.6, 1.0)])
def test_lrn_matches_reference(backend, size, alpha, beta, k) -> None:  # type: ignore[no-untyped-def]
    x = batch(2, (9, 7, 5), scale=30.0)
    y = prepare_layer(backend, Layer("n", "lrn", size=size, alpha=alpha, beta=beta, k=k), {}, (9, 7, 5))(x)
    assert rel_err(y, ref.lrn(x, size, alpha, beta, k)) < TOL


def test_relu_dropout_softmax(backend) -> None:  # type: ignore[no-untyped-def]
    x = batch(3, (4, 5, 6))
    relu = prepare_layer(backend, Layer("r", "relu"), {}, (4, 5, 6))
    np.testing.assert_array_equal(relu(x), ref.relu(x))
    drop = prepare_layer(backend, Layer("d", "dropout", ratio=0.5), {}, (4, 5, 6))
    y = drop(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(y, x)
    logits = batch(3, (1000,), scale=40.0)  # large logits: softmax must subtract the max
    sm = prepare_layer(backend, Layer("s", "softmax"), {}, (1000,))(logits)
    assert np.isfinite(sm).all()
    assert rel_err(sm, ref.softmax(logits)) < TOL


@pytest.fixture(scope="module")
def alexnet_runs():  # type: ignore[no-untyped-def]
    """Synthetic quantized AlexNet: reference outputs of every layer for a batch of 2."""
    import qcnn

    model = zoo.synthetic("alexnet")
    x = (np.random.default_rng(5).standard_normal((2, 3, 227, 227)) * 40).astype(np.float32)
    return model, x, qcnn.compile(model, "reference").run(x)


def test_alexnet_every_layer_matches_reference(alexnet_runs) -> None:  # type: ignore[no-untyped-def]
    import qcnn

    model, x, want = alexnet_runs
    session = qcnn.compile(model, "numba", threads=1)
    assert session.fallbacks == []
    prev = x
    for p in session.layers:
        got = p.kernel(prev)  # each layer fed the reference input, so errors do not compound
        assert rel_err(got, want[p.layer.name]) < TOL, p.layer.name
        prev = want[p.layer.name]
    out = session(x)
    assert rel_err(out, want[session.layers[-1].layer.name]) < TOL


@pytest.mark.skipif("numba" not in sys.modules or __import__("numba").config.NUMBA_NUM_THREADS < 2,
                    reason="needs 2 numba threads")
def test_one_and_two_threads_give_identical_results(backend) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (Layer("c1", "conv", out=16, kernel=11, stride=4, quant=Quant(8, 128)), (3, 47, 39), 1),
        (Layer("c2", "conv", out=32, kernel=5, pad=2, groups=2, quant=Quant(8, 64)), (16, 13, 13), 3),
        (Layer("c3", "conv", out=8, kernel=3, pad=1), (6, 12, 12), 3),
        (Layer("c4", "conv", out=24, kernel=3, pad=1, groups=2, quant=Quant(8, 32)), (16, 13, 13), 1),
        (Layer("f1", "fc", out=600, quant=Quant(4, 32)), (256,), 3),
        (Layer("f2", "fc", out=300, quant=Quant(2, 64)), (64,), 1),
        (Layer("n1", "lrn"), (12, 9, 9), 3),
        (Layer("p1", "pool", kernel=3, stride=2), (12, 9, 9), 3),
    ]
    try:
        for layer, shape, n in cases:
            params = conv_params(layer, shape[0]) if layer.type == "conv" else {}
            if layer.type == "fc":
                f = int(np.prod(shape))
                s = layer.quant.subspaces(f)
                params = {"codebook": RNG.standard_normal((s, layer.quant.K, layer.quant.D)).astype(np.float32),
                          "codes": RNG.integers(0, layer.quant.K, size=(layer.out, s), dtype=np.uint8),
                          "bias": RNG.standard_normal(layer.out).astype(np.float32)}
            x = batch(n, shape)
            kernel = prepare_layer(backend, layer, params, shape)
            backend.set_threads(1)
            one = kernel(x)
            staged_one = kernel.lookup(kernel.table(x)) if isinstance(kernel, StagedKernel) else one
            backend.set_threads(2)
            two = kernel(x)
            staged_two = kernel.lookup(kernel.table(x)) if isinstance(kernel, StagedKernel) else two
            assert np.array_equal(one, two), layer.name
            assert np.array_equal(staged_one, staged_two), layer.name
    finally:
        backend.set_threads(1)


def test_registered_and_info(backend) -> None:  # type: ignore[no-untyped-def]
    import numba

    spec = backend_specs()["numba"]
    dist = next(ep.dist for ep in importlib.metadata.entry_points(group="qcnn.backends") if ep.name == "numba")
    assert spec.plugin == "numba" and spec.version == dist.version
    info = backend.info()
    assert info["numba"] == numba.__version__
    assert info["threads"] == numba.get_num_threads()
    assert {"llvm", "simd", "threading_layer", "cpu"} <= set(info)


def test_missing_numba_is_reported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qcnn_numba import plugin

    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    with pytest.raises(ImportError, match="numba is not installed: pip install numba"):
        plugin.load()


def test_bad_inputs_are_one_line_errors(backend) -> None:  # type: ignore[no-untyped-def]
    from qcnn import QcnnError

    layer = Layer("c", "conv", out=4, kernel=3, quant=Quant(2, 8))
    kernel = prepare_layer(backend, layer, conv_params(layer, 4), (4, 6, 6))
    with pytest.raises(QcnnError, match="layer c: look-up needs the table"):
        kernel.lookup(np.zeros(10, np.float32))
    fc = Layer("f", "fc", out=3, quant=Quant(2, 8))
    qfc = prepare_layer(backend, fc, {"codebook": np.ones((3, 8, 2), np.float32), "codes": np.zeros((3, 3), np.uint8),
                               "bias": np.zeros(3, np.float32)}, (6,))
    with pytest.raises(QcnnError, match="layer f: look-up needs the table"):
        qfc.lookup(np.zeros((1, 3, 7), np.float32))


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("case", [(3, 35, 31, 8, 11, 4, 0, 1, "3:16"),   # conv1-like: 16 phases, 3x3 .. 2x2 grids
                                  (8, 13, 20, 6, 5, 1, 2, 2, "4:32"),    # conv2-like: one 5x5 grid, Wq 24 -> 32
                                  (6, 20, 19, 4, 3, 2, 1, 1, "2:8")],    # stride 2: 2x2, 2x1, 1x2, 1x1 grids
                         ids=["conv1", "conv2", "stride2"])
def test_rotated_grid_lookup(case, rotate) -> None:  # type: ignore[no-untyped-def]
    """The rotated phase-grid look-up (and the shifted one it replaces): reference values, and the
    fused call equal to the stages bit for bit."""
    from qcnn_numba.backend import NumbaBackend

    backend = NumbaBackend(grid_rotate=rotate)
    c, h, w, o, k, st, pad, g, quant = case
    layer = Layer("c", "conv", out=o, kernel=k, stride=st, pad=pad, groups=g, quant=Quant.parse(quant))
    params = conv_params(layer, c)
    x = batch(2, (c, h, w))
    kernel = prepare_layer(backend, layer, params, (c, h, w))
    assert kernel.fused.schedule == ("rows-rotated" if rotate else "rows-shifted")
    y = kernel(x)
    assert np.array_equal(kernel.lookup(kernel.table(x)), y)
    assert rel_err(y, ref.qconv(x, params["codebook"], params["codes"], params["bias"], st, pad, g)) < TOL
