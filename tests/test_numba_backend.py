"""What is internal to the numba backend: its schedules, its config, its promises beyond the contract.

Agreement with the reference on the public cases (every op, the AlexNet layers) is the
conformance suite's (``qcnn.testing``, run by ``test_conformance.py``). Here: the quantized
conv's fused call against its own two stages (bit for bit, except the rotated band path:
within rounding) on geometries aimed at its code paths (the band path in several bands,
rotated and shifted phase grids, partial subspaces, codeword blocks); the quantized fc's two
look-up kernels (AVX-512 permute and portable scalar) bit for bit, and its table layout;
kernel branches the suite's cases do not reach; 1 vs 2 threads bit for bit (the suite asks
only within RTOL); which schedule AlexNet's convs take by default; ``NumbaConfig``; load and
``info()``.
"""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from qcnn import QcnnError
from qcnn import model as zoo
from qcnn import reference as ref
from qcnn.model import Layer, Quant, output_shape
from qcnn.plugin import StagedKernel, backend_specs, load_backend
from qcnn.testing import assert_close, prepare_layer

RNG = np.random.default_rng(20161)


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    impl = load_backend("numba").impl
    impl.set_threads(1)
    return impl


def numba_backend(**fields):  # type: ignore[no-untyped-def]
    """A backend object of its own with these NumbaConfig fields, on 1 thread."""
    from qcnn_numba.backend import NumbaBackend

    impl = NumbaBackend(**fields)
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


def qfc_params(q: Quant, f: int, o: int) -> dict[str, np.ndarray]:
    s = q.subspaces(f)
    return {"codebook": RNG.standard_normal((s, q.K, q.D)).astype(np.float32),
            "codes": RNG.integers(0, q.K, size=(o, s), dtype=np.uint8),
            "bias": RNG.standard_normal(o).astype(np.float32)}


def qconv_reference(x: np.ndarray, layer: Layer, params: dict[str, np.ndarray]) -> np.ndarray:
    return ref.qconv(x, params["codebook"], params["codes"], params["bias"], layer.stride, layer.pad, layer.groups)


