"""Training a Quantized-CNN from a float model (Wu et al., CVPR 2016, Sec. 3.1-3.3).

Every conv and fc layer's weights are product-quantized: the input channels (fc: inputs)
are cut into S = ceil(C/D) subspaces of D dims, each subspace gets a codebook of K
sub-codewords, and each weight sub-vector is replaced by the index of one codeword.

``method="pq"``: plain product quantization. Per subspace, k-means on the weight
sub-vectors. fc W [O, F]: subspace s clusters the O sub-vectors W[:, sD:(s+1)D].
conv W [O, C/G, k, k]: one codebook per channel subspace, shared by every kernel offset
(u, v) and group, clusters the O k^2 sub-vectors W[o, sD:(s+1)D, u, v]. A last subspace
that runs past C is zero-padded (its extra codebook components are 0).

``method="ec"`` (error correction, Sec. 3.3): starting from the pq solution, minimise the
layer's response error

    L = sum_n || T_n - sum_m (D_m B_m)^T S_n^m ||^2

by block coordinate descent, where S_n is the layer input produced by the lower layers
*already quantized*, T_n is the response of the layer in the *original float* network
(bias excluded), D_m [D, K] the codebook and B_m [K, O] the one-hot assignments of
subspace m. For conv, n also runs over (subsampled) output positions and S_n is the
im2col patch. L depends on the data only through G = sum_n S_n S_n^T, A = sum_n S_n T_n^T
and sum_n ||T_n||^2, which are accumulated in chunks; writing W [F, O] for the decoded
weights, L = tr(W^T G W) - 2 tr(W^T A) + ||T||^2. A subspace step (all blocks m of
subspace s; for conv one block per kernel offset) solves the sub-codewords by least
squares against the residual of the outputs assigned to them, then re-assigns every
(output, offset) to the best of the K codewords with the other blocks fixed. Each step
can only lower L.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Any

import numpy as np

from .errors import QcnnError
from .kmeans import kmeans
from .model import Model
from .spec import Layer, Quant

__all__ = ["quantize", "QuantizeReport", "LayerReport", "plan", "pq_layer", "check_calibration"]

METHODS = ("pq", "ec")
#: Memory budget (bytes) for one chunk of activations during the calibration passes.
CHUNK_BYTES = 1 << 27


# --------------------------------------------------------------------------- report
@dataclass
class LayerReport:
    """What happened to one layer. Errors are relative response errors ||T - Y|| / ||T||
    on the calibration data (None without calibration data)."""

    name: str
    type: str
    quant: str
    err_input: float | None = None  # float weights on the quantized lower layers' output
    err_pq: float | None = None  # the k-means (pq) solution
    err_ec: float | None = None  # after error correction (method ec only)
    seconds: float = 0.0  # the whole layer: k-means, statistics pass, error correction
    stats_seconds: float = 0.0  # of which: the pass over the calibration data
    ec_seconds: float = 0.0  # of which: the error-correction sweeps
    speedup: float = 1.0  # float / quantized multiply-adds of this layer
    compression: float = 1.0  # float / quantized bytes of this layer

    @property
    def err_final(self) -> float | None:
        return self.err_ec if self.err_ec is not None else self.err_pq


@dataclass
class QuantizeReport:
    """Per-layer reports plus whole-network theoretical speed-up and compression."""

    method: str
    samples: int
    layers: list[LayerReport] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "samples": self.samples, "seconds": self.seconds,
                "layers": [asdict(r) for r in self.layers], "totals": dict(self.totals)}

    def table(self) -> str:
        """A plain-text table, one row per quantized layer, then the totals."""
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        rows = [f"{'layer':<10} {'D:K':>7} {'err float-w':>11} {'err pq':>8} {'err ec':>8} "
                f"{'speed-up':>8} {'compr.':>7} {'sec':>7}"]
        for r in self.layers:
            rows.append(f"{r.name:<10} {r.quant:>7} {fmt(r.err_input):>11} {fmt(r.err_pq):>8} {fmt(r.err_ec):>8} "
                        f"{r.speedup:>7.2f}x {r.compression:>6.1f}x {r.seconds:>7.1f}")
        t = self.totals
        if t:
            rows.append(f"network: {t['float_macs'] / 1e6:.2f}M -> {t['quant_macs'] / 1e6:.2f}M multiply-adds "
                        f"({t['speedup']:.2f}x), {t['float_bytes'] / 1e6:.3f} MB -> {t['quant_bytes'] / 1e6:.3f} MB "
                        f"({t['compression']:.2f}x)")
        return "\n".join(rows)


# --------------------------------------------------------------------------- planning
def _parse(q: Quant | str, where: str) -> Quant:
    if isinstance(q, Quant):
        return q
    try:
        return Quant.parse(str(q))
    except QcnnError as err:
        raise QcnnError(f"{where}: {err}") from None


def subvectors(layer: Layer) -> int:
    """How many weight sub-vectors each subspace's k-means clusters: O (fc) or O k^2 (conv)."""
    return layer.out * (layer.kernel ** 2 if layer.type == "conv" else 1)


