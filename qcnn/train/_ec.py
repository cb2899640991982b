"""Error correction (Wu et al., CVPR 2016, Sec. 3.3): the statistics of a layer's response
error and the block coordinate descent that lowers it (see :mod:`qcnn.quantize`).

L = tr(W^T G W) - 2 tr(W^T A) + ||T||^2 with G = sum_n S_n S_n^T and A = sum_n S_n T_n^T,
accumulated in chunks; a subspace step solves its sub-codewords by least squares, then
re-assigns every (output, offset) to the best of the K codewords. Each step can only lower L.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..model._spec import Layer

__all__ = ["ResponseStats", "Solver", "ec_layer", "tap_rows", "patches", "sample_positions", "weight_rows", "decode_rows"]


class ResponseStats:
    """Sufficient statistics of one layer's response error, per group g:
    G_g = sum_n S_n S_n^T [F, F], A_g = sum_n S_n T_n^T [F, Og], tt = sum ||T_n||^2, where
    S_n is laid out tap-major: index a Cpad + c for tap a = u k + v and channel c < Cpad = S D
    (channels >= Cg are zero padding)."""

    def __init__(self, groups: int, f: int, og: int) -> None:
        self.G = [np.zeros((f, f)) for _ in range(groups)]
        self.A = [np.zeros((f, og)) for _ in range(groups)]
        self.tt = 0.0
        self.count = 0

    def add(self, g: int, s_rows: np.ndarray, t_rows: np.ndarray) -> None:
        """s_rows [M, F], t_rows [M, Og]."""
        s64 = s_rows.astype(np.float64)
        self.G[g] += s64.T @ s64
        self.A[g] += s64.T @ t_rows.astype(np.float64)
        self.tt += float(np.einsum("mo,mo->", t_rows, t_rows, dtype=np.float64))

    def loss(self, w: list[np.ndarray]) -> float:
        """L(W) = sum_g tr(W_g^T G_g W_g) - 2 tr(W_g^T A_g) + tt for W_g [F, Og]."""
        total = self.tt
        for g, wg in enumerate(w):
            total += float(np.einsum("fo,fo->", wg, self.G[g] @ wg)) - 2.0 * float(np.einsum("fo,fo->", wg, self.A[g]))
        return total

    def rel_err(self, w: list[np.ndarray]) -> float:
        """sqrt(L(W) / ||T||^2)."""
        return float(np.sqrt(max(self.loss(w), 0.0) / self.tt)) if self.tt > 0 else 0.0


def tap_rows(p: np.ndarray, cpad: int) -> np.ndarray:
    """Patches [M, Cg, k, k] -> rows [M, k^2 Cpad] in tap-major layout (zero channel padding)."""
    m, cg, k, _ = p.shape
    out = np.zeros((m, k * k, cpad), np.float32)
    out[:, :, :cg] = p.transpose(0, 2, 3, 1).reshape(m, k * k, cg)
    return out.reshape(m, k * k * cpad)


def patches(x: np.ndarray, layer: Layer, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """im2col at chosen output positions: x [N, C, H, W], rows/cols [N, P] -> [N, P, C, k, k]."""
    k, st, pad = layer.kernel, layer.stride, layer.pad
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    taps = np.arange(k)
    r = (rows[:, :, None] * st + taps)[:, :, None, :, None]
    c = (cols[:, :, None] * st + taps)[:, :, None, None, :]
    n = np.arange(x.shape[0])[:, None, None, None, None]
    ch = np.arange(x.shape[1])[None, None, :, None, None]
    return xp[n, ch, r, c]


def sample_positions(n: int, ho: int, wo: int, limit: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Output positions per image: all of them, or ``limit`` drawn without replacement."""
    total = ho * wo
    if limit is None or limit >= total:
        flat = np.broadcast_to(np.arange(total), (n, total))
    else:
        flat = np.argsort(rng.random((n, total)), axis=1)[:, :limit]
    return flat // wo, flat % wo


def weight_rows(layer: Layer, weight: np.ndarray, groups: int, cpad: int) -> list[np.ndarray]:
    """Float weights as per-group W_g [F, Og] in the tap-major layout of :func:`tap_rows`."""
    w = weight.reshape(weight.shape[0], -1, 1, 1) if weight.ndim == 2 else weight
    og = w.shape[0] // groups
    return [tap_rows(w[g * og:(g + 1) * og], cpad).T.astype(np.float64) for g in range(groups)]


def decode_rows(codebook: np.ndarray, codes: np.ndarray, groups: int) -> list[np.ndarray]:
    """codebook [S, K, D], codes [O, kk, S] -> per-group W_g [kk S D, Og] (tap-major)."""
    s = codebook.shape[0]
    dense = codebook.astype(np.float64)[np.arange(s), codes]  # [O, kk, S, D]
    flat = dense.reshape(codes.shape[0], -1)
    og = codes.shape[0] // groups
    return [np.ascontiguousarray(flat[g * og:(g + 1) * og].T) for g in range(groups)]


