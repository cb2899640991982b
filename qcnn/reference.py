"""Reference kernels: the one statement of every layer's semantics, written for clarity.

All functions take and return float32 batches. Spatial maps are NCHW ``[N, C, H, W]``;
fc and softmax outputs are ``[N, O]``. They follow ``seed-format.md`` exactly: conv
output size floor((H + 2p - k) / st) + 1, max pool ceil((H + 2p - k) / st) + 1 with
windows clipped to the image, LRN with alpha divided by the window size, dropout as
identity. Softmax subtracts the row max (equal to exp(x) / sum exp(x) wherever that does
not overflow).

Quantized layers run the Quantized-CNN way, in two stages: build a look-up table (LUT) of
input x sub-codeword inner products, then sum table entries chosen by the codes.

Integer tables (``tables="int16"`` / ``"int8"``, opt-in) are stated at the end of this
module: the float table is built in one defined order (:func:`table_sums`), its entries are
rounded to integers with one scale per sample and layer (:func:`int_tables`), summed
exactly, and rescaled once, so every backend, thread count and schedule gives the same
integer sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv", "qconv", "qconv_table", "qconv_lookup", "fc", "qfc", "qfc_table", "qfc_lookup",
    "max_pool", "relu", "lrn", "dropout", "softmax", "decode_conv_weight", "decode_fc_weight",
    "QMAX", "ACC16_TERMS", "IntTable", "codebook_norm", "table_sums", "int_tables", "qconv_int_table",
    "qconv_int_lookup", "qfc_int_table", "qfc_int_lookup",
]

f32 = np.float32


def _pad_hw(x: np.ndarray, pad: int, value: float = 0.0) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value) if pad else x


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, pad: int = 0,
         groups: int = 1) -> np.ndarray:
    """Float convolution with zero padding and groups.

    x [N, C, H, W], weight [O, C/G, k, k], bias [O] -> y [N, O, Ho, Wo] with
    Ho = floor((H + 2 pad - k) / stride) + 1 and
    y[n, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] x[n, g C/G + c, i st + u - p, j st + v - p],
    where g = o // (O/G) and out-of-image x are 0.
    """
    o, cg, k, _ = weight.shape
    xp = _pad_hw(x, pad)
    # windows [N, C, Ho, Wo, k, k]
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    og = o // groups
    outs = []
    for g in range(groups):
        wg = weight[g * og:(g + 1) * og]
        xg = win[:, g * cg:(g + 1) * cg]
        outs.append(np.einsum("nchwuv,ocuv->nohw", xg, wg, optimize=True))
    return (np.concatenate(outs, axis=1) + bias[None, :, None, None]).astype(f32)


def qconv_table(x: np.ndarray, codebook: np.ndarray, groups: int = 1) -> np.ndarray:
    """Stage 1 of quantized conv: the LUT of every input pixel against every sub-codeword.

    x [N, C, H, W], codebook [S, K, D] -> T [N, G, S, K, H, W], with Cg = C / G and
    T[n, g, s, k, h, w] = sum_{d < D, sD + d < Cg} x[n, g Cg + s D + d, h, w] codebook[s, k, d].
    A last subspace that runs past Cg uses only its first Cg - sD components (AlexNet's
    conv1: 3 channels, D = 8).
    """
    n, c, h, w = x.shape
    s, _, d = codebook.shape
    cg = c // groups
    xg = x.reshape(n, groups, cg, h, w)
    xg = np.pad(xg, ((0, 0), (0, 0), (0, s * d - cg), (0, 0), (0, 0)))  # zero channels never count
    xg = xg.reshape(n, groups, s, d, h, w)
    return np.einsum("ngsdhw,skd->ngskhw", xg, codebook, optimize=True).astype(f32)


def qconv_lookup(table: np.ndarray, codes: np.ndarray, bias: np.ndarray, stride: int = 1,
                 pad: int = 0) -> np.ndarray:
    """Stage 2 of quantized conv: sum table entries chosen by the codes.

    table [N, G, S, K, H, W], codes [O, k, k, S] (0-based), bias [O] -> y [N, O, Ho, Wo]:
    y[n, o, i, j] = bias[o] + sum_{u, v, s} T[n, g, s, codes[o, u, v, s], i st + u - p, j st + v - p],
    with g = o // (O/G) and taps outside the image skipped (the table of a zero vector is 0).
    """
    n, groups, s, _, h, w = table.shape
    o, k = codes.shape[0], codes.shape[1]
    og = o // groups
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    tp = np.pad(table, ((0, 0),) * 4 + ((pad, pad), (pad, pad)))
    y = np.zeros((n, o, ho, wo), f32) + bias[None, :, None, None]
    for g in range(groups):
        for u in range(k):
            for v in range(k):
                rows = slice(u, u + stride * (ho - 1) + 1, stride)
                cols = slice(v, v + stride * (wo - 1) + 1, stride)
                for sub in range(s):
                    plane = tp[:, g, sub, :, rows, cols]  # [N, K, Ho, Wo]
                    y[:, g * og:(g + 1) * og] += plane[:, codes[g * og:(g + 1) * og, u, v, sub]]
    return y


def qconv(x: np.ndarray, codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray,
          stride: int = 1, pad: int = 0, groups: int = 1) -> np.ndarray:
    """Quantized convolution: ``qconv_lookup(qconv_table(x, codebook, groups), codes, bias, stride, pad)``.

    Equal to :func:`conv` with the dense weights of :func:`decode_conv_weight`.
    """
    return qconv_lookup(qconv_table(x, codebook, groups), codes, bias, stride, pad)


def fc(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Fully connected: x [N, ...] flattened in (C, H, W) order to [N, F], weight [O, F] -> y = x W^T + b, [N, O]."""
    return (x.reshape(x.shape[0], -1) @ weight.T + bias).astype(f32)