def plan(model: Model, conv: Quant | str = "8:128", fc: Quant | str = "4:32",
         layers: Mapping[str, Quant | str] | None = None, skip: Iterable[str] = ()) -> dict[str, Quant]:
    """The (D, K) of every conv/fc layer to quantize, checked against the layer sizes."""
    where = model.source or model.name
    weighted = {layer.name: layer for layer in model.spec.layers if layer.has_weights}
    skip = list(skip)
    layers = dict(layers or {})
    unknown = sorted((set(skip) | set(layers)) - set(weighted))
    if unknown:
        raise QcnnError(f"no conv or fc layer named {', '.join(unknown)} (conv/fc layers: {', '.join(weighted)})", where)
    conv_q, fc_q = _parse(conv, "--conv"), _parse(fc, "--fc")
    out: dict[str, Quant] = {}
    for name, layer in weighted.items():
        if name in skip:
            continue
        q = _parse(layers[name], f"layer {name}") if name in layers else (conv_q if layer.type == "conv" else fc_q)
        n = subvectors(layer)
        if q.K > n:
            raise QcnnError(f"layer {name}: K={q.K} codewords but only {n} weight sub-vectors per subspace "
                            f"(use K <= {n}, a --layer {name}=D:K override or --skip {name})", where)
        out[name] = q
    if not out:
        raise QcnnError("nothing to quantize: every conv/fc layer is skipped", where)
    return out


def check_calibration(model: Model, x: Any, where: str = "calibration data") -> np.ndarray:
    """Calibration inputs as float32 [N, C, H, W] matching the model input; one-line errors."""
    try:
        arr = np.asarray(x)
    except Exception as err:  # noqa: BLE001 - ragged lists and the like
        raise QcnnError(f"{where}: not an array ({type(err).__name__})") from None
    shape = tuple(model.spec.input)
    if arr.dtype.kind not in "fiu":
        raise QcnnError(f"{where}: must be numeric, got dtype {arr.dtype}")
    if arr.shape == shape:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != shape:
        raise QcnnError(f"{where}: shape {list(arr.shape)} does not match the model input; "
                        f"expected [N, {', '.join(map(str, shape))}]")
    if arr.shape[0] == 0:
        raise QcnnError(f"{where}: empty calibration set (0 samples)")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise QcnnError(f"{where}: contains NaN or Inf")
    return arr


