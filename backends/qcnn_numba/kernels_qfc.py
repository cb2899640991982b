"""Quantized fully-connected kernels: table building and look-up accumulation.

Shapes: x [N, F] (flattened C,H,W), codebook laid out as ``cbt`` [S, D, KP]
(KP = 32 for the register look-up, zero-padded beyond K), table T [N, S, KP],
codes re-laid out in output blocks ``cblk`` [NB, S, B] (B = 256 outputs, so one
subspace's codes for a block are contiguous), bias [O], y [N, O]:

    T[n, s, k] = sum_{d < D, sD + d < F} x[n, sD + d] cb[s, k, d]
    y[n, o]    = b[o] + sum_s T[n, s, A[o, s]]      (accumulated in increasing s)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import lut32_rows64

__all__ = ["BLOCK", "block_codes", "qfc_table", "qfc_lookup_perm", "qfc_lookup_scalar"]

#: Outputs per block of the look-up (a multiple of 64).
BLOCK = 64


def block_codes(codes: np.ndarray, interleaved: bool) -> np.ndarray:
    """codes [O, S] uint8 -> [NB, S, B] (outputs padded to NB B with code 0).

    Plain: cblk[b, s, j] = A[b B + j, s]. Interleaved (for :func:`qfc_lookup_perm`): within
    each 64 outputs 16 q + l of a block, byte 4 l + q holds the code of output 16 q + l.
    """
    n_out, nsub = codes.shape
    nblk = -(-n_out // BLOCK)
    padded = np.zeros((nblk * BLOCK, nsub), np.uint8)
    padded[:n_out] = codes
    blocks = padded.reshape(nblk, BLOCK, nsub).transpose(0, 2, 1)  # [NB, S, B]
    if interleaved:
        blocks = blocks.reshape(nblk, nsub, BLOCK // 64, 4, 16).transpose(0, 1, 2, 4, 3)
    return np.ascontiguousarray(blocks).reshape(nblk, nsub, BLOCK)


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
def qfc_lookup_perm(table: np.ndarray, cblk: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """y[n, o] = b[o] + sum_s T[n, s, A[o, s]] (KP == 32, AVX-512): 64 outputs at a time in
    four registers over all subspaces, 16 look-ups per vpermi2ps."""
    n_img, nsub, kp = table.shape
    nblk, _, blk = cblk.shape
    n_out = out.shape[1]
    tf = table.ravel()
    cf = cblk.ravel()
    for b in prange(nblk):
        acc = np.empty(blk, np.float32)
        o0 = b * blk
        for n in range(n_img):
            for j in range(blk):
                acc[j] = bias[min(o0 + j, n_out - 1)]
            for q in range(0, blk, 64):
                lut32_rows64(acc, q, tf, n * nsub * kp, cf, b * nsub * blk + q, blk, nsub)
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
