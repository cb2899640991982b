"""Fully connected layers: float (one GEMV/GEMM) and quantized (LUT by batched GEMM + look-ups).

Float: y [N, O] = x [N, F] W^T + b with W [O, F] row-major; N = 1 runs as a GEMV W @ x.

Quantized, with codebook [S, K, D] and codes [O, S]:
  table   T[n, s, k] = sum_d codebook[s, k, d] x[n, s D + d]   (x zero-filled up to S D),
          one ``np.matmul`` over the S subspaces;
  look-up y[n, o] = b[o] + sum_s T[n, s, codes[o, s]].
The look-up walks the subspaces in chunks of ``rows`` subspaces: the chunk's codes, kept as
[S, O] uint8 (one byte per look-up, so the index stream is small), become flat indices
s K + code into the table (one add), ``np.take`` gathers [rows, O] entries, and a reduction
over the chunk accumulates them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._scratch import Scratch

__all__ = ["FcKernel", "QFcTable", "QFcLookup", "DenseQFc"]

f32 = np.float32

#: Subspaces per look-up chunk (the gathered [rows, O] block and its indices stay in cache).
LOOKUP_ROWS = 16


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


class QFcTable:
    """Stage 1: x [N, ...] (F = S D or less after flattening) -> T [N, S, K] (fresh array)."""

    def __init__(self, codebook: np.ndarray, inputs: int) -> None:
        self.codebook = np.ascontiguousarray(codebook, f32)  # [S, K, D]
        self.s, self.k, self.d = codebook.shape
        self.inputs = inputs
        self.scratch = Scratch()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        xf = x.reshape(n, -1)
        if self.inputs != self.s * self.d:  # partial last subspace: zero-fill up to S D
            xb = self.scratch.get("xb", (n, self.s * self.d), fill=0.0)
            xb[:, :self.inputs] = xf
            xf = xb
        table = np.empty((n, self.s, self.k), f32)
        # [S, K, D] @ [N, S, D, 1] -> [N, S, K, 1]: one small GEMV per (n, s)
        np.matmul(self.codebook, xf.reshape(n, self.s, self.d, 1), out=table.reshape(n, self.s, self.k, 1))
        return table


class QFcLookup:
    """Stage 2: T [N, S, K] -> y [N, O], y[n, o] = b[o] + sum_s T[n, s, codes[o, s]]."""

    def __init__(self, codes: np.ndarray, bias: np.ndarray, k: int, rows: int = LOOKUP_ROWS) -> None:
        self.codes = np.ascontiguousarray(np.asarray(codes).T, np.uint8)  # [S, O]
        self.s, self.o = self.codes.shape
        self.base = (np.arange(self.s, dtype=np.intp) * k).reshape(self.s, 1)  # flat index of T[s, 0]
        self.bias = np.ascontiguousarray(bias, f32)
        self.rows = max(1, min(rows, self.s))
        self.scratch = Scratch()

    def __call__(self, table: np.ndarray) -> np.ndarray:
        n, s, k = table.shape
        rows, codes, base = self.rows, self.codes, self.base
        idx = self.scratch.get("idx", (rows, self.o), dtype=np.intp)
        picked = self.scratch.get("picked", (rows, self.o))
        part = self.scratch.get("part", (self.o,))
        y = np.empty((n, self.o), f32)
        for i in range(n):
            flat = table[i].reshape(-1)
            acc = y[i]
            acc[:] = self.bias
            for j in range(0, s, rows):
                m = min(rows, s - j)
                np.add(codes[j:j + m], base[j:j + m], out=idx[:m], casting="unsafe")
                np.take(flat, idx[:m], out=picked[:m], mode="wrap")
                np.add.reduce(picked[:m], axis=0, out=part)
                acc += part
        return y


class DenseQFc(FcKernel):
    """For comparison only (not the default): decode W[o, sD + d] = codebook[s, codes[o, s], d] once, then GEMV."""

    def __init__(self, params: Mapping[str, np.ndarray], inputs: int) -> None:
        from qcnn.reference import decode_fc_weight

        super().__init__(decode_fc_weight(params["codebook"], params["codes"], inputs), params["bias"])
