"""What is internal to the cffi backend: its schedules, its config, its promises beyond the contract.

Agreement with the reference on the public cases (every op, the AlexNet layers) is the
conformance suite's (``qcnn.testing``, run by ``test_conformance.py``). Here: the quantized conv's
schedules (row-fused with shifted or rotated tiles, band with rotated or shifted tiles, the
stages) under each ``CffiConfig`` on geometries aimed at their code paths (groups 1-4, strides
1-4, pads 0-3, kernels 1-11, D not dividing C or above 8, long and wide rows); the row-fused call
against the stages bit for bit; the quantized fc's code packings (K around 16 and 32, several
blocks); 1 vs 2 threads bit for bit (the suite asks only within RTOL); which schedule AlexNet's
convs take by default; the table buffer; the argument checks that keep bad input away from the C
code; the roofline probe; ``CffiConfig`` and load options.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn import model as zoo
from qcnn.model import Layer, Quant, output_shape
from qcnn.plugin import StagedKernel, reference_kernel
from qcnn.testing import assert_close, prepare_layer, relative_error

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


def cffi_backend(backend, **fields):  # type: ignore[no-untyped-def]
    """A backend object of its own with these CffiConfig fields (``backend``: it is built)."""
    from qcnn_cffi.backend import CffiBackend

    return CffiBackend(**fields)


def backend_lib():  # type: ignore[no-untyped-def]
    from qcnn_cffi._ext import lib

    return lib


def make_params(layer: Layer, in_shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random tensors of the shapes qcnn.model expects for a quantized conv or fc ``layer``."""
    o, q = layer.out, layer.quant
    assert q is not None
    if layer.type == "conv":
        s = q.subspaces(in_shape[0] // layer.groups)
        codes = rng.integers(0, q.K, (o, layer.kernel, layer.kernel, s), dtype=np.uint8)
    else:
        s = q.subspaces(int(np.prod(in_shape)))
        codes = rng.integers(0, q.K, (o, s), dtype=np.uint8)
    return {"codebook": rng.standard_normal((s, q.K, q.D)).astype(np.float32), "codes": codes,
            "bias": rng.standard_normal(o).astype(np.float32)}


def run_case(backend, layer: Layer, in_shape: tuple[int, ...], batch: int, seed: int) -> StagedKernel:
    """The call and the stages of a quantized layer against the reference."""
    rng = np.random.default_rng(seed)
    params = make_params(layer, in_shape, rng)
    x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    kernel = prepare_layer(backend, layer, params, in_shape)
    assert isinstance(kernel, StagedKernel)
    r = reference_kernel(layer, params)(x)
    assert_close(kernel(x), r, f"{layer}")
    assert_close(kernel.lookup(kernel.table(x)), r, f"{layer} staged")
    return kernel


def qconv_cases() -> list[tuple[Layer, tuple[int, int, int], int, int]]:
    """Seeded random quantized conv geometries, plus fixed cases aimed at code paths."""
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
        quant = Quant(int(rng.integers(1, 9)), int(rng.choice([2, 7, 16, 33, 128, 256])))
        if i % 4 != 3:  # (every fourth draw was a float conv: the conformance suite's)
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
        (Layer("c6", "conv", out=4, kernel=3, pad=1, quant=Quant(11, 16)), (20, 6, 7), 1),  # D > 8
        (Layer("c7", "conv", out=3, kernel=5, stride=4, quant=Quant(12, 8)), (12, 9, 140), 3),  # long rows, D > 8
        # rows wider than a vector (whole-vector rows: the rotated row-fused tiles), strides 1-3
        (Layer("w1", "conv", out=8, kernel=3, pad=1, groups=2, quant=Quant(4, 32)), (6, 7, 40), 1),
        (Layer("w2", "conv", out=7, kernel=5, stride=2, pad=2, quant=Quant(3, 16)), (5, 11, 70), 3),
        (Layer("w3", "conv", out=5, kernel=7, stride=3, pad=1, quant=Quant(2, 7)), (4, 12, 61), 1),
    ]
    cases += [(layer, shape, n, 100 + j) for j, (layer, shape, n) in enumerate(fixed)]
    return cases


QCONV_CASES = qconv_cases()

BAND_CASES = [
    # (layer, in_shape): narrow stride-1 layers (Wo <= 16) take the band path
    (Layer("b1", "conv", out=20, kernel=3, pad=1, groups=2, quant=Quant(8, 128)), (24, 13, 13)),  # conv4-like
    (Layer("b2", "conv", out=7, kernel=5, pad=3, quant=Quant(3, 33)), (10, 9, 11)),  # D not dividing C, Wq > 16
    (Layer("b3", "conv", out=5, kernel=2, quant=Quant(11, 4)), (13, 6, 17)),  # no pad: direct; D > 8
    (Layer("b4", "conv", out=9, kernel=1, groups=3, quant=Quant(2, 256)), (6, 5, 3)),  # 1x1, K = 256: 1-row bands
    (Layer("b5", "conv", out=7, kernel=5, pad=2, quant=Quant(4, 16)), (5, 7, 9)),  # 5 column shifts, Wq 13
]


