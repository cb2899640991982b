"""The numpy backend against the reference kernels, op by op and on the synthetic AlexNet.

Agreement is max|y - ref| / max|ref| <= 1e-4 (float32 summation-order tolerance).
"""

from __future__ import annotations

import numpy as np
import pytest
from qcnn_numpy.fc import use_pairs

import qcnn
from qcnn import QcnnError
from qcnn import reference as ref
from qcnn.model import Layer, Quant
from qcnn.plugin import StagedKernel, backend_specs, load_backend
from qcnn.testing import case_data, layer_cases, prepare_layer

TOL = 1e-4


@pytest.fixture(scope="module")
def backend():
    return load_backend("numpy").impl


def rel(y: np.ndarray, want: np.ndarray) -> float:
    assert y.shape == want.shape, (y.shape, want.shape)
    assert y.dtype == np.float32
    return float(np.abs(y.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def batch(rng: np.random.Generator, n: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return np.ascontiguousarray(rng.standard_normal((n, *shape), dtype=np.float32) * np.float32(scale))


def _conv_case(case, quantized: bool, rng: np.random.Generator):
    n, c, h, w, o, k, st, p, g, d, kk = case
    quant = Quant(d, kk) if quantized else None
    layer = Layer(name="c", type="conv", out=o, kernel=k, stride=st, pad=p, groups=g, quant=quant)
    cg = c // g
    bias = rng.standard_normal(o, dtype=np.float32)
    if quantized:
        s = quant.subspaces(cg)
        params = {"codebook": rng.standard_normal((s, kk, d), dtype=np.float32),
                  "codes": rng.integers(0, kk, (o, k, k, s), dtype=np.uint8), "bias": bias}
    else:
        params = {"weight": rng.standard_normal((o, cg, k, k), dtype=np.float32), "bias": bias}
    return layer, params, batch(rng, n, (c, h, w))


@pytest.mark.parametrize("case", [c for c in layer_cases() if c.layer.op == "qconv"], ids=lambda c: c.id)
def test_qconv_dense_mode(backend, case):
    """The dense-decode comparison mode computes the same layer as the reference (the LUT
    kernel and its stages are checked by the conformance suite, on the same cases)."""
    params, x = case_data(case)
    want = ref.qconv(x, params["codebook"], params["codes"], params["bias"], case.layer.stride, case.layer.pad,
                     case.layer.groups)
    dense = prepare_layer(type(backend)(quantized="dense"), case.layer, params, case.in_shape)
    assert rel(dense(x), want) <= TOL


def test_qconv_table_is_the_reference_lut(backend):
    """Stage 1 holds T[n, g, s, k, h, w] of the reference (in the phase layout, padding included)."""
    rng = np.random.default_rng(5)
    layer, params, x = _conv_case((2, 10, 9, 11, 4, 3, 2, 1, 2, 3, 6), True, rng)
    kernel = prepare_layer(backend, layer, params, x.shape[1:])
    table = kernel.table(x)
    want = ref.qconv_table(x, params["codebook"], layer.groups)  # [N, G, S, K, H, W]
    n, g, s, kk, h, w = want.shape
    st, p = layer.stride, layer.pad
    hs, ws = -(-(h + 2 * p) // st), -(-(w + 2 * p) // st)
    t = table.reshape(n, g, s, kk, st, st, hs, ws).transpose(0, 1, 2, 3, 6, 4, 7, 5)
    t = t.reshape(n, g, s, kk, hs * st, ws * st)
    assert rel(t[..., p:p + h, p:p + w], want) <= TOL
    assert not t[..., :p, :].any() and not t[..., p + h:, :].any()  # the table of zero padding is 0


# (N, input shape, O, D, K)
FC_CASES = [
    (1, (256, 2, 2), 64, 4, 32),
    (3, (10, 3, 3), 17, 4, 16),     # F = 90 is not a multiple of D
    (1, (100,), 30, 1, 16),         # fc8-like: D = 1
    (3, (37,), 5, 8, 256),          # D > some of F's remainder, K = 256
    (1, (7, 5, 3), 12, 2, 2),
    (3, (512,), 1, 16, 3),
    (3, (30,), 40, 1, 4),           # pairs of subspaces (K^2 <= O / 2), S even
    (1, (21,), 50, 3, 4),           # pairs, S = 7 odd
    (3, (10, 3, 3), 200, 4, 8),     # pairs, S = 23 odd and a partial last subspace
]


def test_pairing_rule():
    assert use_pairs((2304, 32, 4), 4096) and use_pairs((4096, 16, 1), 1000)  # AlexNet fc6/fc7, fc8
    assert not use_pairs((2304, 32, 4), 2047) and not use_pairs((1, 2, 4), 100)


@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: f"N{c[0]}F{int(np.prod(c[1]))}O{c[2]}D{c[3]}K{c[4]}")
def test_fc_and_qfc(backend, case):
    n, shape, o, d, kk = case
    rng = np.random.default_rng(o + d + kk)
    x = batch(rng, n, shape)
    f = int(np.prod(shape))
    bias = rng.standard_normal(o, dtype=np.float32)
    weight = rng.standard_normal((o, f), dtype=np.float32)
    kernel = prepare_layer(backend, Layer(name="f", type="fc", out=o), {"weight": weight, "bias": bias}, shape)
    assert rel(kernel(x), ref.fc(x, weight, bias)) <= TOL

    quant = Quant(d, kk)
    s = quant.subspaces(f)
    params = {"codebook": rng.standard_normal((s, kk, d), dtype=np.float32),
              "codes": rng.integers(0, kk, (o, s), dtype=np.uint8), "bias": bias}
    layer = Layer(name="q", type="fc", out=o, quant=quant)
    kernel = prepare_layer(backend, layer, params, shape)
    assert isinstance(kernel, StagedKernel)
    want = ref.qfc(x, params["codebook"], params["codes"], bias)
    assert rel(kernel(x), want) <= TOL
    table, want_table = kernel.table(x), ref.qfc_table(x, params["codebook"])
    if use_pairs(params["codebook"].shape, o):  # T2[n, j, a K + b] = T[n, 2j, a] + T[n, 2j + 1, b]
        t = np.concatenate([want_table, np.zeros((n, s % 2, kk), np.float32)], axis=1)
        want_table = (t[:, 0::2, :, None] + t[:, 1::2, None, :]).reshape(n, -1, kk * kk)
    assert rel(table, want_table) <= TOL
    assert rel(kernel.lookup(table), want) <= TOL
    dense = prepare_layer(type(backend)(quantized="dense"), layer, params, shape)
    assert rel(dense(x), want) <= TOL


# (N, C, H, W, kernel, stride, pad): ceil rounding, clipped last windows, padding
POOL_CASES = [
    (1, 4, 55, 55, 3, 2, 0),
    (3, 3, 109, 100, 3, 3, 0),   # VGG-CNN-S pool1: ceil 109 -> 37
    (1, 2, 13, 12, 3, 2, 1),
    (3, 5, 10, 7, 2, 2, 0),
    (1, 3, 9, 11, 4, 3, 2),
    (3, 2, 6, 6, 1, 1, 0),
    (1, 2, 8, 5, 5, 4, 2),
    (1, 2, 8, 5, 5, 4, 3),       # windows lying wholly in the padding: -inf, as in the reference
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "N{}C{}x{}x{}k{}s{}p{}".format(*c))
def test_pool(backend, case):
    n, c, h, w, k, st, p = case
    x = batch(np.random.default_rng(h * w), n, (c, h, w))
    want = ref.max_pool(x, k, st, p)
    # out_shape from the reference: some of these windows start in the padding, which a spec
    # refuses, but the kernel itself must still get them right
    kernel = backend.prepare(Layer(name="p", type="pool", kernel=k, stride=st, pad=p), {}, (c, h, w), want.shape[1:])
    if not np.isfinite(want).all():
        assert np.array_equal(kernel(x), want)
        return
    assert rel(kernel(x), want) <= TOL
    assert rel(kernel(x), want) <= TOL


@pytest.mark.parametrize("size,alpha,beta,k,c", [(5, 1e-4, 0.75, 1.0, 96), (3, 0.5, 0.6, 2.0, 7),
                                                  (7, 1.0, 1.5, 0.5, 3), (1, 2.0, 0.75, 1.0, 4)])
@pytest.mark.parametrize("n", [1, 3])
def test_lrn(backend, size, alpha, beta, k, c, n):
    x = batch(np.random.default_rng(c), n, (c, 9, 6), scale=20.0)
    kernel = prepare_layer(backend, Layer(name="n", type="lrn", size=size, alpha=alpha, beta=beta, k=k), {}, (c, 9, 6))
    want = ref.lrn(x, size, alpha, beta, k)
    assert rel(kernel(x), want) <= TOL
    assert rel(kernel(x), want) <= TOL  # the prefix buffer is reused


def test_lrn_small_channels_after_large_ones(backend):
    """Running sums must not lose a tiny window that follows huge ones (cancellation)."""
    x = np.full((1, 8, 2, 2), 1e-3, np.float32)
    x[:, :3] = 1e4
    kernel = prepare_layer(backend, Layer(name="n", type="lrn", size=3, alpha=1.0, beta=0.75, k=1e-6), {}, (8, 2, 2))
    y, want = kernel(x), ref.lrn(x, 3, 1.0, 0.75, 1e-6)
    assert np.allclose(y[:, 5:], want[:, 5:], rtol=1e-4, atol=0)


def test_relu_dropout_softmax(backend):
    rng = np.random.default_rng(3)
    for n in (1, 3):
        x = batch(rng, n, (6, 5, 4))
        relu = prepare_layer(backend, Layer(name="r", type="relu"), {}, (6, 5, 4))
        assert np.array_equal(relu(x), ref.relu(x))
        drop = prepare_layer(backend, Layer(name="d", type="dropout", ratio=0.5), {}, (6, 5, 4))
        y = drop(x)
        assert np.array_equal(y, x) and not np.shares_memory(y, x)
        z = batch(rng, n, (1000,), scale=30.0)
        soft = prepare_layer(backend, Layer(name="s", type="softmax"), {}, (1000,))
        assert rel(soft(z), ref.softmax(z)) <= TOL


def test_alternating_batch_sizes(backend):
    """Kept buffers (zero/-inf borders included) stay right when the batch size changes back and forth."""
    rng = np.random.default_rng(11)
    c, h, w = 6, 11, 9
    cases = []
    for quantized in (False, True):
        layer, params, _ = _conv_case((1, c, h, w, 4, 3, 2, 2, 2, 4, 8), quantized, rng)
        if quantized:
            cases.append((layer, params,
                          lambda x, p=params: ref.qconv(x, p["codebook"], p["codes"], p["bias"], 2, 2, 2)))
        else:
            cases.append((layer, params, lambda x, p=params: ref.conv(x, p["weight"], p["bias"], 2, 2, 2)))
    cases.append((Layer(name="p", type="pool", kernel=3, stride=2, pad=1), {}, lambda x: ref.max_pool(x, 3, 2, 1)))
    cases.append((Layer(name="n", type="lrn", size=5, alpha=1.0, beta=0.75, k=2.0), {},
                  lambda x: ref.lrn(x, 5, 1.0, 0.75, 2.0)))
    fcq = {"codebook": rng.standard_normal((19, 4, 32), dtype=np.float32),
           "codes": rng.integers(0, 4, (40, 19), dtype=np.uint8), "bias": np.zeros(40, np.float32)}
    cases.append((Layer(name="f", type="fc", out=40, quant=Quant(32, 4)), fcq,
                  lambda x: ref.qfc(x, fcq["codebook"], fcq["codes"], fcq["bias"])))
    for layer, params, want in cases:
        kernel = prepare_layer(backend, layer, params, (c, h, w))
        for n in (1, 3, 1, 2):
            x = batch(rng, n, (c, h, w))
            assert rel(kernel(x), want(x)) <= TOL, (layer.name, n)


def test_kernels_shared_between_threads(backend):
    """Kept buffers are per thread: one prepared kernel called from several threads at once stays right."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(12)
    shape = (8, 61, 57)
    layer, params, _ = _conv_case((1, *shape, 8, 3, 1, 1, 2, 4, 16), True, rng)
    kernels = [prepare_layer(backend, layer, params, shape),
               prepare_layer(backend, Layer(name="p", type="pool", kernel=3, stride=2, pad=1), {}, shape)]
    inputs = [batch(rng, 2, shape) for _ in range(8)]
    wants = [[ref.qconv(x, params["codebook"], params["codes"], params["bias"], 1, 1, 2), ref.max_pool(x, 3, 2, 1)]
             for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: [k(x) for _ in range(5) for k in kernels][-2:], inputs))
    for g, w in zip(got, wants):
        assert rel(g[0], w[0]) <= TOL and rel(g[1], w[1]) <= TOL


def test_registered_and_info():
    assert "numpy" in backend_specs()
    spec = backend_specs()["numpy"]
    assert spec.plugin == "numpy" and spec.version
    qcnn.set_threads(1)
    info = load_backend("numpy").impl.info()
    assert info["threads"] == 1
    assert info["numpy"] == np.__version__
    assert {"blas", "blas_version"} <= set(info)


def test_unknown_quant_mode():
    from qcnn_numpy import NumpyBackend

    with pytest.raises(QcnnError, match="quantized must be one of lut, dense"):
        NumpyBackend(quantized="fast")