def qfc_table(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Stage 1 of quantized fc: x [N, ...] flattened to [N, F], codebook [S, K, D] -> T [N, S, K],
    T[n, s, k] = sum_{d < D, sD + d < F} x[n, sD + d] codebook[s, k, d]."""
    s, _, d = codebook.shape
    xf = x.reshape(x.shape[0], -1)
    xf = np.pad(xf, ((0, 0), (0, s * d - xf.shape[1]))).reshape(-1, s, d)
    return np.einsum("nsd,skd->nsk", xf, codebook, optimize=True).astype(f32)


def qfc_lookup(table: np.ndarray, codes: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Stage 2 of quantized fc: table [N, S, K], codes [O, S], bias [O] -> y [N, O],
    y[n, o] = bias[o] + sum_s T[n, s, codes[o, s]]."""
    s = table.shape[1]
    picked = table[:, np.arange(s)[None, :], codes]  # [N, O, S]
    return (bias + picked.sum(axis=2, dtype=f32)).astype(f32)


def qfc(x: np.ndarray, codebook: np.ndarray, codes: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Quantized fc: ``qfc_lookup(qfc_table(x, codebook), codes, bias)``; equal to :func:`fc`
    with the dense weights of :func:`decode_fc_weight`."""
    return qfc_lookup(qfc_table(x, codebook), codes, bias)


def max_pool(x: np.ndarray, kernel: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Max pool, Caffe rounding: x [N, C, H, W] -> [N, C, Ho, Wo], Ho = ceil((H + 2p - k) / st) + 1.

    Window i covers rows [i st - p, i st - p + k) clipped to [0, H); padding never wins.
    """
    n, c, h, w = x.shape
    ho = -(-(h + 2 * pad - kernel) // stride) + 1
    wo = -(-(w + 2 * pad - kernel) // stride) + 1
    extra_h = (ho - 1) * stride + kernel - h - pad  # right/bottom padding the last window needs
    extra_w = (wo - 1) * stride + kernel - w - pad
    xp = np.pad(x, ((0, 0), (0, 0), (pad, max(extra_h, 0)), (pad, max(extra_w, 0))), constant_values=-np.inf)
    win = sliding_window_view(xp, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :ho, :wo]
    return win.max(axis=(4, 5)).astype(f32)


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), any shape."""
    return np.maximum(x, f32(0))


def lrn(x: np.ndarray, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> np.ndarray:
    """Local response normalisation across channels, x [N, C, H, W] -> same shape:
    y_c = x_c (k + alpha / size * sum_{|c' - c| <= (size - 1) / 2} x_{c'}^2) ^ (-beta),
    with channels outside [0, C) counted as 0."""
    r = (size - 1) // 2
    sq = np.pad(x.astype(f32) ** 2, ((0, 0), (r, r), (0, 0), (0, 0)))
    window = sliding_window_view(sq, size, axis=1).sum(axis=-1, dtype=f32)
    scale = f32(k) + f32(alpha / size) * window
    return (x * np.exp(f32(-beta) * np.log(scale))).astype(f32)


def dropout(x: np.ndarray) -> np.ndarray:
    """Test-time dropout: an identity copy (no scaling)."""
    return x.copy()


def softmax(x: np.ndarray) -> np.ndarray:
    """x [N, ...] flattened to [N, O] -> exp(x - max) / sum exp(x - max), per row."""
    x = x.reshape(x.shape[0], -1)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(f32)


def decode_conv_weight(codebook: np.ndarray, codes: np.ndarray, channels: int) -> np.ndarray:
    """Dense conv weights of a quantized conv: codebook [S, K, D], codes [O, k, k, S] ->
    W [O, Cg, k, k] with W[o, sD + d, u, v] = codebook[s, codes[o, u, v, s], d], Cg = ``channels``."""
    s, _, d = codebook.shape
    picked = codebook[np.arange(s), codes]  # [O, k, k, S, D]
    o, k = codes.shape[:2]
    return np.ascontiguousarray(picked.reshape(o, k, k, s * d)[..., :channels].transpose(0, 3, 1, 2))


def decode_fc_weight(codebook: np.ndarray, codes: np.ndarray, inputs: int) -> np.ndarray:
    """Dense fc weights of a quantized fc: codebook [S, K, D], codes [O, S] -> W [O, F],
    W[o, sD + d] = codebook[s, codes[o, s], d], F = ``inputs``."""
    s, _, d = codebook.shape
    return np.ascontiguousarray(codebook[np.arange(s), codes].reshape(codes.shape[0], s * d)[:, :inputs])


# --------------------------------------------------------------------------- integer tables
#: The largest table entry of each integer precision (symmetric: entries lie in [-QMAX, QMAX]).
QMAX = {"int16": 32767, "int8": 127}
#: int8 entries may be summed in int16 lanes for up to this many terms (258 x 127 < 2^15),
#: then widened to int32; int16 entries are summed in int32.
ACC16_TERMS = 32767 // 127


@dataclass
class IntTable:
    """Stage 1 of a quantized layer with integer tables: ``q`` the integer table (int16 or
    int8, the float table's shape) and ``scale`` float32 [N], one per sample."""

    q: np.ndarray
    scale: np.ndarray


def codebook_norm(codebook: np.ndarray) -> np.float32:
    """c_max = max_{s, k} sum_d |codebook[s, k, d]|, computed in float64, as float32 (a layer
    constant: the bound of a table entry is max|x| * c_max)."""
    return np.float32(np.abs(codebook.astype(np.float64)).sum(axis=2).max()) if codebook.size else np.float32(0)


def table_sums(xs: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """The float table in its defined order: xs [..., D] the subvectors (zero past the layer's
    channels) and cb [..., D] the sub-codewords, broadcast against each other;
    T = x_0 c_0, then T = T + x_d c_d for d = 1 .. D-1, every product and every sum rounded to
    float32 (no fused multiply-add). Any backend that keeps this order gets the same bits."""
    t = (xs[..., 0] * cb[..., 0]).astype(f32)
    for i in range(1, cb.shape[-1]):
        t = (t + xs[..., i] * cb[..., i]).astype(f32)
    return t


def int_tables(t: np.ndarray, bound: np.ndarray, precision: str) -> IntTable:
    """Round float tables to integers, one scale per sample.

    t [N, ...] float32 tables (in the order of :func:`table_sums`), bound [N] float32 with
    |t[n]| <= bound[n] (see :func:`qconv_int_table` and :func:`qfc_int_table` for each
    layer's bound). With Q = QMAX[precision]:
      inv[n] = Q / bound[n],  scale[n] = bound[n] / Q   (float32; both 0 when bound is 0)
      q = clip(rint(t * inv[n]), -Q, Q)                 (float32 product, round half to even)
    """
    qmax = QMAX[precision]
    bound = bound.astype(f32)
    safe = np.where(bound > 0, bound, f32(1))
    inv = np.where(bound > 0, f32(qmax) / safe, f32(0)).astype(f32)
    scale = np.where(bound > 0, safe / f32(qmax), f32(0)).astype(f32)
    shape = (-1,) + (1,) * (t.ndim - 1)
    q = np.clip(np.rint(t * inv.reshape(shape)), -qmax, qmax)
    return IntTable(q.astype(np.int16 if precision == "int16" else np.int8), scale)


def _rescale(acc: np.ndarray, scale: np.ndarray, bias: np.ndarray, bias_shape: tuple[int, ...]) -> np.ndarray:
    """y = float32(acc) * scale[n] + bias: the one float step after the exact integer sums."""
    s = scale.reshape((-1,) + (1,) * (acc.ndim - 1))
    return (acc.astype(f32) * s + bias.reshape(bias_shape)).astype(f32)


def qconv_int_table(x: np.ndarray, codebook: np.ndarray, groups: int, precision: str) -> IntTable:
    """Stage 1 of quantized conv with integer tables: x [N, C, H, W] -> q [N, G, S, K, H, W],
    the :func:`qconv_table` entries in the order of :func:`table_sums`, rounded by
    :func:`int_tables` with bound[n] = max |x[n]| * c_max (float32 product; max over all of
    C, H, W; c_max = :func:`codebook_norm`). The bound needs no pass over the table, so a
    backend can build, round and consume table pieces in any order."""
    n, c, h, w = x.shape
    s, _, d = codebook.shape
    cg = c // groups
    xg = np.pad(x.reshape(n, groups, cg, h, w), ((0, 0), (0, 0), (0, s * d - cg), (0, 0), (0, 0)))
    xs = xg.reshape(n, groups, s, 1, d, h, w).transpose(0, 1, 2, 3, 5, 6, 4)  # [N, G, S, 1, H, W, D]
    t = table_sums(xs, codebook[None, None, :, :, None, None, :])  # [N, G, S, K, H, W]
    xmax = np.abs(x).reshape(n, -1).max(axis=1) if x.size else np.zeros(n, f32)
    return int_tables(t, xmax * codebook_norm(codebook), precision)


def qconv_int_lookup(table: IntTable, codes: np.ndarray, bias: np.ndarray, stride: int = 1,
                     pad: int = 0) -> np.ndarray:
    """Stage 2: the :func:`qconv_lookup` sum of integer entries, exact (int64 here; int32, or
    int16 lanes for at most ACC16_TERMS int8 terms, in a backend), then one rescale:
    y[n, o, i, j] = float32(sum) * scale[n] + bias[o]."""
    q = table.q
    n, groups, s, _, h, w = q.shape
    o, k = codes.shape[0], codes.shape[1]
    og = o // groups
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    tp = np.pad(q.astype(np.int64), ((0, 0),) * 4 + ((pad, pad), (pad, pad)))
    acc = np.zeros((n, o, ho, wo), np.int64)
    for g in range(groups):
        for u in range(k):
            for v in range(k):
                rows = slice(u, u + stride * (ho - 1) + 1, stride)
                cols = slice(v, v + stride * (wo - 1) + 1, stride)
                for sub in range(s):
                    acc[:, g * og:(g + 1) * og] += tp[:, g, sub, :, rows, cols][:, codes[g * og:(g + 1) * og, u, v, sub]]
    return _rescale(acc, table.scale, bias, (1, o, 1, 1))


def qfc_int_table(x: np.ndarray, codebook: np.ndarray, precision: str) -> IntTable:
    """Stage 1 of quantized fc with integer tables: x [N, ...] -> q [N, S, K], the
    :func:`qfc_table` entries in the order of :func:`table_sums`, rounded by :func:`int_tables`
    with bound[n] = max |T[n]| (an fc table is small and complete before its look-ups, so its
    exact maximum is cheap: 6x finer steps than the conv bound on AlexNet's fc6)."""
    s, _, d = codebook.shape
    xf = x.reshape(x.shape[0], -1)
    xs = np.pad(xf, ((0, 0), (0, s * d - xf.shape[1]))).reshape(-1, s, 1, d)  # [N, S, 1, D]
    t = table_sums(xs, codebook[None])
    return int_tables(t, np.abs(t).reshape(t.shape[0], -1).max(axis=1) if t.size else np.zeros(len(t), f32), precision)


def qfc_int_lookup(table: IntTable, codes: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Stage 2: y[n, o] = float32(sum_s q[n, s, codes[o, s]]) * scale[n] + bias[o], the sum exact."""
    s = table.q.shape[1]
    acc = table.q.astype(np.int64)[:, np.arange(s)[None, :], codes].sum(axis=2)  # [N, O]
    return _rescale(acc, table.scale, bias, (1, -1))
