"""The cffi backend (C kernels + OpenBLAS) against the reference kernels, op by op.

Random shapes cover groups 1-4, stride 1-4, padding 0-3, kernels 1-11, D not dividing C,
K from 2 to 256 (the AVX-512 vpermps/vpermi2ps/gather paths of the quantized fc), batch 1
and 3 and non-square inputs; then the whole synthetic AlexNet layer by layer, thread-count
independence, and the argument checks that keep bad input away from the C code.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn import model as zoo
from qcnn.model import Layer, Quant, output_shape
from qcnn.plugin import StagedKernel
from qcnn.plugin import reference_kernel
from qcnn.testing import prepare_layer

RTOL = 1e-4


@pytest.fixture(scope="module")
def backend():
    from qcnn.plugin import load_backend

    try:
        loaded = load_backend("cffi")
    except QcnnError as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the cffi backend must build in CI: {err}", pytrace=False)
        pytest.skip(str(err))
    yield loaded.impl
    loaded.impl.set_threads(qcnn.plugin.get_threads() or 1)


def backend_lib():  # type: ignore[no-untyped-def]
    from qcnn_cffi._ext import lib

    return lib


def rel_err(y: np.ndarray, r: np.ndarray) -> float:
    scale = float(np.abs(r).max())
    return float(np.abs(y.astype(np.float64) - r).max()) / (scale if scale > 0 else 1.0)


def make_params(layer: Layer, in_shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random tensors of the shapes qcnn.model expects for ``layer``."""
    o = layer.out
    if layer.type == "conv":
        cg = in_shape[0] // layer.groups
        if layer.quant is None:
            w = rng.standard_normal((o, cg, layer.kernel, layer.kernel)).astype(np.float32)
            return {"weight": w, "bias": rng.standard_normal(o).astype(np.float32)}
        q = layer.quant
        s = q.subspaces(cg)
        return {"codebook": rng.standard_normal((s, q.K, q.D)).astype(np.float32),
                "codes": rng.integers(0, q.K, (o, layer.kernel, layer.kernel, s), dtype=np.uint8),
                "bias": rng.standard_normal(o).astype(np.float32)}
    if layer.type == "fc":
        f = int(np.prod(in_shape))
        if layer.quant is None:
            return {"weight": rng.standard_normal((o, f)).astype(np.float32),
                    "bias": rng.standard_normal(o).astype(np.float32)}
        q = layer.quant
        s = q.subspaces(f)
        return {"codebook": rng.standard_normal((s, q.K, q.D)).astype(np.float32),
                "codes": rng.integers(0, q.K, (o, s), dtype=np.uint8),
                "bias": rng.standard_normal(o).astype(np.float32)}
    return {}