# --------------------------------------------------------------------------- ec solver
class LazyGW:
    """H_g = G_g W_g kept exact while W_g changes a few rows at a time.

    A change of W rows ``idx`` by ``delta`` waits in a queue; reading rows of H adds the
    queued changes' effect G[idx, queued] delta, and a full queue is applied to all of H
    with one GEMM. This turns S rank-D updates of the [F, O] matrix H per sweep into a few
    rank-256 ones (memory traffic, not flops, was the limit for fc layers).
    """

    def __init__(self, G: list[np.ndarray], W: list[np.ndarray], capacity: int = 256) -> None:
        self.G = G
        self.H = [G[g] @ W[g] for g in range(len(G))]
        self.capacity = capacity
        self.idx = [np.empty(0, np.int64) for _ in G]
        self.delta = [np.empty((0, w.shape[1])) for w in W]
        # changes wider than ``capacity`` rows are applied at once, so 2 capacity rows always suffice
        self.buf_idx = [np.empty(2 * capacity, np.int64) for _ in G]
        self.buf_delta = [np.empty((2 * capacity, w.shape[1])) for w in W]
        self.n = [0] * len(G)

    def rows(self, g: int, idx: np.ndarray) -> np.ndarray:
        """Exact (G_g W_g)[idx], [len(idx), Og]."""
        out = self.H[g][idx]
        n = self.n[g]
        if n:
            out += self.G[g][np.ix_(idx, self.buf_idx[g][:n])] @ self.buf_delta[g][:n]
        return out

    def change(self, g: int, idx: np.ndarray, delta: np.ndarray) -> None:
        """W_g[idx] has grown by delta [len(idx), Og]."""
        n, m = self.n[g], len(idx)
        if m > self.capacity:
            self.H[g] += self.G[g][:, idx] @ delta
            return
        self.buf_idx[g][n:n + m] = idx
        self.buf_delta[g][n:n + m] = delta
        self.n[g] = n + m
        if self.n[g] >= self.capacity:
            self.flush(g)

    def flush(self, g: int) -> None:
        n = self.n[g]
        if n:
            p = self.buf_idx[g][:n]
            self.H[g] += self.G[g][:, p] @ self.buf_delta[g][:n]
            self.n[g] = 0

    def full(self, g: int) -> np.ndarray:
        self.flush(g)
        return self.H[g]