def assert_matches_stages(kernel, y: np.ndarray, staged: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The fused call equals the two stages bit for bit, except on the rotated band path (another
    summation order): there within float rounding."""
    if kernel.fused.schedule == "band-rotated":
        assert_close(y, staged, "rotated band path vs the stages", rtol=1e-6)
    else:
        assert np.array_equal(staged, y), f"{kernel.fused.schedule}: fused and staged quantized conv differ"


# (C, H, W, out, kernel, stride, pad, groups, D:K, N): aimed at the quantized conv's code paths
QCONV_CASES = [
    (3, 23, 19, 8, 11, 4, 0, 1, "8:128", 1),   # conv1-like: D > C, stride 4
    (6, 17, 12, 8, 5, 1, 2, 2, "4:32", 3),     # grouped, D divides Cg... twice
    (12, 9, 14, 12, 3, 1, 1, 3, "5:16", 1),    # D does not divide Cg = 4? (S = 1, partial)
    (20, 11, 11, 16, 3, 2, 3, 4, "3:2", 3),    # K = 2, pad 3, 4 groups, Cg = 5 (partial last subspace)
    (7, 13, 10, 6, 1, 1, 0, 1, "2:256", 1),    # 1x1 kernel, K = 256
    (9, 15, 16, 6, 4, 3, 2, 3, "16:7", 3),     # D = 16 > Cg = 3, stride 3, even kernel
    (10, 12, 9, 4, 2, 4, 1, 2, "3:64", 1),     # stride 4 > kernel
    (16, 8, 8, 8, 7, 1, 3, 1, "9:33", 1),      # D = 9 > 8 rows per pass, K = 33; band path, k = 7 (shifted)
    (10, 13, 13, 16, 3, 1, 1, 2, "4:32", 3),   # narrow band path, conv3-like
    (5, 6, 11, 8, 5, 1, 2, 1, "8:16", 2),      # narrow band path, k = 5, D > C
]


@pytest.mark.parametrize("case", QCONV_CASES, ids=lambda c: "x".join(str(v) for v in c))
def test_qconv_call_equals_stages(backend, case) -> None:  # type: ignore[no-untyped-def]
    """The fused call and lookup(table(x)) agree (bit for bit but on the rotated band path), and
    both with the reference on these geometries."""
    c, h, w, o, k, st, pad, g, quant, n = case
    layer = Layer("c", "conv", out=o, kernel=k, stride=st, pad=pad, groups=g, quant=Quant.parse(quant))
    params = conv_params(layer, c)
    x = batch(n, (c, h, w))
    kernel = prepare_layer(backend, layer, params, (c, h, w))
    assert isinstance(kernel, StagedKernel) and kernel.fused is not None
    y = kernel(x)
    assert y.shape == (n, *output_shape(layer, (c, h, w))) and y.flags.c_contiguous
    assert_matches_stages(kernel, y, kernel.lookup(kernel.table(x)))
    assert_close(y, qconv_reference(x, layer, params), kernel.fused.schedule)


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("rows", [1, 4, 5])
def test_narrow_band_path_in_several_bands(rows, rotate) -> None:  # type: ignore[no-untyped-def]
    """Bands of 1, 4 (13 = 4 + 4 + 4 + 1) and 5 output rows, rotated or shifted loads: the staged
    stages' values (bit for bit when shifted), reference values."""
    backend = numba_backend(band_rows=rows, band_rotate=rotate)
    layer = Layer("c", "conv", out=16, kernel=3, pad=1, groups=2, quant=Quant.parse("4:32"))
    params = conv_params(layer, 10)
    x = batch(2, (10, 13, 13))
    kernel = prepare_layer(backend, layer, params, (10, 13, 13))
    assert kernel.fused.schedule == ("band-rotated" if rotate else "band-shifted")
    y = kernel(x)
    assert_matches_stages(kernel, y, kernel.lookup(kernel.table(x)))
    assert_close(y, qconv_reference(x, layer, params), f"band path, {rows} rows")


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("case", [(3, 35, 31, 8, 11, 4, 0, 1, "3:16"),   # conv1-like: 16 phases, 3x3 .. 2x2 grids
                                  (8, 13, 20, 6, 5, 1, 2, 2, "4:32"),    # conv2-like: one 5x5 grid, Wq 24 -> 32
                                  (6, 20, 19, 4, 3, 2, 1, 1, "2:8")],    # stride 2: 2x2, 2x1, 1x2, 1x1 grids
                         ids=["conv1", "conv2", "stride2"])
def test_rotated_grid_lookup(case, rotate) -> None:  # type: ignore[no-untyped-def]
    """The rotated phase-grid look-up (and the shifted one it replaces): reference values, and the
    fused call equal to the stages bit for bit."""
    backend = numba_backend(grid_rotate=rotate)
    c, h, w, o, k, st, pad, g, quant = case
    layer = Layer("c", "conv", out=o, kernel=k, stride=st, pad=pad, groups=g, quant=Quant.parse(quant))
    params = conv_params(layer, c)
    x = batch(2, (c, h, w))
    kernel = prepare_layer(backend, layer, params, (c, h, w))
    assert kernel.fused.schedule == ("rows-rotated" if rotate else "rows-shifted")
    y = kernel(x)
    assert np.array_equal(kernel.lookup(kernel.table(x)), y)
    assert_close(y, qconv_reference(x, layer, params), kernel.fused.schedule)


def test_grids_beyond_five_taps_keep_shifted_loads(backend) -> None:  # type: ignore[no-untyped-def]
    """A 7 x 7 tap grid (stride 1, too wide for the band path) is past simd.GRID_MAX: the default
    config runs the shifted row look-up there, and it still equals the stages bit for bit."""
    layer = Layer("c", "conv", out=4, kernel=7, pad=3, quant=Quant.parse("4:8"))
    params = conv_params(layer, 4)
    x = batch(1, (4, 9, 14))
    kernel = prepare_layer(backend, layer, params, (4, 9, 14))
    assert kernel.fused.schedule == "rows-shifted"
    y = kernel(x)
    assert np.array_equal(kernel.lookup(kernel.table(x)), y)
    assert_close(y, qconv_reference(x, layer, params), "7x7 grid")


def test_alexnet_convs_take_the_rotated_schedules() -> None:
    """With the default config, every synthetic AlexNet layer gets a numba kernel, conv1-2 the
    rotated phase grids and conv3-5 the rotated band path (the defaults' measured speed)."""
    import qcnn

    session = qcnn.compile(zoo.synthetic("alexnet"), "numba", threads=1)
    assert session.fallbacks == []
    schedules = {p.layer.name: p.kernel.fused.schedule for p in session.layers if p.layer.op == "qconv"}
    assert schedules == {"conv1": "rows-rotated", "conv2": "rows-rotated", "conv3": "band-rotated",
                         "conv4": "band-rotated", "conv5": "band-rotated"}


def test_float_conv_1x1_grouped_skips_im2col(backend) -> None:  # type: ignore[no-untyped-def]
    """The direct (no im2col) float path with groups (the suite's 1 x 1 case has one group)."""
    layer = Layer("c", "conv", out=4, kernel=1, groups=2)
    params = conv_params(layer, 8)
    x = batch(3, (8, 7, 7))
    y = prepare_layer(backend, layer, params, (8, 7, 7))(x)
    assert_close(y, ref.conv(x, params["weight"], params["bias"], 1, 0, 2), "1x1 grouped conv")


# (F shape, out, D:K, N): K <= 16 one register, 16 < K <= 32 two (padded to 32), K > 32 scalar
QFC_CASES = [((4096,), 300, "4:32", 1), ((5, 3, 3), 70, "4:32", 3), ((50,), 17, "1:16", 1),
             ((37,), 33, "3:2", 3), ((64,), 20, "8:256", 1), ((2, 5, 3), 260, "7:33", 3), ((9,), 5, "16:20", 1)]


@pytest.mark.parametrize("case", QFC_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-n{c[3]}")
def test_qfc_lookups_agree(backend, case) -> None:  # type: ignore[no-untyped-def]
    """The table's layout ([N, S, K padded to a register]) holds the reference table; the portable
    look-up gives the packed-code permute one's sums bit for bit; both the reference values."""
    from qcnn_numba import kernels_qfc as kf

    shape, o, quant, n = case
    q = Quant.parse(quant)
    params = qfc_params(q, int(np.prod(shape)), o)
    x = batch(n, shape)
    kernel = prepare_layer(backend, Layer("f", "fc", out=o, quant=q), params, shape)
    assert isinstance(kernel, StagedKernel)
    y = kernel(x)
    assert y.shape == (n, o)
    assert_close(y, ref.qfc(x, params["codebook"], params["codes"], params["bias"]), "qfc")
    table = kernel.table(x)
    assert_close(table[:, :, :q.K], ref.qfc_table(x, params["codebook"]), "qfc table")
    y2 = np.empty_like(y)
    kf.qfc_lookup_scalar(table, kf.block_codes(params["codes"]), params["bias"], y2)
    assert np.array_equal(y2, y)


# (C, H, W, kernel, stride, pad, N): ceil rounding and windows clipped at the far edge, compared
# exactly (a max selects, it does not round; the suite compares within RTOL). Two geometries were
# dropped: 2x10x7 k2 s2 p1 and 3x3 k3 s3 p2 put their last window in the padding, which the spec's
# output_shape rejects, so no such layer can reach a backend.
POOL_CASES = [(3, 55, 55, 3, 2, 0, 1), (2, 109, 20, 3, 3, 0, 3), (4, 8, 9, 3, 2, 1, 1), (1, 6, 6, 4, 3, 2, 1),
              (2, 5, 11, 1, 1, 0, 1)]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(str(v) for v in c))
def test_pool_is_exact(backend, case) -> None:  # type: ignore[no-untyped-def]
    c, h, w, k, st, pad, n = case
    x = batch(n, (c, h, w)) - 3.0  # mostly negative: padding must never win
    y = prepare_layer(backend, Layer("p", "pool", kernel=k, stride=st, pad=pad), {}, (c, h, w))(x)
    np.testing.assert_array_equal(y, ref.max_pool(x, k, st, pad))


@pytest.mark.parametrize("size,alpha,beta,k", [(7, 1e-3, 1.0, 1.5), (5, 1e-2, 0.6, 1.0)])
def test_lrn_other_powers(backend, size, alpha, beta, k) -> None:  # type: ignore[no-untyped-def]
    """The portable LRN's beta = 1 and general-power branches (the suite's cases take beta 0.75,
    the AVX-512 path, and 0.5)."""
    x = batch(2, (9, 7, 5), scale=30.0)
    y = prepare_layer(backend, Layer("n", "lrn", size=size, alpha=alpha, beta=beta, k=k), {}, (9, 7, 5))(x)
    assert_close(y, ref.lrn(x, size, alpha, beta, k), f"lrn beta={beta}")


def test_dropout_copies_and_softmax_takes_large_logits(backend) -> None:  # type: ignore[no-untyped-def]
    x = batch(3, (4, 5, 6))
    drop = prepare_layer(backend, Layer("d", "dropout", ratio=0.5), {}, (4, 5, 6))
    y = drop(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(y, x)
    logits = batch(3, (1000,), scale=40.0)  # large logits: softmax must subtract the max
    sm = prepare_layer(backend, Layer("s", "softmax"), {}, (1000,))(logits)
    assert np.isfinite(sm).all()
    assert_close(sm, ref.softmax(logits), "softmax of large logits")


@pytest.mark.skipif("numba" not in sys.modules or __import__("numba").config.NUMBA_NUM_THREADS < 2,
                    reason="needs 2 numba threads")
def test_one_and_two_threads_give_identical_results(backend) -> None:  # type: ignore[no-untyped-def]
    """Work is split over outputs only, never inside a sum: 1 and 2 threads agree bit for bit."""
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
                params = qfc_params(layer.quant, int(np.prod(shape)), layer.out)
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


def test_lookup_rejects_a_foreign_table(backend) -> None:  # type: ignore[no-untyped-def]
    """``lookup`` takes only what this layer's ``table`` built (the numba look-ups index without
    bounds checks); the kernels' input x is the runtime's to check (``check_bad_input_is_clear``)."""
    layer = Layer("c", "conv", out=4, kernel=3, quant=Quant(2, 8))
    kernel = prepare_layer(backend, layer, conv_params(layer, 4), (4, 6, 6))
    with pytest.raises(QcnnError, match="layer c: look-up needs the table"):
        kernel.lookup(np.zeros(10, np.float32))
    with pytest.raises(QcnnError, match="layer c: look-up needs the table"):
        kernel.lookup([0.0] * 10)
    qfc = prepare_layer(backend, Layer("f", "fc", out=3, quant=Quant(2, 8)),
                        {"codebook": np.ones((3, 8, 2), np.float32), "codes": np.zeros((3, 3), np.uint8),
                         "bias": np.zeros(3, np.float32)}, (6,))
    with pytest.raises(QcnnError, match="layer f: look-up needs the table"):
        qfc.lookup(np.zeros((1, 3, 7), np.float32))


def test_config_fields_and_defaults() -> None:
    from qcnn_numba.backend import NumbaBackend
    from qcnn_numba.config import NumbaConfig

    assert NumbaConfig() == NumbaConfig(band_rotate=True, grid_rotate=True, band_rows=16)
    assert NumbaBackend().config == NumbaConfig()
    base = NumbaConfig(band_rows=4)
    assert NumbaBackend(config=base, grid_rotate=False).config == NumbaConfig(band_rows=4, grid_rotate=False)
    assert base.band_rows == 4 and base.grid_rotate  # the given config is not changed
    with pytest.raises(QcnnError, match="^unknown numba option.s. band_rotat; valid fields: band_rotate, "
                                        "grid_rotate, band_rows$"):
        NumbaBackend(band_rotat=False)
    with pytest.raises(QcnnError, match="band_rows must be an int >= 1"):
        NumbaConfig(band_rows=0)
    with pytest.raises(QcnnError, match="band_rotate must be True or False"):
        NumbaConfig(band_rotate="no")  # type: ignore[arg-type]


def test_load_passes_options_and_records_the_wait_policy() -> None:
    import os

    from qcnn_numba import plugin

    impl = plugin.load(band_rotate=False)
    assert impl.config.band_rotate is False and impl.config.grid_rotate is True
    assert impl.info()["omp_wait_policy"] == os.environ["OMP_WAIT_POLICY"]  # what load() set (or found)
    with pytest.raises(QcnnError, match="valid fields"):
        plugin.load(nope=1)


def test_registered_and_info(backend) -> None:  # type: ignore[no-untyped-def]
    import numba

    spec = backend_specs()["numba"]
    dist = next(ep.dist for ep in importlib.metadata.entry_points(group="qcnn.backends") if ep.name == "numba")
    assert spec.plugin == "numba" and spec.version == dist.version
    info = backend.info()
    assert info["numba"] == numba.__version__
    assert info["threads"] == numba.get_num_threads()
    assert {"llvm", "simd", "threading_layer", "cpu", "omp_wait_policy"} <= set(info)


def test_missing_numba_is_reported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qcnn_numba import plugin

    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    with pytest.raises(ImportError, match="numba is not installed: pip install numba"):
        plugin.load()