def run_case(backend, layer: Layer, in_shape: tuple[int, ...], batch: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = make_params(layer, in_shape, rng)
    x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    kernel = prepare_layer(backend, layer, params, in_shape)
    assert kernel is not None, "the cffi backend implements every op"
    if layer.quant is not None:
        assert isinstance(kernel, StagedKernel)
    y = kernel(x)
    r = reference_kernel(layer, params)(x)
    assert y.dtype == np.float32 and y.shape == r.shape
    if layer.type != "softmax":  # softmax flattens, as the reference does
        assert y.shape == (batch, *output_shape(layer, in_shape))
    assert np.isfinite(y).all()
    assert rel_err(y, r) <= RTOL, f"{layer}: relative error {rel_err(y, r):.3g}"
    if layer.quant is not None:  # the stages too (a quantized conv's call fuses them)
        ys = kernel.lookup(kernel.table(x))
        assert rel_err(ys, r) <= RTOL, f"{layer} staged: relative error {rel_err(ys, r):.3g}"


def conv_cases() -> list[tuple[Layer, tuple[int, int, int], int, int]]:
    """Seeded random conv geometries, float and quantized, plus fixed corner cases."""
    rng = np.random.default_rng(1234)
    cases = []
    for i in range(28):
        g = int(rng.integers(1, 5))
        k = int(rng.integers(1, 12))
        st = int(rng.integers(1, 5))
        pad = int(rng.integers(0, 4))
        cg = int(rng.integers(1, 11))
        og = int(rng.integers(1, 11))
        h = max(k - 2 * pad, 1) + int(rng.integers(0, 14))
        w = max(k - 2 * pad, 1) + int(rng.integers(0, 19))
        quant = None if i % 4 == 3 else Quant(int(rng.integers(1, 9)), int(rng.choice([2, 7, 16, 33, 128, 256])))
        layer = Layer(f"conv{i}", "conv", out=g * og, kernel=k, stride=st, pad=pad, groups=g, quant=quant)
        cases.append((layer, (g * cg, h, w), 1 if i % 2 else 3, i))
    fixed = [
        # AlexNet conv1-like: 3 channels, D = 8 > Cg, stride 4, 11x11, wide rows (two column segments)
        (Layer("c1", "conv", out=10, kernel=11, stride=4, quant=Quant(8, 128)), (3, 63, 230), 1),
        # conv2-like: groups, pad 2, D dividing Cg, output channels not a multiple of the tile
        (Layer("c2", "conv", out=26, kernel=5, pad=2, groups=2, quant=Quant(8, 128)), (16, 13, 11), 3),
        (Layer("c3", "conv", out=5, kernel=3, pad=1, quant=Quant(4, 16)), (11, 7, 9), 3),
        (Layer("c4", "conv", out=3, kernel=1, quant=Quant(3, 5)), (7, 4, 6), 1),  # 1x1, no pad: direct table
        (Layer("c5", "conv", out=4, kernel=2, stride=3, pad=3, groups=4, quant=Quant(1, 2)), (4, 5, 3), 3),
        (Layer("f1", "conv", out=6, kernel=3, stride=2, pad=1, groups=3), (9, 10, 7), 3),
        (Layer("c6", "conv", out=4, kernel=3, pad=1, quant=Quant(11, 16)), (20, 6, 7), 1),  # D > 8
        (Layer("c7", "conv", out=3, kernel=5, stride=4, quant=Quant(12, 8)), (12, 9, 140), 3),  # long rows, D > 8
        # rows wider than a vector (whole-vector rows: the rotated fused tiles), strides 1-3
        (Layer("w1", "conv", out=8, kernel=3, pad=1, groups=2, quant=Quant(4, 32)), (6, 7, 40), 1),
        (Layer("w2", "conv", out=7, kernel=5, stride=2, pad=2, quant=Quant(3, 16)), (5, 11, 70), 3),
        (Layer("w3", "conv", out=5, kernel=7, stride=3, pad=1, quant=Quant(2, 7)), (4, 12, 61), 1),
    ]
    cases += [(layer, shape, n, 100 + j) for j, (layer, shape, n) in enumerate(fixed)]
    return cases


@pytest.mark.parametrize("layer,in_shape,batch,seed", conv_cases(),
                         ids=lambda v: v.name if isinstance(v, Layer) else None)
def test_conv_matches_reference(backend, layer, in_shape, batch, seed):
    run_case(backend, layer, in_shape, batch, seed)


@pytest.mark.parametrize("order,row_block,simd,acc_bytes", [("table", 1, 1, 1 << 30), ("table", 3, 0, 1 << 30),
                                                           ("table", 1, 1, 1024), ("output", 1, 1, 1 << 30),
                                                           ("output", 4, 0, 1 << 30)])
def test_qconv_schedules_agree(backend, monkeypatch, order, row_block, simd, acc_bytes):
    """Every look-up schedule (table- or output-row-major, row blocking, channel-tile chunks) and
    table builder (SGEMM or SIMD) computes the same sums."""
    from qcnn_cffi import qconv

    monkeypatch.setattr(qconv, "LOOKUP_ORDER", order)
    monkeypatch.setattr(qconv, "ROW_BLOCK", row_block)
    monkeypatch.setattr(qconv, "TABLE_SIMD", simd)
    monkeypatch.setattr(qconv, "ACC_BUDGET", acc_bytes)
    for layer, in_shape, batch, seed in conv_cases():
        if layer.quant is not None:
            run_case(backend, layer, in_shape, batch, seed)


@pytest.mark.parametrize("rotate", [0, 1])
@pytest.mark.parametrize("threads", [1, 2])
def test_qconv_fused_equals_staged(backend, monkeypatch, threads, rotate):
    """The row-fused call (table rows built just before their look-ups) gives bit for bit the sums
    of the SIMD table + table-row-major look-up, on every random geometry (strides 1-4, pads 0-3,
    groups, D not dividing C, batch 1 and 3), with 1 and 2 threads; with rotated tiles (another
    summation order) the same within float rounding. (The band path of narrow stride-1 layers
    sums in another order; it is checked against the reference in run_case.)"""
    from qcnn_cffi import qconv

    monkeypatch.setattr(qconv, "FUSED_ROTATE", rotate)
    monkeypatch.setattr(qconv, "FUSED_ROT_MIN_TAPS", 0)  # rotate every geometry that allows it
    monkeypatch.setattr(qconv, "BAND", 0)
    monkeypatch.setattr(qconv, "LOOKUP_ORDER", "table")
    monkeypatch.setattr(qconv, "ROW_BLOCK", 1)
    monkeypatch.setattr(qconv, "TABLE_SIMD", 1)
    before = backend.info()["threads"]
    backend.set_threads(threads)
    try:
        n = rotated = 0
        for layer, in_shape, batch, seed in conv_cases():
            if layer.quant is None:
                continue
            rng = np.random.default_rng(seed)
            params = make_params(layer, in_shape, rng)
            x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
            kernel = prepare_layer(backend, layer, params, in_shape)
            assert isinstance(kernel, qconv.FusedQConv) and kernel.fused is not None
            rotated += kernel.fused.rotated
            if kernel.fused.rotated:
                assert rel_err(kernel(x), kernel.lookup(kernel.table(x))) <= 1e-6, layer.name
            else:
                np.testing.assert_array_equal(kernel(x), kernel.lookup(kernel.table(x)), err_msg=layer.name)
            n += 1
        assert n >= 20 and (rotated >= 5 if rotate and backend_lib().qc_conv_fused_rot_r() else rotated == 0)
    finally:
        backend.set_threads(before)


BAND_CASES = [
    # (layer, in_shape): narrow stride-1 layers (Wo <= 16) take the band path
    (Layer("b1", "conv", out=20, kernel=3, pad=1, groups=2, quant=Quant(8, 128)), (24, 13, 13)),  # conv4-like
    (Layer("b2", "conv", out=7, kernel=5, pad=3, quant=Quant(3, 33)), (10, 9, 11)),  # D not dividing C, Wq > 16
    (Layer("b3", "conv", out=5, kernel=2, quant=Quant(11, 4)), (13, 6, 17)),  # no pad: direct; D > 8
    (Layer("b4", "conv", out=9, kernel=1, groups=3, quant=Quant(2, 256)), (6, 5, 3)),  # 1x1, K = 256: 1-row bands
    (Layer("b5", "conv", out=7, kernel=5, pad=2, quant=Quant(4, 16)), (5, 7, 9)),  # 5 column shifts, Wq 13
]


@pytest.mark.parametrize("rotate", [1, 0])
@pytest.mark.parametrize("layer,in_shape", BAND_CASES, ids=lambda v: v.name if isinstance(v, Layer) else None)
def test_qconv_band_path(backend, monkeypatch, layer, in_shape, rotate):
    """The band path (rotated tiles where rows fit one vector, or shifted loads) matches the
    reference and the staged kernel, batch 1 and 3."""
    from qcnn_cffi import qconv

    monkeypatch.setattr(qconv, "BAND_ROTATE", rotate)
    for batch in (1, 3):
        run_case(backend, layer, in_shape, batch, 11)
    kernel = prepare_layer(backend, layer, make_params(layer, in_shape, np.random.default_rng(2)), in_shape)
    assert isinstance(kernel, qconv.FusedQConv) and kernel.fused is not None
    vl = int(backend_lib().qc_conv_chunk())
    if output_shape(layer, in_shape)[2] <= vl:  # rows of one vector (AVX-512 here; AVX2 has 8-float rows)
        assert kernel.fused.__name__ == "band"
        fits = in_shape[2] + 2 * layer.pad <= vl  # padded row in one vector
        assert kernel.fused.rotated == bool(rotate and fits and backend_lib().qc_conv_band_rot_r() > 0)
    x = np.random.default_rng(4).standard_normal((2, *in_shape)).astype(np.float32)
    assert rel_err(kernel(x), kernel.lookup(kernel.table(x))) <= RTOL


@pytest.mark.parametrize("band", [0, 1])
def test_qconv_fused_threads_identical(backend, monkeypatch, band):
    """1 and 2 threads give identical fused results (row-fused: row bands / samples; band path:
    (sample, band) jobs), batch 1 and 3."""
    from qcnn_cffi import qconv

    monkeypatch.setattr(qconv, "BAND", band)
    cases = [(Layer("q", "conv", out=14, kernel=5, stride=2, pad=2, groups=2, quant=Quant(3, 16)), (10, 23, 19)),
             (Layer("q1", "conv", out=14, kernel=3, pad=1, groups=2, quant=Quant(4, 32)), (10, 14, 12))]
    rng = np.random.default_rng(3)
    before = backend.info()["threads"]
    try:
        for layer, in_shape in cases:
            params = make_params(layer, in_shape, rng)
            kernel = prepare_layer(backend, layer, params, in_shape)
            for batch in (1, 3):
                x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
                backend.set_threads(1)
                one = kernel(x)
                backend.set_threads(2)
                two = kernel(x)
                np.testing.assert_array_equal(one, two)
                assert rel_err(one, reference_kernel(layer, params)(x)) <= RTOL
    finally:
        backend.set_threads(before)


FC_CASES = [
    # (in_shape, out, quant): K around the 16 / 32 register boundaries, D not dividing F, odd O
    ((37,), 5, None),
    ((4, 3, 3), 70, None),
    ((37,), 5, Quant(4, 2)),
    ((5, 3, 2), 130, Quant(4, 16)),
    ((29,), 64, Quant(3, 17)),
    ((2, 2, 8), 65, Quant(4, 32)),
    ((50,), 200, Quant(7, 33)),
    ((64,), 3, Quant(1, 256)),
    ((9, 1, 1), 129, Quant(9, 128)),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("in_shape,out,quant", FC_CASES)
def test_fc_matches_reference(backend, in_shape, out, quant, batch):
    run_case(backend, Layer("fc", "fc", out=out, quant=quant), in_shape, batch, out)


OTHER_CASES = [
    (Layer("p1", "pool", kernel=3, stride=2), (4, 13, 13)),
    (Layer("p2", "pool", kernel=3, stride=3), (2, 10, 11)),  # ceil rounding: last window clipped
    (Layer("p3", "pool", kernel=2, stride=2, pad=1), (3, 8, 6)),
    (Layer("p4", "pool", kernel=5, stride=1, pad=3), (2, 4, 9)),  # padded windows, clipped
    (Layer("r", "relu"), (5, 6, 7)),
    (Layer("r1", "relu"), (17,)),
    (Layer("d", "dropout", ratio=0.5), (3, 4, 5)),
    (Layer("n1", "lrn", size=5, alpha=1e-4, beta=0.75, k=1.0), (7, 6, 5)),
    (Layer("n2", "lrn", size=3, alpha=0.3, beta=0.5, k=2.0), (2, 33, 1)),  # HW not a vector multiple
    (Layer("n3", "lrn", size=7, alpha=1.0, beta=1.5, k=0.5), (9, 4, 4)),
    (Layer("n4", "lrn", size=1, alpha=0.1, beta=0.75, k=1.0), (3, 5, 5)),
    (Layer("s", "softmax"), (1000,)),
    (Layer("s2", "softmax"), (3, 2, 2)),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layer,in_shape", OTHER_CASES, ids=lambda v: v.name if isinstance(v, Layer) else None)
def test_other_ops_match_reference(backend, layer, in_shape, batch):
    run_case(backend, layer, in_shape, batch, 7)


def test_pool_propagates_nan(backend):
    layer = Layer("p", "pool", kernel=2, stride=2)
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    y = prepare_layer(backend, layer, {}, (1, 4, 4))(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 0, 1:]).all()


@pytest.fixture(scope="module")
def alexnet_inputs():
    rng = np.random.default_rng(5)
    return rng.uniform(-120, 140, (1, 3, 227, 227)).astype(np.float32)


@pytest.mark.parametrize("quantized", [True, False], ids=["quantized", "float"])
def test_alexnet_every_layer(backend, alexnet_inputs, quantized):
    model = zoo.synthetic("alexnet", quantized=quantized)
    ours = qcnn.compile(model, "cffi")
    assert ours.fallbacks == []
    expected = qcnn.compile(model, "reference").run(alexnet_inputs)
    x = alexnet_inputs
    for p in ours.layers:  # each layer on the reference's input, so errors cannot compound
        y = p.kernel(x)
        r = expected[p.layer.name]
        assert y.shape == r.shape, p.layer.name
        assert rel_err(y, r) <= RTOL, f"{p.layer.name}: relative error {rel_err(y, r):.3g}"
        x = r


def test_threads_do_not_change_results(backend, alexnet_inputs):
    session = qcnn.compile(zoo.synthetic("alexnet"), "cffi")
    x = np.concatenate([alexnet_inputs, alexnet_inputs[:, :, ::-1].copy()])
    backend.set_threads(1)
    one = session.run(x)
    backend.set_threads(2)
    assert backend.info()["threads"] == 2
    two = session.run(x)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)


def test_info(backend):
    info = backend.info()
    assert info["simd"] in ("avx512", "avx2", "scalar")
    assert info["blas"] and info["blas_version"]
    assert info["threads"] >= 1


# ---- argument checks: nothing malformed reaches the C code ----

QCONV = Layer("qc", "conv", out=4, kernel=3, pad=1, quant=Quant(2, 8))
QFC = Layer("qf", "fc", out=5, quant=Quant(2, 16))


def _prepared(backend, layer, in_shape):
    params = make_params(layer, in_shape, np.random.default_rng(0))
    return prepare_layer(backend, layer, params, in_shape), params


@pytest.mark.parametrize("layer,in_shape", [(QCONV, (3, 5, 5)), (QFC, (6,)), (Layer("r", "relu"), (3, 5, 5)),
                                            (Layer("p", "pool", kernel=2, stride=2), (3, 5, 5)),
                                            (Layer("c", "conv", out=2, kernel=3), (3, 5, 5)),
                                            (Layer("f", "fc", out=3), (2, 2, 2)), (Layer("n", "lrn"), (4, 3, 3)),
                                            (Layer("d", "dropout"), (5,)), (Layer("s", "softmax"), (7,))],
                         ids=["qconv", "qfc", "relu", "pool", "conv", "fc", "lrn", "dropout", "softmax"])
@pytest.mark.parametrize("bad", ["float64", "noncontig", "shape", "empty", "unbatched", "list"])
def test_bad_inputs_rejected(backend, layer, in_shape, bad):
    kernel, _ = _prepared(backend, layer, in_shape)
    x = np.ones((2, *in_shape), np.float32)
    bad_x = {"float64": x.astype(np.float64), "noncontig": np.ones((4, *in_shape), np.float32)[::2],
             "shape": np.ones((2, *in_shape[:-1], in_shape[-1] + 1), np.float32),
             "empty": np.ones((0, *in_shape), np.float32), "unbatched": x[0], "list": x.tolist()}[bad]
    with pytest.raises(QcnnError) as err:
        kernel(bad_x)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change", ["codes_range", "codes_dtype", "codebook_shape", "bias_missing", "bias_f64"])
@pytest.mark.parametrize("layer,in_shape", [(QCONV, (3, 5, 5)), (QFC, (6,))], ids=["qconv", "qfc"])
def test_bad_params_rejected(backend, layer, in_shape, change):
    params = make_params(layer, in_shape, np.random.default_rng(0))
    if change == "codes_range":
        params["codes"] = params["codes"].copy()
        params["codes"].flat[-1] = layer.quant.K
    elif change == "codes_dtype":
        params["codes"] = params["codes"].astype(np.int32)
    elif change == "codebook_shape":
        params["codebook"] = params["codebook"][:, :-1]
    elif change == "bias_missing":
        del params["bias"]
    else:
        params["bias"] = params["bias"].astype(np.float64)
    with pytest.raises(QcnnError) as err:
        prepare_layer(backend, layer, params, in_shape)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("layer,in_shape", [
    (Layer("c", "conv", out=4, kernel=3, groups=2), (3, 5, 5)),   # channels do not split into groups
    (Layer("c", "conv", out=4, kernel=7), (2, 5, 5)),             # kernel larger than the padded input
    (Layer("c", "conv", out=4, kernel=3), (8,)),                  # conv on a flat input
    (Layer("p", "pool", kernel=9, stride=1), (2, 5, 5)),
    (Layer("n", "lrn", size=4), (6, 3, 3)),                       # even LRN window
])
def test_bad_geometry_rejected(backend, layer, in_shape):
    with pytest.raises(QcnnError):
        prepare_layer(backend, layer, make_params(layer, in_shape, np.random.default_rng(0)) if layer.type == "conv"
                        and len(in_shape) == 3 and in_shape[0] % layer.groups == 0 else {}, in_shape)


@pytest.mark.parametrize("layer,in_shape", [(QCONV, (3, 5, 5)), (QFC, (6,))], ids=["qconv", "qfc"])
def test_lookup_rejects_foreign_tables(backend, layer, in_shape):
    kernel, _ = _prepared(backend, layer, in_shape)
    other, _ = _prepared(backend, layer.__class__(**{**layer.__dict__, "out": 9}), in_shape)
    x = np.ones((1, *in_shape), np.float32)
    table = kernel.table(x)
    assert rel_err(kernel.lookup(table), kernel(x)) <= RTOL  # a narrow qconv's call sums in another order
    with pytest.raises(QcnnError):
        other.lookup(table) if layer.type == "conv" else kernel.lookup(table[:, :-1].copy())
    with pytest.raises(QcnnError):
        kernel.lookup(np.zeros(3, np.float32))
    if layer.type == "conv":
        table.data = table.data[:-1].copy()
        with pytest.raises(QcnnError):
            kernel.lookup(table)


def test_set_threads_validates(backend):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(QcnnError):
            backend.set_threads(bad)


@pytest.mark.parametrize("shifted", [False, True])
def test_roofline_probe_sums_the_table_entries_it_reads(backend, shifted) -> None:  # type: ignore[no-untyped-def]
    """The look-up probe of ``python -m qcnn_cffi.roofline`` really adds the entries its offsets name."""
    from qcnn_cffi import roofline

    table, offs, rowstride = roofline.probe_inputs(roofline.TABLES["L1"], shifted, seed=3)
    acc = roofline.probe(table, offs, rowstride, reps=2)
    vl = acc.shape[-1]
    lanes = np.arange(vl)
    rows = np.arange(roofline.ROWS)[:, None] * rowstride + lanes  # [ROWS, VL]
    want = table[offs[:, :, :, None, None] + rows].sum(axis=1, dtype=np.float64) * 2  # [tiles, RB, ROWS, VL]
    np.testing.assert_allclose(acc, want, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="past the table"):
        roofline.probe(table[:100].copy(), offs, rowstride, reps=1)


def test_code_stride_avoids_4k_aliasing() -> None:
    from qcnn_cffi.qconv import code_stride

    assert code_stride(16 * 64, 16) == 16 * 64 + 16  # AlexNet conv1: 4 KB per code otherwise
    assert code_stride(32, 16) == 32 and code_stride(57, 1) == 57
