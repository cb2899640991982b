"""Quantized fully-connected kernels: table building and look-up accumulation.

Shapes: x [N, F] (flattened C,H,W), codebook laid out as ``cbt`` [S, D, KP]
(KP = 16 for K <= 16 and 32 for K <= 32 with the register look-ups, zero-padded beyond K), table T [N, S, KP], bias [O],
y [N, O]:

    T[n, s, k] = sum_{d < D, sD + d < F} x[n, sD + d] cb[s, k, d]
    y[n, o]    = b[o] + sum_s T[n, s, A[o, s]]      (accumulated in increasing s)

Look-ups: with AVX-512 and K <= 32 the codes are bit-packed (5 bits, six per 32-bit word;
4 bits, eight per word for K <= 16) and looked up 16 at a time in registers
(``simd.lut32_packed``/``lut16_packed``, prefetching ahead along the codes): the fc6 codes stream
5.3 bits per weight instead of 8.
Otherwise a portable scalar loop over codes in blocks [NB, S, 64] of 64 outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import PACK16, PACK32, lut16_packed, lut32_packed

__all__ = ["BLOCK", "block_codes", "pack_codes", "qfc_table", "qfc_lookup_packed", "qfc_lookup_scalar"]

#: Outputs per block of the portable look-up.
BLOCK = 64


def block_codes(codes: np.ndarray) -> np.ndarray:
    """codes [O, S] uint8 -> [NB, S, 64], cblk[b, s, j] = A[64 b + j, s] (outputs padded with code 0)."""
    n_out, nsub = codes.shape
    nblk = -(-n_out // BLOCK)
    padded = np.zeros((nblk * BLOCK, nsub), np.uint8)
    padded[:n_out] = codes
    return np.ascontiguousarray(padded.reshape(nblk, BLOCK, nsub).transpose(0, 2, 1))


def pack_codes(codes: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """codes [O, S] (< k <= 32) -> (packed [NB, S, 16] uint32, outputs per block B = 16 per_word):
    word l of block b, subspace s holds A[b B + 16 q + l, s] in bits [q bits, (q + 1) bits)."""
    per_word, bits = PACK16 if k <= 16 else PACK32
    n_out, nsub = codes.shape
    blk = 16 * per_word
    nblk = -(-n_out // blk)
    padded = np.zeros((nblk * blk, nsub), np.uint32)
    padded[:n_out] = codes
    fields = padded.reshape(nblk, per_word, 16, nsub).transpose(0, 3, 2, 1)  # [NB, S, 16 (l), per_word (q)]
    shifts = (np.arange(per_word, dtype=np.uint32) * np.uint32(bits))
    packed = np.bitwise_or.reduce(fields << shifts, axis=3)
    return np.ascontiguousarray(packed, dtype=np.uint32), blk


@njit(cache=True, parallel=True)
def qfc_table(x: np.ndarray, cbt: np.ndarray, nfeat: int, out: np.ndarray) -> None:
    """out[n, s, :] = sum_d x[n, sD + d] * cbt[s, d, :], vectorised over the KP entries."""
    n_img = x.shape[0]
    nsub, dim, kp = cbt.shape
    for job in prange(n_img * nsub):
        n = job // nsub
        s = job % nsub
        deff = min(dim, nfeat - s * dim)
        t = out[n, s]
        x0 = x[n, s * dim]
        for k in range(kp):
            t[k] = x0 * cbt[s, 0, k]
        for d in range(1, deff):
            xd = x[n, s * dim + d]
            for k in range(kp):
                t[k] += xd * cbt[s, d, k]


@njit(cache=True, parallel=True)
def qfc_lookup_packed(table: np.ndarray, packed: np.ndarray, blk: int, bias: np.ndarray, out: np.ndarray) -> None:
    """y[n, o] = b[o] + sum_s T[n, s, A[o, s]] on bit-packed codes (AVX-512; KP == 16 or 32):
    ``blk`` = 96 (5-bit codes, K <= 32) or 128 (4-bit, K <= 16) outputs per job, in registers."""
    n_img, nsub, kp = table.shape
    nblk = packed.shape[0]
    n_out = out.shape[1]
    tf = table.ravel()
    cf = packed.ravel()
    for b in prange(nblk):
        acc = np.empty(blk, np.float32)
        o0 = b * blk
        for n in range(n_img):
            for j in range(blk):
                acc[j] = bias[min(o0 + j, n_out - 1)]
            if blk == 128:
                lut16_packed(acc, 0, tf, n * nsub * kp, cf, b * nsub * 16, 16, nsub)
            else:
                lut32_packed(acc, 0, tf, n * nsub * kp, cf, b * nsub * 16, 16, nsub)
            for j in range(min(blk, n_out - o0)):
                out[n, o0 + j] = acc[j]


@njit(cache=True, parallel=True)
def qfc_lookup_scalar(table: np.ndarray, cblk: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """Portable look-up (any K, any CPU): the same sums in the same order as :func:`qfc_lookup_perm`."""
    n_img, nsub, kp = table.shape
    nblk, _, blk = cblk.shape
    n_out = out.shape[1]
    for b in prange(nblk):
        acc = np.empty((n_img, blk), np.float32)
        o0 = b * blk
        for n in range(n_img):
            for j in range(blk):
                acc[n, j] = bias[min(o0 + j, n_out - 1)]
        for s in range(nsub):
            codes = cblk[b, s]
            for n in range(n_img):
                t = table[n, s]
                a = acc[n]
                for j in range(blk):
                    a[j] += t[codes[j]]
        for n in range(n_img):
            for j in range(min(blk, n_out - o0)):
                out[n, o0 + j] = acc[n, j]
