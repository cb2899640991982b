"""Max pool, ReLU, LRN, dropout and softmax as parallel numba loops (NCHW float32).

* pool: Ho = ceil((H + 2p - k) / st) + 1; window i covers rows [i st - p, i st - p + k)
  clipped to [0, H) (padding never wins). Computed separably: a vertical max into one row
  buffer (contiguous, vectorised), then the horizontal max.
* LRN: y_c = x_c (k + alpha/n sum_{|c'-c| <= r} x_{c'}^2)^(-beta), channels outside [0, C)
  count 0. The power is sqrt-based for beta in {0.5, 0.75, 1} (vectorisable, within an ulp
  of exp(-beta ln s)), exp/log otherwise.
* softmax: exp(x - max) / sum, per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .simd import pow_m075

__all__ = ["max_pool", "relu", "lrn", "copy", "softmax"]


@njit(cache=True, parallel=True)
def max_pool(x: np.ndarray, k: int, st: int, pad: int, out: np.ndarray) -> None:
    """x [N, C, H, W] -> out [N, C, Ho, Wo].

    Per output row: the vertical max of its clipped input rows into ``vmax`` [W], then the
    max of every full k-window of ``vmax`` at full resolution (k contiguous passes), read at
    the strided window starts; windows clipped by the edge are done one by one.
    """
    n_img, ch, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    nfull = w - k + 1  # windows [c, c + k) inside the row
    for job in prange(n_img * ch):
        n = job // ch
        c = job % ch
        vmax = np.empty(w, np.float32)
        hmax = np.empty(max(nfull, 1), np.float32)
        for i in range(ho):
            r0 = max(i * st - pad, 0)
            r1 = min(i * st - pad + k, h)
            if r0 >= r1:  # a window entirely in the padding (possible with ceil rounding): -inf
                for j in range(w):
                    vmax[j] = -np.inf
            else:
                first = x[n, c, r0]
                for j in range(w):
                    vmax[j] = first[j]
            for r in range(r0 + 1, r1):
                src = x[n, c, r]
                for j in range(w):
                    v = src[j]
                    vmax[j] = v if v > vmax[j] else vmax[j]
            if nfull > 0:
                for j in range(nfull):
                    hmax[j] = vmax[j]
                for q in range(1, k):
                    seg = vmax[q:q + nfull]
                    for j in range(nfull):
                        v = seg[j]
                        hmax[j] = v if v > hmax[j] else hmax[j]
            dst = out[n, c, i]
            for j in range(wo):
                c0 = j * st - pad
                if c0 >= 0 and c0 + k <= w:
                    dst[j] = hmax[c0]
                else:
                    lo = max(c0, 0)
                    hi = min(c0 + k, w)
                    m = np.float32(-np.inf)
                    for q in range(lo, hi):
                        v = vmax[q]
                        m = v if v > m else m
                    dst[j] = m


@njit(cache=True, parallel=True)
def relu(x: np.ndarray, out: np.ndarray) -> None:
    """out = max(0, x), flat arrays (NaN passes through)."""
    size = x.shape[0]
    chunk = 16384
    for b in prange((size + chunk - 1) // chunk):
        src = x[b * chunk:min(size, (b + 1) * chunk)]  # views indexed from 0: vectorised loops
        dst = out[b * chunk:min(size, (b + 1) * chunk)]
        for i in range(src.shape[0]):
            v = src[i]
            dst[i] = np.float32(0.0) if v < 0 else v


@njit(cache=True, parallel=True)
def copy(x: np.ndarray, out: np.ndarray) -> None:
    """out = x, flat arrays (test-time dropout)."""
    size = x.shape[0]
    chunk = 65536
    for b in prange((size + chunk - 1) // chunk):
        src = x[b * chunk:min(size, (b + 1) * chunk)]
        dst = out[b * chunk:min(size, (b + 1) * chunk)]
        for i in range(src.shape[0]):
            dst[i] = src[i]


@njit(cache=True, parallel=True)
def lrn(x: np.ndarray, size: int, alpha_n: float, beta: float, kk: float, out: np.ndarray) -> None:
    """x [N, C, L] -> out [N, C, L]; alpha_n = alpha / size (float32 math). Portable power."""
    n_img, ch, length = x.shape
    r = (size - 1) // 2
    a32 = np.float32(alpha_n)
    k32 = np.float32(kk)
    mode = 0 if beta == 0.75 else (1 if beta == 0.5 else (2 if beta == 1.0 else 3))
    nb32 = np.float32(-beta)
    for job in prange(n_img * ch):
        n = job // ch
        c = job % ch
        acc = _window_scale(x, n, c, r, a32, k32)
        src = x[n, c]
        dst = out[n, c]
        if mode == 0:
            for j in range(length):
                q = np.sqrt(acc[j])
                dst[j] = src[j] / (q * np.sqrt(q))
        elif mode == 1:
            for j in range(length):
                dst[j] = src[j] / np.sqrt(acc[j])
        elif mode == 2:
            for j in range(length):
                dst[j] = src[j] / acc[j]
        else:
            for j in range(length):
                dst[j] = src[j] * np.float32(math.exp(nb32 * math.log(acc[j])))


@njit(cache=True, parallel=True)
def lrn_avx512_075(x: np.ndarray, size: int, alpha_n: float, kk: float, out: np.ndarray) -> None:
    """LRN with beta = 0.75 through ``simd.pow_m075`` (AVX-512F only) on whole 16-float
    vectors, the sqrt form on the last L % 16 positions. x, out [N, C, L]."""
    n_img, ch, length = x.shape
    r = (size - 1) // 2
    a32 = np.float32(alpha_n)
    k32 = np.float32(kk)
    of = out.ravel()
    xf = x.ravel()
    for job in prange(n_img * ch):
        n = job // ch
        c = job % ch
        acc = _window_scale(x, n, c, r, a32, k32)
        nfull = length // 16
        pow_m075(of, (n * ch + c) * length, xf, acc, nfull)
        src = x[n, c, nfull * 16:]
        dst = out[n, c, nfull * 16:]
        tail = acc[nfull * 16:]
        for j in range(length - nfull * 16):
            q = np.sqrt(tail[j])
            dst[j] = src[j] / (q * np.sqrt(q))


@njit(cache=True, inline="always")
def _window_scale(x: np.ndarray, n: int, c: int, r: int, a32: np.float32, k32: np.float32) -> np.ndarray:
    """k + alpha/size * sum_{|c' - c| <= r} x[n, c']^2, a fresh [L] float32 array."""
    ch, length = x.shape[1], x.shape[2]
    acc = np.zeros(length, np.float32)
    for cc in range(max(c - r, 0), min(c + r + 1, ch)):
        src = x[n, cc]
        for j in range(length):
            acc[j] += src[j] * src[j]
    for j in range(length):
        acc[j] = k32 + a32 * acc[j]
    return acc


@njit(cache=True)
def softmax(x: np.ndarray, out: np.ndarray) -> None:
    """x [N, M] -> out [N, M] = exp(x - max) / sum exp(x - max), per row."""
    for n in range(x.shape[0]):
        row = x[n]
        m = row[0]
        for j in range(row.shape[0]):
            m = max(m, row[j])
        total = 0.0
        for j in range(row.shape[0]):
            e = np.float32(math.exp(row[j] - m))
            out[n, j] = e
            total += e
        inv = np.float32(total)
        for j in range(row.shape[0]):
            out[n, j] = out[n, j] / inv
