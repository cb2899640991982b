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
from tqdm import tqdm

from .._errors import QcnnError
from .._runtime import compile as qcompile
from ..model import _costs as stats
from ..model._model import Model
from ..model._spec import Layer, Quant
from ._ec import ResponseStats, decode_rows, ec_layer, patches, sample_positions, tap_rows, weight_rows
from ._kmeans import kmeans

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
            lrep.err_input = st.rel_err(weight_rows(layer, weight, groups, cpad))
            lrep.err_pq = st.rel_err(decode_rows(codebook, codes_t, groups))
            if method == "ec" and iters > 0:
                t2 = time.perf_counter()
                bar = tqdm(total=iters, desc=f"{layer.name} ec", unit="sweep", file=sys.stderr,
                           disable=not progress, leave=False)
                codebook, codes_t = ec_layer(st, codebook, codes_t, groups, kk, cpad, iters, bar)
                bar.close()
                codebook = _zero_tail(codebook, cg)
                lrep.err_ec = st.rel_err(decode_rows(codebook, codes_t, groups))
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
             positions: int | None, rng: np.random.Generator, progress: bool, tqdm: Any) -> ResponseStats:
    """One pass over the calibration data: the statistics of ``layer``'s response error.

    S comes from ``current`` (lower layers already quantized), T from the float network.
    """
    lower_quantized = any(lay.quant is not None for lay in current.spec.layers[:index])
    sessions = [float_sess] + ([qcompile(current, backend)] if lower_quantized else [])
    w_rows = weight_rows(layer, weight, groups, cpad)
    kk = layer.kernel ** 2 if layer.type == "conv" else 1
    st = ResponseStats(groups, kk * cpad, weight.shape[0] // groups)
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
            rows, cols = sample_positions(len(xs), ho, wo, positions, rng)
            cg = in_shape[0] // groups
            patf = patches(x_f, layer, rows, cols)
            patq = patf if x_q is x_f else patches(x_q, layer, rows, cols)
            k = layer.kernel
            patf = patf.reshape(-1, in_shape[0], k, k)
            patq = patq.reshape(-1, in_shape[0], k, k)
            per_group = [(patf[:, g * cg:(g + 1) * cg], patq[:, g * cg:(g + 1) * cg]) for g in range(groups)]
        for g, (pf, pq) in enumerate(per_group):
            rf = tap_rows(pf, cpad)
            rq = rf if pq is pf else tap_rows(pq, cpad)
            st.add(g, rq, (rf.astype(np.float64) @ w_rows[g]))
        bar.update(len(xs))
    bar.close()
    return st