@pytest.mark.parametrize("fields", [{}, {"fused": False}, {"band": False}, {"fused_rotate": False},
                                    {"fused_rotate_min_taps": 0}, {"band_rotate": False}, {"pad_width": False},
                                    {"fused_acc_bytes": 1024, "fused_min_taps": 1}],
                         ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "defaults")
def test_qconv_schedules_match_reference(backend, fields):
    """Every schedule a config selects (row-fused with shifted or rotated tiles, in tile chunks;
    band; the staged call; unpadded rows) matches the reference, and so do the stages."""
    impl = cffi_backend(backend, **fields)
    for layer, in_shape, batch, seed in QCONV_CASES + [(lay, shape, 3, 11) for lay, shape in BAND_CASES]:
        kernel = run_case(impl, layer, in_shape, batch, seed)
        assert (kernel.fused is None) == (fields.get("fused") is False)


@pytest.mark.parametrize("rotate", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_qconv_fused_equals_staged(backend, threads, rotate):
    """The row-fused call (table rows built just before their look-ups) gives bit for bit the sums
    of the table + look-up stages, on every geometry (strides 1-4, pads 0-3, groups, D not dividing
    C, batch 1 and 3), with 1 and 2 threads; with rotated tiles (another summation order) the same
    within float rounding. (The band path sums in another order: see test_qconv_band_path.)"""
    impl = cffi_backend(backend, band=False, fused_rotate=rotate, fused_rotate_min_taps=0)
    before = backend.info()["threads"]
    impl.set_threads(threads)
    try:
        n = rotated = 0
        for layer, in_shape, batch, seed in QCONV_CASES:
            rng = np.random.default_rng(seed)
            params = make_params(layer, in_shape, rng)
            x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
            kernel = prepare_layer(impl, layer, params, in_shape)
            assert isinstance(kernel, StagedKernel) and kernel.fused.schedule == "rows"
            rotated += kernel.fused.rotated
            if kernel.fused.rotated:
                assert_close(kernel(x), kernel.lookup(kernel.table(x)), layer.name, rtol=1e-6)
            else:
                np.testing.assert_array_equal(kernel(x), kernel.lookup(kernel.table(x)), err_msg=layer.name)
            n += 1
        assert n >= 20 and (rotated >= 5 if rotate and backend_lib().qc_conv_fused_rot_r() else rotated == 0)
    finally:
        backend.set_threads(before)


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("layer,in_shape", BAND_CASES, ids=lambda v: v.name if isinstance(v, Layer) else None)
def test_qconv_band_path(backend, layer, in_shape, rotate):
    """The band path (rotated tiles where rows fit one vector, or shifted loads) matches the
    reference and the staged kernel, batch 1 and 3."""
    impl = cffi_backend(backend, band_rotate=rotate)
    for batch in (1, 3):
        run_case(impl, layer, in_shape, batch, 11)
    kernel = prepare_layer(impl, layer, make_params(layer, in_shape, np.random.default_rng(2)), in_shape)
    assert isinstance(kernel, StagedKernel) and kernel.fused is not None
    vl = int(backend_lib().qc_conv_chunk())
    if output_shape(layer, in_shape)[2] <= vl:  # rows of one vector (AVX-512 here; AVX2 has 8-float rows)
        assert kernel.fused.schedule == "band"
        fits = in_shape[2] + 2 * layer.pad <= vl  # padded row in one vector
        assert kernel.fused.rotated == bool(rotate and fits and backend_lib().qc_conv_band_rot_r() > 0)
    x = np.random.default_rng(4).standard_normal((2, *in_shape)).astype(np.float32)
    assert_close(kernel(x), kernel.lookup(kernel.table(x)), f"{layer.name} band vs stages")


@pytest.mark.parametrize("band", [False, True])
def test_qconv_fused_threads_identical(backend, band):
    """1 and 2 threads give identical fused results (row-fused: row bands / samples; band path:
    (sample, band) jobs), batch 1 and 3."""
    impl = cffi_backend(backend, band=band)
    cases = [(Layer("q", "conv", out=14, kernel=5, stride=2, pad=2, groups=2, quant=Quant(3, 16)), (10, 23, 19)),
             (Layer("q1", "conv", out=14, kernel=3, pad=1, groups=2, quant=Quant(4, 32)), (10, 14, 12))]
    rng = np.random.default_rng(3)
    before = backend.info()["threads"]
    try:
        for layer, in_shape in cases:
            params = make_params(layer, in_shape, rng)
            kernel = prepare_layer(impl, layer, params, in_shape)
            for batch in (1, 3):
                x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
                impl.set_threads(1)
                one = kernel(x)
                impl.set_threads(2)
                two = kernel(x)
                np.testing.assert_array_equal(one, two)
                assert_close(one, reference_kernel(layer, params)(x), layer.name)
    finally:
        backend.set_threads(before)


def test_alexnet_convs_take_their_default_schedules(backend):
    """conv1 row-fused with rotated tiles (~13 taps per shift group), conv2 row-fused with shifted
    loads (2 taps per group), conv3-5 on the band path with rotated tiles, where the build has
    them (AVX-512: rows of 13 columns fit one vector; AVX2 rows take the row-fused path)."""
    session = qcnn.compile(zoo.synthetic("alexnet"), "cffi")
    lib = backend_lib()
    fused = {p.layer.name: p.kernel.fused for p in session.layers if p.layer.op == "qconv"}
    assert fused["conv1"].schedule == "rows" and fused["conv1"].rotated == (lib.qc_conv_fused_rot_r() > 0)
    assert fused["conv2"].schedule == "rows" and not fused["conv2"].rotated
    narrow = int(lib.qc_conv_chunk()) >= 13
    for name in ("conv3", "conv4", "conv5"):
        assert fused[name].schedule == ("band" if narrow else "rows"), name
        if narrow:
            assert fused[name].rotated == (lib.qc_conv_band_rot_r() > 0), name


FC_CASES = [
    # (in_shape, out, quant): K around the 16 / 32 register and packing boundaries (4-bit codes for
    # K <= 16, 5-bit words for K <= 32 in blocks of 96 outputs on AVX-512), D not dividing F, odd O
    ((37,), 5, Quant(4, 2)),
    ((5, 3, 2), 130, Quant(4, 16)),
    ((29,), 64, Quant(3, 17)),
    ((2, 2, 8), 65, Quant(4, 32)),
    ((8, 2, 2), 200, Quant(2, 32)),
    ((50,), 200, Quant(7, 33)),
    ((64,), 3, Quant(1, 256)),
    ((9, 1, 1), 129, Quant(9, 128)),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("in_shape,out,quant", FC_CASES)
def test_qfc_code_packings(backend, in_shape, out, quant, batch):
    run_case(backend, Layer("fc", "fc", out=out, quant=quant), in_shape, batch, out)


def test_pool_propagates_nan(backend):
    layer = Layer("p", "pool", kernel=2, stride=2)
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    y = prepare_layer(backend, layer, {}, (1, 4, 4))(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 0, 1:]).all()


def test_threads_do_not_change_results(backend):
    """The whole synthetic AlexNet gives the same bits with 1 and 2 threads (every parallel loop
    splits outputs, never a sum)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-120, 140, (1, 3, 227, 227)).astype(np.float32)
    session = qcnn.compile(zoo.synthetic("alexnet"), "cffi")
    x = np.concatenate([x, x[:, :, ::-1].copy()])
    backend.set_threads(1)
    one = session.run(x)
    backend.set_threads(2)
    assert backend.info()["threads"] == 2
    two = session.run(x)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)


def test_table_buffer_is_reused_only_when_free(backend):
    """The table stage hands its cached buffer out again only when nobody holds the last table."""
    layer = Layer("qc", "conv", out=4, kernel=3, pad=1, quant=Quant(2, 8))
    kernel = prepare_layer(backend, layer, make_params(layer, (3, 6, 6), np.random.default_rng(0)), (3, 6, 6))
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    kept = kernel.table(x)
    before = kept.data.copy()
    other = kernel.table(x * 2)
    assert not np.shares_memory(kept.data, other.data) and np.array_equal(kept.data, before)
    address = other.data.ctypes.data
    del other
    again = kernel.table(x)
    assert again.data.ctypes.data == address
    np.testing.assert_array_equal(kernel.lookup(again), kernel.lookup(kept))


def test_info(backend):
    info = backend.info()
    assert info["simd"] in ("avx512", "avx2", "scalar")
    assert info["blas"] and info["blas_version"]
    assert info["threads"] >= 1


# ---- CffiConfig and load options ----

def test_config_fields_and_defaults(backend):
    from qcnn_cffi.backend import CffiBackend
    from qcnn_cffi.config import CffiConfig

    assert CffiConfig() == CffiConfig(fused=True, band=True, band_rotate=True, fused_rotate=True,
                                      fused_rotate_min_taps=6, fused_min_taps=10, fused_acc_bytes=16384,
                                      pad_width=True)
    assert CffiBackend().config == CffiConfig()
    base = CffiConfig(band=False)
    assert CffiBackend(config=base, pad_width=False).config == CffiConfig(band=False, pad_width=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.band = True  # type: ignore[misc]
    for bad in ({"band": 1}, {"fused_min_taps": -1}, {"fused_acc_bytes": True}):
        with pytest.raises(QcnnError):
            CffiConfig(**bad)  # type: ignore[arg-type]


def test_load_passes_options(backend):
    from qcnn_cffi import plugin

    impl = plugin.load(band=False)
    assert impl.config.band is False
    layer, in_shape = BAND_CASES[0]
    kernel = prepare_layer(impl, layer, make_params(layer, in_shape, np.random.default_rng(0)), in_shape)
    assert kernel.fused.schedule == "rows"
    with pytest.raises(QcnnError) as err:
        plugin.load(band=False, nope=1)
    assert "\n" not in str(err.value) and "nope" in str(err.value) and "fused_rotate" in str(err.value)


def test_compile_options_reach_the_kernels(backend):
    session = qcnn.compile(zoo.synthetic("alexnet"), "cffi", options={"fused": False})
    assert all(p.kernel.fused is None for p in session.layers if p.layer.op == "qconv")


# ---- argument checks: nothing malformed reaches the C code ----

QCONV = Layer("qc", "conv", out=4, kernel=3, pad=1, quant=Quant(2, 8))
QFC = Layer("qf", "fc", out=5, quant=Quant(2, 16))


def _prepared(backend, layer, in_shape):
    params = make_params(layer, in_shape, np.random.default_rng(0)) if layer.quant else \
        ({"weight": np.ones((2, 3, 3, 3), np.float32), "bias": np.zeros(2, np.float32)} if layer.type == "conv" else
         {"weight": np.ones((3, 8), np.float32), "bias": np.zeros(3, np.float32)} if layer.type == "fc" else {})
    return prepare_layer(backend, layer, params, in_shape), params


@pytest.mark.parametrize("layer,in_shape", [(QCONV, (3, 5, 5)), (QFC, (6,)), (Layer("r", "relu"), (3, 5, 5)),
                                            (Layer("p", "pool", kernel=2, stride=2), (3, 5, 5)),
                                            (Layer("c", "conv", out=2, kernel=3), (3, 5, 5)),
                                            (Layer("f", "fc", out=3), (2, 2, 2)), (Layer("n", "lrn"), (4, 3, 3)),
                                            (Layer("d", "dropout"), (5,)), (Layer("s", "softmax"), (7,))],
                         ids=["qconv", "qfc", "relu", "pool", "conv", "fc", "lrn", "dropout", "softmax"])
@pytest.mark.parametrize("bad", ["float64", "noncontig", "shape", "empty", "unbatched", "list"])
def test_bad_inputs_rejected(backend, layer, in_shape, bad):
    """Called directly (not through a session, which checks x once), a kernel still raises a
    one-line QcnnError rather than handing C a wrong pointer or shape."""
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
    params = {}
    if layer.type == "conv" and len(in_shape) == 3 and in_shape[0] % layer.groups == 0:
        params = {"weight": np.ones((4, in_shape[0], 3, 3), np.float32), "bias": np.zeros(4, np.float32)}
    with pytest.raises(QcnnError):
        prepare_layer(backend, layer, params, in_shape)


@pytest.mark.parametrize("layer,in_shape,out_shape", [
    (QCONV, (3, 5, 5), (4, 6, 5)),                                  # one row too many: reads past the table
    (QCONV, (3, 5, 5), (5, 5, 5)),                                  # channels
    (Layer("c", "conv", out=2, kernel=3), (3, 5, 5), (2, 3, 4)),
    (Layer("p", "pool", kernel=2, stride=2), (3, 5, 5), (3, 4, 3)),
    (Layer("p", "pool", kernel=2, stride=2), (3, 5, 5), (3, 3)),
])
def test_unsafe_output_shapes_rejected(backend, layer, in_shape, out_shape):
    """The output shape comes from the runtime; one that would make C read outside its input is a
    one-line QcnnError (the output-size formula itself is qcnn.model's)."""
    params = _prepared(backend, layer, in_shape)[1]
    with pytest.raises(QcnnError) as err:
        backend.prepare(layer, params, in_shape, out_shape)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("layer,in_shape", [(QCONV, (3, 5, 5)), (QFC, (6,))], ids=["qconv", "qfc"])
def test_lookup_rejects_foreign_tables(backend, layer, in_shape):
    kernel, _ = _prepared(backend, layer, in_shape)
    other, _ = _prepared(backend, layer.__class__(**{**layer.__dict__, "out": 9}), in_shape)
    x = np.ones((1, *in_shape), np.float32)
    table = kernel.table(x)
    assert relative_error(kernel.lookup(table), kernel(x)) <= RTOL  # a narrow qconv's call sums in another order
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
