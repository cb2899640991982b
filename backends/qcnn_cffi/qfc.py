"""Quantized fc on the C kernels, staged as the paper's table building and look-up.

Table: T[n, s, k] = sum_{d < D, sD + d < F} x[n, sD + d] codebook[s, k, d], rows padded to Kp
entries (16 or 32 so that AVX-512 keeps a row in one or two registers). Look-up:
y[n, o] = b[o] + sum_s T[n, s, A[o, s]] with codes blocked [O/B, S, B], so the codes of B
consecutive outputs in one subspace are contiguous and a permute looks up 16 at once (on AVX-512
packed: 4-bit codes for K <= 16, 5-bit codes in 32-bit words for K <= 32, B = 96; see
``csrc/qc_qfc.c``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from qcnn import reference as ref
from qcnn.plugin import Layer, QcnnError, StagedKernel

from ._checks import check_batch, f32, int32_dims, ptr, tensor
from ._ext import ffi, lib

__all__ = ["qfc"]


def qfc(layer: Layer, params: Mapping[str, np.ndarray], in_shape: tuple[int, ...],
        out_shape: tuple[int, ...]) -> StagedKernel:
    """A staged kernel x [N, ...] (flattened to [N, F]) -> y [N, O] for a product-quantized fc."""
    assert layer.quant is not None
    f, o = math.prod(in_shape), layer.out
    d, kk = layer.quant.D, layer.quant.K
    s = layer.quant.subspaces(f)
    if f < 1 or o < 1:
        raise QcnnError(f"layer {layer.name}: empty fc layer ({f} inputs, {o} outputs)")
    codebook = tensor(layer, params, "codebook", (s, kk, d))
    codes = tensor(layer, params, "codes", (o, s), np.uint8)
    bias = tensor(layer, params, "bias", (o,))
    if codes.size and int(codes.max()) >= kk:
        raise QcnnError(f"layer {layer.name}: code {int(codes.max())} is out of range for K = {kk}")
    kp = int(lib.qc_fc_kpad(kk))
    b, nbytes = int(lib.qc_fc_block_for(kp)), int(lib.qc_fc_code_bytes(kp))
    ob = -(-o // b)
    int32_dims(layer, inputs=f, outputs=ob * b, table=s * kp)

    cbt = np.zeros((s, d, kp), f32)  # codebook transposed [S, D, Kp], zero beyond K
    cbt[:, :, :kk] = codebook.transpose(0, 2, 1)
    blocked = np.zeros((ob * b, s), np.uint8)
    blocked[:o] = codes
    blocked = np.ascontiguousarray(blocked.reshape(ob, b, s).transpose(0, 2, 1))  # [Ob, S, B]
    if nbytes == b // 2:  # 4-bit codes, two per byte: code(i) | code(i + B/2) << 4
        blocked = np.ascontiguousarray(blocked[:, :, :b // 2] | (blocked[:, :, b // 2:] << 4))
    elif nbytes < b:  # 5-bit codes, b / 16 per 32-bit word: word l = sum_q code(16 q + l) << 5 q
        fields = blocked.reshape(ob, s, b // 16, 16).astype("<u4")  # [Ob, S, q, l]
        words = np.bitwise_or.reduce(fields << (5 * np.arange(b // 16, dtype="<u4"))[None, None, :, None], axis=2)
        blocked = np.ascontiguousarray(words).view(np.uint8)  # [Ob, S, 64]
    assert blocked.shape == (ob, s, nbytes), (blocked.shape, nbytes)
    bias_pad = np.zeros(ob * b, f32)
    bias_pad[:o] = bias
    cbt_p, codes_p, bias_p = ptr(ffi, cbt), ptr(ffi, blocked, "uint8_t[]"), ptr(ffi, bias_pad)
    if layer.quant.tables != "fp32":
        return _int_kernel(layer, in_shape, (f, o, s, d, kp, ob), cbt_p, codes_p, bias_p)

    def table(x: np.ndarray) -> np.ndarray:
        n = check_batch(x, in_shape, layer.name)
        t = np.empty((n, s, kp), f32)
        lib.qc_qfc_table(ptr(ffi, x), n, f, cbt_p, s, d, kp, ptr(ffi, t))
        return t

    def lookup(t: np.ndarray) -> np.ndarray:
        if (type(t) is not np.ndarray or t.dtype != f32 or not t.flags.c_contiguous or t.ndim != 3
                or t.shape[0] < 1 or t.shape[1:] != (s, kp)):
            got = list(t.shape) if isinstance(t, np.ndarray) else type(t).__name__
            raise QcnnError(f"layer {layer.name}: look-up table must be C-contiguous float32 [N, {s}, {kp}], got {got}")
        n = t.shape[0]
        y = np.empty((n, o), f32)
        lib.qc_qfc_lookup(ptr(ffi, t), n, s, kp, codes_p, ob, bias_p, o, ptr(ffi, y))
        return y

    return StagedKernel(table=table, lookup=lookup)


def _int_kernel(layer: Layer, in_shape: tuple[int, ...], dims: tuple[int, int, int, int, int, int], cbt_p: object,
                codes_p: object, bias_p: object) -> StagedKernel:
    """The integer-table kernel (``layer.quant.tables`` int16 or int8; see
    :func:`qcnn.reference.qfc_int_table`): table (T int32 [N, S, Kp], scale [N]), then the same
    permutes as the float look-up with exact int32 sums and one rescale."""
    assert layer.quant is not None
    f, o, s, d, kp, ob = dims
    qmax = ref.QMAX[layer.quant.tables]

    def table(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = check_batch(x, in_shape, layer.name)
        tf, t, scale = np.empty((n, s, kp), f32), np.empty((n, s, kp), np.int32), np.empty(n, f32)
        lib.qc_qfc_int_table(ptr(ffi, x), n, f, cbt_p, s, d, kp, qmax, ptr(ffi, tf), ptr(ffi, t, "int32_t[]"),
                             ptr(ffi, scale))
        return t, scale

    def lookup(ts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        t, scale = ts if isinstance(ts, tuple) and len(ts) == 2 else (None, None)
        if (type(t) is not np.ndarray or t.dtype != np.int32 or not t.flags.c_contiguous or t.ndim != 3
                or t.shape[0] < 1 or t.shape[1:] != (s, kp) or type(scale) is not np.ndarray
                or scale.dtype != f32 or scale.shape != (t.shape[0],)):
            raise QcnnError(f"layer {layer.name}: look-up input must be (int32 [N, {s}, {kp}], float32 [N]) "
                            "from this kernel's table stage")
        n = t.shape[0]
        y = np.empty((n, o), f32)
        lib.qc_qfc_int_lookup(ptr(ffi, t, "int32_t[]"), n, s, kp, codes_p, ob, ptr(ffi, scale), bias_p, o, 0,
                              ptr(ffi, y))
        return y

    return StagedKernel(table=table, lookup=lookup)