class Solver:
    """Block coordinate descent on L(W) = sum_g tr(W_g^T G_g W_g) - 2 tr(W_g^T A_g) + tt for
    W_g [F, Og] decoded from (codebook [S, K, D], codes [O, kk, S]), tap-major layout."""

    def __init__(self, st: ResponseStats, codebook: np.ndarray, codes: np.ndarray, groups: int, kk: int, cpad: int) -> None:
        self.st, self.kk, self.cpad, self.groups = st, kk, cpad, groups
        self.codebook = codebook.astype(np.float64).copy()
        self.codes = codes.copy()
        self.w = decode_rows(self.codebook, self.codes, groups)
        self.gw = LazyGW(st.G, self.w)
        self.og = codes.shape[0] // groups

    def block(self, s: int, taps: Iterable[int]) -> np.ndarray:
        D = self.codebook.shape[2]
        return (np.asarray(list(taps))[:, None] * self.cpad + s * D + np.arange(D)).ravel()

    def rel_err(self) -> float:
        st = self.st
        total = st.tt
        for g, wg in enumerate(self.w):
            total += float(np.einsum("fo,fo->", wg, self.gw.full(g))) - 2.0 * float(np.einsum("fo,fo->", wg, st.A[g]))
        return float(np.sqrt(max(total, 0.0) / st.tt)) if st.tt > 0 else 0.0

    def codebook_step(self, s: int) -> None:
        """Least-squares update of subspace s's codebook (all taps jointly), then W and H follow.

        With the other subspaces fixed, P = A_s - H_s + G_ss W_s is S_s^T times the residual
        R^s; minimising over codewords c_k gives normal equations sum_l LHS[k, l] c_l = RHS[k]
        with LHS[k, l] = sum_{o, a, b: code(o,a)=k, code(o,b)=l} G_ss[a, b] (D x D blocks) and
        RHS[k] = sum_{o, a: code(o,a)=k} P[a, :, o]. A tiny ridge towards the old codewords
        keeps unused codewords and padded components where they are.
        """
        _, K, D = self.codebook.shape
        kk, og = self.kk, self.og
        idx = self.block(s, range(kk))
        lhs = np.zeros((K, D, K, D)) if kk > 1 else np.zeros((K, D, D))
        rhs = np.zeros((K, D))
        for g in range(self.groups):
            cg = self.codes[g * og:(g + 1) * og, :, s].astype(np.int64)  # [Og, kk]
            gss = self.st.G[g][np.ix_(idx, idx)]
            p = (self.st.A[g][idx] - self.gw.rows(g, idx) + gss @ self.w[g][idx]).reshape(kk, D, og)
            flat = cg.ravel()  # (o, a) order
            pw = p.transpose(2, 0, 1).reshape(-1, D)  # [(o, a), D]
            for d in range(D):
                rhs[:, d] += np.bincount(flat, weights=pw[:, d], minlength=K)
            g4 = gss.reshape(kk, D, kk, D)
            if kk == 1:
                lhs += np.bincount(flat, minlength=K)[:, None, None] * g4[0, :, 0, :]
                continue
            gab = g4.transpose(0, 2, 1, 3).reshape(kk * kk, D * D)  # [(a, b), (d, e)]
            step = max(1, (1 << 22) // (kk * kk * D * D))
            for o0 in range(0, og, step):
                c = cg[o0:o0 + step]
                pair = (c[:, :, None] * K + c[:, None, :]).reshape(-1)  # [(o, a, b)]
                vals = np.broadcast_to(gab, (c.shape[0], kk * kk, D * D)).reshape(-1, D * D)
                for de in range(D * D):
                    lhs[:, de // D, :, de % D] += np.bincount(pair, weights=vals[:, de], minlength=K * K).reshape(K, K)
        old = self.codebook[s]
        if kk == 1:
            tr = np.einsum("kdd->k", lhs)
            lam = 1e-6 * tr / D + 1e-12 * max(float(tr.max()), 1e-30)
            new = np.linalg.solve(lhs + lam[:, None, None] * np.eye(D)[None],
                                  (rhs + lam[:, None] * old)[:, :, None])[:, :, 0]
        else:
            mat = lhs.reshape(K * D, K * D)
            lam = 1e-6 * float(np.trace(mat)) / (K * D) + 1e-30
            new = np.linalg.solve(mat + lam * np.eye(K * D), (rhs + lam * old).reshape(-1)).reshape(K, D)
        self.codebook[s] = new
        for g in range(self.groups):
            dense = new[self.codes[g * og:(g + 1) * og, :, s]].reshape(og, kk * D).T  # [kk D, Og]
            delta = dense - self.w[g][idx]
            self.w[g][idx] = dense
            self.gw.change(g, idx, delta)

    def assign_step(self, s: int, a: int) -> int:
        """Best codeword for every output at tap a of subspace s, others fixed; returns #changed.

        Score of codeword c for output o: c^T G_bb c - 2 c^T P[:, o], P = A_b - H_b + G_bb W_b.
        """
        idx = self.block(s, [a])
        og = self.og
        cb = self.codebook[s]  # [K, D]
        changed = 0
        for g in range(self.groups):
            gbb = self.st.G[g][np.ix_(idx, idx)]
            p = self.st.A[g][idx] - self.gw.rows(g, idx) + gbb @ self.w[g][idx]  # [D, Og]
            q = np.einsum("kd,de,ke->k", cb, gbb, cb)
            best = (q[:, None] - 2.0 * cb @ p).argmin(axis=0)
            rows = slice(g * og, (g + 1) * og)
            moved = np.nonzero(best != self.codes[rows, a, s])[0]
            if moved.size:
                new = cb[best].T  # [D, Og]
                delta = new - self.w[g][idx]
                self.w[g][idx] = new
                self.gw.change(g, idx, delta)
                self.codes[rows, a, s] = best
                changed += int(moved.size)
        return changed

    def sweep(self) -> int:
        """One pass over all subspaces: codebook update, then per-tap assignments. Returns #moved."""
        changed = 0
        for s in range(self.codebook.shape[0]):
            self.codebook_step(s)
            for a in range(self.kk):
                changed += self.assign_step(s, a)
        return changed


def ec_layer(st: ResponseStats, codebook: np.ndarray, codes: np.ndarray, groups: int, kk: int, cpad: int,
             iters: int, bar: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Block coordinate descent on L from (codebook [S, K, D], codes [O, kk, S]); returns the
    improved pair after ``iters`` sweeps (fewer if no assignment moved and the error stalled)."""
    solver = Solver(st, codebook, codes, groups, kk, cpad)
    last = solver.rel_err()
    for _ in range(iters):
        moved = solver.sweep()
        err = solver.rel_err()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(err=f"{err:.4f}", moved=moved)
        if moved == 0 and last - err <= 1e-7 * last:
            break
        last = err
    return solver.codebook.astype(np.float32), solver.codes
