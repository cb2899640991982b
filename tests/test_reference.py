"""The reference kernels against direct, loop-by-loop statements of the math."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn import reference as ref

rng = np.random.default_rng(0)


def naive_conv(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    o, cg, k, _ = w.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float64)
    y = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + k, j * stride:j * stride + k]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
    return y


@pytest.mark.parametrize("c,h,w,o,k,st,p,g", [(3, 9, 11, 4, 3, 2, 1, 1), (4, 7, 7, 6, 5, 1, 2, 2), (6, 8, 5, 3, 1, 3, 0, 3)])
def test_conv_matches_loops(c, h, w, o, k, st, p, g):
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c // g, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    np.testing.assert_allclose(ref.conv(x, wt, b, st, p, g), naive_conv(x, wt, b, st, p, g), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c,o,k,st,p,g,d,kk", [(3, 8, 11, 4, 0, 1, 8, 128), (12, 6, 3, 1, 1, 2, 4, 16), (10, 4, 3, 2, 2, 1, 3, 5)])
def test_quantized_conv_equals_conv_with_decoded_weights(c, o, k, st, p, g, d, kk):
    x = rng.standard_normal((2, c, 19, 15)).astype(np.float32)
    cg = c // g
    s = -(-cg // d)
    codebook = rng.standard_normal((s, kk, d)).astype(np.float32)
    codes = rng.integers(0, kk, size=(o, k, k, s), dtype=np.uint8)
    b = rng.standard_normal(o).astype(np.float32)
    dense = ref.decode_conv_weight(codebook, codes, cg)
    assert dense.shape == (o, cg, k, k)
    np.testing.assert_allclose(ref.qconv(x, codebook, codes, b, st, p, g), ref.conv(x, dense, b, st, p, g),
                               rtol=1e-4, atol=1e-4)


def test_qconv_ignores_codeword_components_past_the_channels():
    """conv1 of the release: 3 channels, D = 8; components 3..7 are never read."""
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    codebook = rng.standard_normal((1, 4, 8)).astype(np.float32)
    codes = rng.integers(0, 4, size=(2, 3, 3, 1), dtype=np.uint8)
    b = np.zeros(2, np.float32)
    changed = codebook.copy()
    changed[:, :, 3:] = 99.0
    assert np.array_equal(ref.qconv(x, codebook, codes, b), ref.qconv(x, changed, codes, b))


def test_quantized_fc_equals_fc_with_decoded_weights():
    x = rng.standard_normal((3, 5, 2, 2)).astype(np.float32)  # F = 20, D = 3 does not divide it
    codebook = rng.standard_normal((7, 16, 3)).astype(np.float32)
    codes = rng.integers(0, 16, size=(9, 7), dtype=np.uint8)
    b = rng.standard_normal(9).astype(np.float32)
    dense = ref.decode_fc_weight(codebook, codes, 20)
    np.testing.assert_allclose(ref.qfc(x, codebook, codes, b), ref.fc(x, dense, b), rtol=1e-5, atol=1e-5)
    table = ref.qfc_table(x, codebook)
    assert table.shape == (3, 7, 16)
    o = 4
    assert np.isclose(ref.qfc_lookup(table, codes, b)[1, o], b[o] + sum(table[1, t, codes[o, t]] for t in range(7)), rtol=1e-5)


def test_max_pool_ceil_rounding_and_clipped_windows():
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    y = ref.max_pool(x, kernel=2, stride=2)  # ceil((5-2)/2)+1 = 3: the last window is clipped to 1 row/col
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0].tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
    neg = -x - 1  # all negative: padding must never win
    yp = ref.max_pool(neg, kernel=3, stride=2, pad=1)
    assert yp.shape == (1, 1, 3, 3) and yp.max() < 0 and yp[0, 0, 0, 0] == -1


def test_lrn_matches_formula():
    x = rng.standard_normal((2, 7, 3, 4)).astype(np.float32) * 20
    size, alpha, beta, k = 5, 1e-2, 0.75, 2.0
    want = np.empty_like(x, dtype=np.float64)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        s = k + alpha / size * (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        want[:, c] = x[:, c] * s ** -beta
    np.testing.assert_allclose(ref.lrn(x, size, alpha, beta, k), want, rtol=1e-5)


def test_softmax_stable_and_equal_to_plain_formula():
    x = rng.standard_normal((2, 10)).astype(np.float32)
    np.testing.assert_allclose(ref.softmax(x), np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), rtol=1e-6)
    big = np.array([[1000.0, 999.0, 0.0]], np.float32)  # exp overflows without the max subtraction
    assert np.isfinite(ref.softmax(big)).all() and abs(ref.softmax(big).sum() - 1) < 1e-6


def test_relu_and_dropout():
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert np.array_equal(ref.relu(x), np.where(x > 0, x, 0))
    y = ref.dropout(x)
    assert np.array_equal(y, x) and y is not x
