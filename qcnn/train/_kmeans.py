"""Batched k-means: many independent small clustering problems at once, distances by BLAS.

Product quantization clusters every subspace on its own, so the data come as a stack
X [B, N, D] (B problems of N points in D dims) and the result is centers [B, K, D] and
labels [B, N]. Squared distances use ||x||^2 - 2 x.c + ||c||^2, so the heavy work is one
batched matrix product [B, N, D] x [B, D, K] per iteration.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans", "assign"]


def _sqdist(x: np.ndarray, c: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """x [B, N, D], c [B, K, D], x2 = ||x||^2 [B, N] -> squared distances [B, N K] (clipped at 0)."""
    d = _scores(x, c)
    d += x2[:, :, None]
    return np.maximum(d, 0.0, out=d)


def _scores(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """||c||^2 - 2 x.c [B, N, K]: the squared distance up to the per-point constant ||x||^2.

    One contiguous batched GEMM (a transposed view would make numpy skip BLAS).
    """
    ct = np.ascontiguousarray(c.transpose(0, 2, 1) * -2.0, dtype=x.dtype)
    d = np.matmul(x, ct)
    d += np.einsum("bkd,bkd->bk", c, c).astype(x.dtype)[:, None, :]
    return d


def assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest center of every point: x [B, N, D], centers [B, K, D] -> labels [B, N] (int64)."""
    return _scores(x, centers).argmin(axis=2)


def _plusplus(x: np.ndarray, x2: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), batched: x [B, N, D] -> centers [B, K, D].

    Each next center is drawn with probability proportional to the squared distance to
    the nearest center chosen so far.
    """
    b, n, _ = x.shape
    rows = np.arange(b)
    centers = np.empty((b, k, x.shape[2]), x.dtype)
    first = rng.integers(0, n, size=b)
    centers[:, 0] = x[rows, first]
    best = _sqdist(x, centers[:, :1], x2)[:, :, 0]  # [B, N]
    for j in range(1, k):
        total = best.sum(axis=1)
        cum = np.cumsum(best, axis=1)
        r = rng.random(b) * total
        pick = (cum < r[:, None]).sum(axis=1)
        # all points already on a center (duplicates): fall back to a uniform draw
        pick = np.where(total > 0, np.minimum(pick, n - 1), rng.integers(0, n, size=b))
        centers[:, j] = x[rows, pick]
        best = np.minimum(best, _sqdist(x, centers[:, j:j + 1], x2)[:, :, 0])
    return centers


#: Problems are solved in batches of at most this many distance entries (B N K).
_BATCH_ENTRIES = 1 << 20


def kmeans(x: np.ndarray, k: int, iters: int = 30, seed: int | np.random.Generator = 0,
           init: str = "k-means++") -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on B independent problems.

    x [B, N, D] (N >= k) -> (centers [B, K, D] float32, labels [B, N] int64), minimising
    sum_b sum_n ||x[b, n] - centers[b, labels[b, n]]||^2. ``init`` is ``"k-means++"`` or
    ``"random"`` (k distinct points). A cluster that empties is re-seeded with the point
    farthest from its center. Stops early when no label changes.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    b, n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= K <= N, got K={k}, N={n}")
    step = max(1, _BATCH_ENTRIES // (n * k))
    parts = [_kmeans(np.ascontiguousarray(x[i:i + step], dtype=np.float64), k, iters, rng, init)
             for i in range(0, b, step)]
    return (np.concatenate([p[0] for p in parts]).astype(np.float32), np.concatenate([p[1] for p in parts]))


def _kmeans(x: np.ndarray, k: int, iters: int, rng: np.random.Generator, init: str) -> tuple[np.ndarray, np.ndarray]:
    b, n, d = x.shape
    x2 = np.einsum("bnd,bnd->bn", x, x)
    if init == "k-means++":
        centers = _plusplus(x, x2, k, rng)
    elif init == "random":
        idx = np.argsort(rng.random((b, n)), axis=1)[:, :k]
        centers = x[np.arange(b)[:, None], idx]
    else:
        raise ValueError(f"unknown k-means init {init!r}")
    labels = np.full((b, n), -1, np.int64)
    rows = np.arange(b)[:, None]
    for _ in range(max(iters, 1)):
        score = _scores(x, centers)
        new = score.argmin(axis=2)
        if np.array_equal(new, labels):
            break
        labels = new
        # centers = per-cluster means, via one-hot counts and sums
        flat = (labels + rows * k).ravel()
        counts = np.bincount(flat, minlength=b * k).reshape(b, k)
        xf = x.reshape(b * n, d)
        sums = np.stack([np.bincount(flat, weights=xf[:, j], minlength=b * k) for j in range(d)], axis=1)
        sums = sums.reshape(b, k, d)
        empty = counts == 0
        centers = np.where(empty[:, :, None], centers, sums / np.maximum(counts, 1)[:, :, None])
        if empty.any():
            err = np.take_along_axis(score, labels[:, :, None], axis=2)[:, :, 0] + x2
            for bi, ki in zip(*np.nonzero(empty)):
                far = int(err[bi].argmax())
                centers[bi, ki] = x[bi, far]
                err[bi, far] = -1.0
    return centers, assign(x, centers)
