"""Fully connected layers: float (one GEMV/GEMM) and quantized (LUT by batched GEMM + look-ups).

Float: y [N, O] = x [N, F] W^T + b with W [O, F] row-major; N = 1 runs as a GEMV W @ x.

Quantized, with codebook [S, K, D] and codes [O, S]:
  table   T[n, s, k] = sum_d codebook[s, k, d] x[n, s D + d]   (x zero-filled up to S D),
          one ``np.matmul`` over the S subspaces;
  look-up y[n, o] = b[o] + sum_s T[n, s, codes[o, s]].

Pairing. When K^2 <= O / 2 (AlexNet's fc6/fc7: K = 32, O = 4096; fc8: K = 16, O = 1000),
the table stage also adds the tables of subspaces 2j and 2j + 1 into a pair table
    T2[n, j, a K + b] = T[n, 2j, a] + T[n, 2j + 1, b]              [N, ceil(S/2), K^2]
(a zero table stands in for subspace S when S is odd). That costs S/2 K^2 adds and halves
the look-ups: y[n, o] = b[o] + sum_j T2[n, j, codes[o, 2j] K + codes[o, 2j + 1]]. It is
the same sum in another order (exactly the look-up of a product quantizer whose
sub-codebooks are the Cartesian products of two neighbouring ones).

The look-up walks the (pair-)subspaces in chunks of ``rows``: flat table indices
j Kp + code (Kp = K or K^2), kept as int32 [S', O], are widened into a kept intp buffer,
``np.take`` gathers [rows, O] entries, and a reduction over the chunk accumulates them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qcnn.reference import decode_fc_weight

from ._scratch import Scratch

__all__ = ["FcKernel", "QFcTable", "QFcLookup", "DenseQFc"]

f32 = np.float32

#: Look-ups per chunk (the gathered [rows, O] block and its indices stay in cache).
LOOKUP_ELEMENTS = 32 << 10


class FcKernel:
    """y [N, O] = x [N, F] W^T + b; x [N, ...] is flattened in (C, H, W) order."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = np.ascontiguousarray(weight, f32)  # [O, F]
        self.bias = np.ascontiguousarray(bias, f32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        xf = x.reshape(n, -1)
        if n == 1:
            y = np.empty((1, self.weight.shape[0]), f32)
            np.dot(self.weight, xf[0], out=y[0])  # SGEMV
        else:
            y = xf @ self.weight.T  # SGEMM
        y += self.bias
        return y


def use_pairs(codebook_shape: tuple[int, ...], outputs: int) -> bool:
    """Pair neighbouring subspaces when the pair table (K^2 entries per pair) costs less than the saved look-ups."""
    s, k, _ = codebook_shape
    return s >= 2 and k * k <= outputs // 2 and -(-s // 2) * k * k < 1 << 31


class QFcTable:
    """Stage 1: x [N, ...] (F <= S D after flattening) -> T [N, S, K], or with ``pairs`` T2 [N, ceil(S/2), K^2].

    Returns a fresh array.
    """

    def __init__(self, codebook: np.ndarray, inputs: int, pairs: bool = False) -> None:
        self.codebook = np.ascontiguousarray(codebook, f32)  # [S, K, D]
        self.s, self.k, self.d = codebook.shape
        self.inputs, self.pairs = inputs, pairs
        self.scratch = Scratch()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        s, k, d = self.s, self.k, self.d
        xf = x.reshape(n, -1)
        if self.inputs != s * d:  # partial last subspace: zero-fill up to S D
            xb = self.scratch.get("xb", (n, s * d), fill=0.0)
            xb[:, :self.inputs] = xf
            xf = xb
        if not self.pairs:
            table = np.empty((n, s, k), f32)
            # [S, K, D] @ [N, S, D, 1] -> [N, S, K, 1]: one small GEMV per (n, s)
            np.matmul(self.codebook, xf.reshape(n, s, d, 1), out=table.reshape(n, s, k, 1))
            return table
        s2 = -(-s // 2)
        single = self.scratch.get("single", (n, 2 * s2, k), fill=0.0)  # row S (if any) stays 0
        np.matmul(self.codebook, xf.reshape(n, s, d, 1), out=single[:, :s].reshape(n, s, k, 1))
        table = np.empty((n, s2, k * k), f32)
        np.add(single[:, 0::2, :, None], single[:, 1::2, None, :], out=table.reshape(n, s2, k, k))
        return table


class QFcLookup:
    """Stage 2: T [N, S, K] -> y [N, O], y[n, o] = b[o] + sum_s T[n, s, codes[o, s]]
    (with ``pairs``: T2 [N, ceil(S/2), K^2] and the pair codes codes[o, 2j] K + codes[o, 2j + 1])."""

    def __init__(self, codes: np.ndarray, bias: np.ndarray, k: int, pairs: bool = False) -> None:
        codes = np.asarray(codes).T.astype(np.int64)  # [S, O]
        s, self.o = codes.shape
        if pairs:
            if s % 2:
                codes = np.concatenate([codes, np.zeros((1, self.o), np.int64)])  # the zero table's entry 0
            codes, k = codes[0::2] * k + codes[1::2], k * k
        #: flat index j Kp + code of every look-up, [S', O]
        index = codes + np.arange(codes.shape[0]).reshape(-1, 1) * k
        self.index = np.ascontiguousarray(index, np.int32 if codes.shape[0] * k < 1 << 31 else np.intp)
        self.bias = np.ascontiguousarray(bias, f32)
        self.rows = max(1, min(LOOKUP_ELEMENTS // self.o, self.index.shape[0]))
        self.scratch = Scratch()

    def __call__(self, table: np.ndarray) -> np.ndarray:
        n = table.shape[0]
        rows, index, total = self.rows, self.index, self.index.shape[0]
        idx = self.scratch.get("idx", (rows, self.o), dtype=np.intp)
        picked = self.scratch.get("picked", (rows, self.o))
        part = self.scratch.get("part", (self.o,))
        y = np.empty((n, self.o), f32)
        for i in range(n):
            flat = table[i].reshape(-1)
            acc = y[i]
            acc[:] = self.bias
            for j in range(0, total, rows):
                m = min(rows, total - j)
                idx[:m] = index[j:j + m]
                np.take(flat, idx[:m], out=picked[:m], mode="wrap")
                np.add.reduce(picked[:m], axis=0, out=part)
                acc += part
        return y


class DenseQFc(FcKernel):
    """For comparison only (not the default): decode W[o, sD + d] = codebook[s, codes[o, s], d] once, then GEMV."""

    def __init__(self, params: Mapping[str, np.ndarray], inputs: int) -> None:

        super().__init__(decode_fc_weight(params["codebook"], params["codes"], inputs), params["bias"])