# --------------------------------------------------------------------------- pq
def _layout(layer: Layer, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(groups G, channels per group Cg, kernel taps kk) of a conv/fc layer; fc is one 1x1 tap."""
    if layer.type == "conv":
        return layer.groups, in_shape[0] // layer.groups, layer.kernel ** 2
    return 1, prod(in_shape), 1


def pq_layer(layer: Layer, weight: np.ndarray, q: Quant, iters: int = 25,
             seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """Product-quantize one layer's float weights by k-means per subspace.

    fc: weight [O, F] -> codebook [S, K, D], codes [O, S] (S = ceil(F / D)).
    conv: weight [O, Cg, k, k] -> codebook [S, K, D] shared by all offsets and groups,
    codes [O, k, k, S]. The padded tail of the last subspace has codebook components 0.
    """
    o = weight.shape[0]
    w = weight.reshape(o, -1, 1, 1) if weight.ndim == 2 else weight
    cg, k = w.shape[1], w.shape[2]
    s = q.subspaces(cg)
    wp = np.zeros((o, s * q.D, k, k), np.float64)
    wp[:, :cg] = w
    sub = wp.transpose(0, 2, 3, 1).reshape(o * k * k, s, q.D).transpose(1, 0, 2)  # [S, O k k, D]
    codebook, labels = kmeans(sub, q.K, iters=iters, seed=seed)
    codebook = _zero_tail(codebook, cg)
    codes = labels.T.reshape(o, k, k, s) if weight.ndim == 4 else labels.T.reshape(o, s)
    return codebook.astype(np.float32), codes.astype(np.uint8)


def _zero_tail(codebook: np.ndarray, channels: int) -> np.ndarray:
    s, _, d = codebook.shape
    extra = s * d - channels
    if extra:
        codebook[-1, :, d - extra:] = 0.0
    return codebook


# --------------------------------------------------------------------------- ec statistics
class _Stats:
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


def _rows(p: np.ndarray, cpad: int) -> np.ndarray:
    """Patches [M, Cg, k, k] -> rows [M, k^2 Cpad] in tap-major layout (zero channel padding)."""
    m, cg, k, _ = p.shape
    out = np.zeros((m, k * k, cpad), np.float32)
    out[:, :, :cg] = p.transpose(0, 2, 3, 1).reshape(m, k * k, cg)
    return out.reshape(m, k * k * cpad)


def _patches(x: np.ndarray, layer: Layer, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """im2col at chosen output positions: x [N, C, H, W], rows/cols [N, P] -> [N, P, C, k, k]."""
    k, st, pad = layer.kernel, layer.stride, layer.pad
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    taps = np.arange(k)
    r = (rows[:, :, None] * st + taps)[:, :, None, :, None]
    c = (cols[:, :, None] * st + taps)[:, :, None, None, :]
    n = np.arange(x.shape[0])[:, None, None, None, None]
    ch = np.arange(x.shape[1])[None, None, :, None, None]
    return xp[n, ch, r, c]


def _positions(n: int, ho: int, wo: int, limit: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Output positions per image: all of them, or ``limit`` drawn without replacement."""
    total = ho * wo
    if limit is None or limit >= total:
        flat = np.broadcast_to(np.arange(total), (n, total))
    else:
        flat = np.argsort(rng.random((n, total)), axis=1)[:, :limit]
    return flat // wo, flat % wo


def _weight_rows(layer: Layer, weight: np.ndarray, groups: int, cpad: int) -> list[np.ndarray]:
    """Float weights as per-group W_g [F, Og] in the tap-major layout of :func:`_rows`."""
    w = weight.reshape(weight.shape[0], -1, 1, 1) if weight.ndim == 2 else weight
    og = w.shape[0] // groups
    return [_rows(w[g * og:(g + 1) * og], cpad).T.astype(np.float64) for g in range(groups)]


def _decode_rows(codebook: np.ndarray, codes: np.ndarray, groups: int) -> list[np.ndarray]:
    """codebook [S, K, D], codes [O, kk, S] -> per-group W_g [kk S D, Og] (tap-major)."""
    s = codebook.shape[0]
    dense = codebook.astype(np.float64)[np.arange(s), codes]  # [O, kk, S, D]
    flat = dense.reshape(codes.shape[0], -1)
    og = codes.shape[0] // groups
    return [np.ascontiguousarray(flat[g * og:(g + 1) * og].T) for g in range(groups)]


# --------------------------------------------------------------------------- ec solver
class _LazyGW:
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


class _Solver:
    """Block coordinate descent on L(W) = sum_g tr(W_g^T G_g W_g) - 2 tr(W_g^T A_g) + tt for
    W_g [F, Og] decoded from (codebook [S, K, D], codes [O, kk, S]), tap-major layout."""

    def __init__(self, st: _Stats, codebook: np.ndarray, codes: np.ndarray, groups: int, kk: int, cpad: int) -> None:
        self.st, self.kk, self.cpad, self.groups = st, kk, cpad, groups
        self.codebook = codebook.astype(np.float64).copy()
        self.codes = codes.copy()
        self.w = _decode_rows(self.codebook, self.codes, groups)
        self.gw = _LazyGW(st.G, self.w)
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


def ec_layer(st: _Stats, codebook: np.ndarray, codes: np.ndarray, groups: int, kk: int, cpad: int,
             iters: int, bar: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Block coordinate descent on L from (codebook [S, K, D], codes [O, kk, S]); returns the
    improved pair after ``iters`` sweeps (fewer if no assignment moved and the error stalled)."""
    solver = _Solver(st, codebook, codes, groups, kk, cpad)
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


# --------------------------------------------------------------------------- driver
def _chunk_size(model: Model) -> int:
    biggest = max(prod(s) for s in model.spec.shapes())
    return max(1, CHUNK_BYTES // (16 * biggest))


def _layer_inputs(sessions: list[Any], x: np.ndarray, index: int, names: list[str]) -> list[np.ndarray]:
    """Input of layer ``index`` from each session (the network input for the first layer)."""
    if index == 0:
        return [x for _ in sessions]
    prev = names[index - 1]
    return [sess.run(x, outputs=[prev], stop=prev)[prev] for sess in sessions]


def quantize(model: Model, calibration_inputs: Any = None, method: str = "ec", conv: Quant | str = "8:128",
             fc: Quant | str = "4:32", layers: Mapping[str, Quant | str] | None = None, skip: Iterable[str] = (),
             iters: int = 10, samples: int | None = None, seed: int = 0, backend: str = "reference",
             progress: bool = True, positions: int | None = 64, kmeans_iters: int = 25) -> tuple[Model, QuantizeReport]:
    """Quantize the conv/fc layers of a float ``model``, bottom-up.

    calibration_inputs: float [N, C, H, W] network inputs (no labels); required for
    ``method="ec"``; with ``"pq"`` they only feed the error report. ``samples`` caps N (a
    seeded random subset), ``positions`` caps the output positions per image used for conv
    statistics, ``iters`` is the number of ec sweeps. Returns the quantized Model and a
    :class:`QuantizeReport`.
    """
    from tqdm import tqdm

    from . import stats
    from .runtime import compile as qcompile

    t_start = time.perf_counter()
    where = model.source or model.name
    if method not in METHODS:
        raise QcnnError(f"unknown method {method!r} (use {' or '.join(METHODS)})")
    if model.quantized:
        done = [layer.name for layer in model.spec.layers if layer.quant is not None]
        raise QcnnError(f"already quantized (layers {', '.join(done)}); quantize needs a float model", where)
    model.validate()
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise QcnnError(f"iters must be a non-negative integer, got {iters!r}")
    if positions is not None and (isinstance(positions, bool) or not isinstance(positions, int) or positions < 1):
        raise QcnnError(f"positions must be a positive integer or None (all), got {positions!r}")
    if isinstance(kmeans_iters, bool) or not isinstance(kmeans_iters, int) or kmeans_iters < 1:
        raise QcnnError(f"kmeans_iters must be a positive integer, got {kmeans_iters!r}")
    todo = plan(model, conv, fc, layers, skip)
    rng = np.random.default_rng(seed)
    x = None
    if calibration_inputs is not None:
        x = check_calibration(model, calibration_inputs)
        if samples is not None:
            if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
                raise QcnnError(f"samples must be a positive integer, got {samples!r}")
            if samples < len(x):
                x = x[np.sort(rng.choice(len(x), samples, replace=False))]
    elif method == "ec":
        raise QcnnError("method ec needs calibration inputs")

    spec, names = model.spec, model.spec.names
    shapes = spec.shapes()
    params = {k: dict(v) for k, v in model.params.items()}
    current = model
    float_sess = qcompile(model, backend) if x is not None else None
    chunk = _chunk_size(model)
    report = QuantizeReport(method=method, samples=0 if x is None else len(x))
    overall = tqdm(total=len(todo), desc=f"quantize ({method})", unit="layer", file=sys.stderr, disable=not progress)
    for index, layer in enumerate(spec.layers):
        if layer.name not in todo:
            continue
        t0 = time.perf_counter()
        overall.set_postfix(layer=layer.name)
        q = todo[layer.name]
        groups, cg, kk = _layout(layer, shapes[index])
        S = q.subspaces(cg)
        cpad = S * q.D
        weight = params[layer.name]["weight"]
        codebook, codes = pq_layer(layer, weight, q, iters=kmeans_iters, seed=rng)
        codes_t = codes.reshape(codes.shape[0], kk, S)
        lrep = LayerReport(layer.name, layer.type, f"{q.D}:{q.K}")
        if x is not None:
            t1 = time.perf_counter()
            st = _collect(layer, shapes[index], weight, groups, cpad, current, float_sess, qcompile, backend,
                          x, index, names, chunk, positions, rng, progress, tqdm)
            lrep.stats_seconds = time.perf_counter() - t1
            lrep.err_input = st.rel_err(_weight_rows(layer, weight, groups, cpad))
            lrep.err_pq = st.rel_err(_decode_rows(codebook, codes_t, groups))
            if method == "ec" and iters > 0:
                t2 = time.perf_counter()
                bar = tqdm(total=iters, desc=f"{layer.name} ec", unit="sweep", file=sys.stderr,
                           disable=not progress, leave=False)
                codebook, codes_t = ec_layer(st, codebook, codes_t, groups, kk, cpad, iters, bar)
                bar.close()
                codebook = _zero_tail(codebook, cg)
                lrep.err_ec = st.rel_err(_decode_rows(codebook, codes_t, groups))
                lrep.ec_seconds = time.perf_counter() - t2
            elif method == "ec":
                lrep.err_ec = lrep.err_pq
        final_codes = codes_t.reshape(codes.shape).astype(np.uint8)
        params[layer.name] = {"codebook": np.ascontiguousarray(codebook, np.float32), "codes": final_codes,
                              "bias": params[layer.name]["bias"]}
        spec = spec.with_layers([lay.with_quant(q) if lay.name == layer.name else lay for lay in spec.layers])
        current = Model(spec, params, source=model.source)
        lrep.seconds = time.perf_counter() - t0
        report.layers.append(lrep)
        overall.update(1)
        if progress and lrep.err_pq is not None:
            tqdm.write(f"{layer.name} {lrep.quant}: rel. response error float-w {lrep.err_input:.4f}, "
                       f"pq {lrep.err_pq:.4f}" + (f", ec {lrep.err_ec:.4f}" if lrep.err_ec is not None else ""),
                       file=sys.stderr)
    overall.close()
    costs = {c.name: c for c in stats.layer_costs(current)}
    for r in report.layers:
        c = costs[r.name]
        r.speedup = c.float_macs / c.quant_macs if c.quant_macs else 1.0
        r.compression = c.float_bytes / c.quant_bytes if c.quant_bytes else 1.0
    report.totals = stats.totals(list(costs.values()))
    report.seconds = time.perf_counter() - t_start
    return current, report


def _collect(layer: Layer, in_shape: tuple[int, ...], weight: np.ndarray, groups: int, cpad: int, current: Model,
             float_sess: Any, qcompile: Any, backend: str, x: np.ndarray, index: int, names: list[str], chunk: int,
             positions: int | None, rng: np.random.Generator, progress: bool, tqdm: Any) -> _Stats:
    """One pass over the calibration data: the statistics of ``layer``'s response error.

    S comes from ``current`` (lower layers already quantized), T from the float network.
    """
    lower_quantized = any(lay.quant is not None for lay in current.spec.layers[:index])
    sessions = [float_sess] + ([qcompile(current, backend)] if lower_quantized else [])
    w_rows = _weight_rows(layer, weight, groups, cpad)
    kk = layer.kernel ** 2 if layer.type == "conv" else 1
    st = _Stats(groups, kk * cpad, weight.shape[0] // groups)
    bar = tqdm(total=len(x), desc=f"{layer.name} stats", unit="img", file=sys.stderr, disable=not progress,
               leave=False)
    for i in range(0, len(x), chunk):
        xs = x[i:i + chunk]
        ins = _layer_inputs(sessions, xs, index, names)
        x_f, x_q = ins[0], ins[-1]
        if layer.type == "fc":
            pf = x_f.reshape(len(xs), -1, 1, 1)
            pq = x_q.reshape(len(xs), -1, 1, 1)
            per_group = [(pf, pq)]
        else:
            _, h, wd = in_shape
            ho = (h + 2 * layer.pad - layer.kernel) // layer.stride + 1
            wo = (wd + 2 * layer.pad - layer.kernel) // layer.stride + 1
            rows, cols = _positions(len(xs), ho, wo, positions, rng)
            cg = in_shape[0] // groups
            patf = _patches(x_f, layer, rows, cols)
            patq = patf if x_q is x_f else _patches(x_q, layer, rows, cols)
            k = layer.kernel
            patf = patf.reshape(-1, in_shape[0], k, k)
            patq = patq.reshape(-1, in_shape[0], k, k)
            per_group = [(patf[:, g * cg:(g + 1) * cg], patq[:, g * cg:(g + 1) * cg]) for g in range(groups)]
        for g, (pf, pq) in enumerate(per_group):
            rf = _rows(pf, cpad)
            rq = rf if pq is pf else _rows(pq, cpad)
            st.add(g, rq, (rf.astype(np.float64) @ w_rows[g]))
        bar.update(len(xs))
    bar.close()
    return st
