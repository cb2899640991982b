"""Prepared layers: weights re-laid out once, then a kernel callable per layer.

:func:`op_table` maps each op to its builder. Every builder takes the layer, its tensors,
the input and the output shape (no batch axis; the runtime computes the output shape) and
returns a kernel ``x [N, *in_shape] float32 -> y [N, *out_shape]``. The runtime has checked
x (float32, C-contiguous, [N, *in_shape], N >= 1) before a kernel runs, and the kernels rely
on it (numba indexes without bounds checks). Quantized layers return
:class:`qcnn.plugin.StagedKernel` s (table building, then look-up; quantized convs also a
fused call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import numpy as np

from qcnn.plugin import Kernel, Layer, Prepare, QcnnError, StagedKernel

from . import kernels_conv as kc
from . import kernels_misc as km
from . import kernels_qconv as kq
from . import kernels_qfc as kf
from .config import NumbaConfig
from .simd import HAS_AVX512

__all__ = ["conv_band", "op_table"]

f32 = np.float32
Shape = tuple[int, ...]
Params = Mapping[str, np.ndarray]

#: Bytes of L2 a look-up job may fill with its accumulators plus one (s, phase) table slice.
L2_BUDGET = 1_400_000
_SLACK = 32  # floats after a conv table: the look-up reads whole 16-float vectors (one ahead when rotated)


def _c32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=f32)


def _aligned64(size: int, zero: bool = True) -> np.ndarray:
    """float32 [size] (zeroed unless ``zero`` is False) starting on a 64-byte boundary: rows a whole
    number of 16-float vectors apart then load and store without cache-line splits."""
    buf = (np.zeros if zero else np.empty)(size + 16, f32)
    b0 = (-(buf.ctypes.data // 4)) % 16
    return buf[b0:b0 + size]


def op_table(config: NumbaConfig, threads: Callable[[], int]) -> dict[str, Prepare]:
    """The builder of each op the backend has a kernel for (others are declined: the runtime
    runs the reference kernel). ``threads()`` is the thread count a kernel splits its work for,
    read at each call."""
    return {
        "conv": _conv,
        "qconv": partial(_qconv, config=config, threads=threads),
        "fc": _fc,
        "qfc": _qfc,
        "pool": _pool,
        "relu": partial(_elementwise, km.relu),
        "dropout": partial(_elementwise, km.copy),
        "lrn": _lrn,
        "softmax": _softmax,
    }


# ---------------------------------------------------------------------------------------- float

def _conv(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    """im2col (numba) + one SGEMM per group (BLAS): y_g [O/G, Ho Wo] = W_g [O/G, Cg k k] @ cols_g."""
    c = in_shape[0]
    k, st, pad, groups = layer.kernel, layer.stride, layer.pad, layer.groups
    weight = _c32(params["weight"])
    n_out = weight.shape[0]
    og, cg = n_out // groups, c // groups
    wmat = weight.reshape(groups, og, cg * k * k)
    bias = _c32(params["bias"])
    _, ho, wo = out_shape
    direct = k == 1 and st == 1 and pad == 0

    def kernel(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        y = np.empty((n, n_out, ho * wo), f32)
        cols = None if direct else np.empty((c * k * k, ho * wo), f32)
        for i in range(n):
            if direct:
                src = x[i].reshape(c, ho * wo)
            else:
                kc.im2col(x[i], k, st, pad, ho, wo, cols)
                src = cols
            for g in range(groups):
                np.matmul(wmat[g], src[g * cg * k * k:(g + 1) * cg * k * k], out=y[i, g * og:(g + 1) * og])
        kc.add_bias_planes(y, bias)
        return y.reshape(n, n_out, ho, wo)

    return kernel


def _fc(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    """y [N, O] = x [N, F] @ W^T + b (SGEMM in BLAS, bias in numba)."""
    weight = _c32(params["weight"])
    bias = _c32(params["bias"])

    def kernel(x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(len(x), -1)
        y = np.empty((x2.shape[0], *out_shape), f32)
        np.matmul(x2, weight.T, out=y)
        kc.add_bias_rows(y, bias)
        return y

    return kernel


# ------------------------------------------------------------------------------------ quantized

def conv_band(block: int, ncode: int, ho: int, wq: int, qmax: int) -> int:
    """Output rows per band so that a job's accumulators [block, band Wq] plus one table slice
    [K, band + qmax, Wq] fit :data:`L2_BUDGET` (at least 1 row)."""
    per_row = 4 * wq * (block + ncode)
    rows = int(min(ho, max(1, (L2_BUDGET - 4 * wq * ncode * qmax) // max(per_row, 1))))
    return -(-ho // -(-ho // rows))  # balanced: equal bands rather than a short last one


def _qconv(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape, *, config: NumbaConfig,
           threads: Callable[[], int]) -> StagedKernel:
    """Quantized conv: table(x) -> the flat LUT [N, G, S, K, PS] (+ slack), lookup(T) -> y [N, O, Ho, Wo].

    ``fused`` (what calling the kernel runs) builds the LUT one (subspace, phase, row band)
    tile at a time, right before the look-ups that read it, so the table never leaves L2: the
    same sums in the same order as the stages, bit for bit. Narrow stride-1 layers take the
    band path instead (:func:`_band_path`; bit for bit too unless ``config.band_rotate``).
    ``fused.schedule`` names the look-up that runs: ``rows-rotated`` / ``rows-shifted`` (the
    tiled row path with or without ``config.grid_rotate``), ``band-rotated`` / ``band-shifted``."""
    c, h, w = in_shape
    k, st, pad, groups = layer.kernel, layer.stride, layer.pad, layer.groups
    cb = _c32(params["codebook"])
    codes = np.asarray(params["codes"], dtype=np.uint8)
    bias = _c32(params["bias"])
    nsub, ncode, _ = cb.shape
    n_out = codes.shape[0]
    og = n_out // groups
    hp, wp = h + 2 * pad, w + 2 * pad
    hq, wq = -(-hp // st), -(-wp // st)
    nph = st * st
    _, ho, wo = out_shape
    band_path = st == 1 and wq <= 16
    # per phase (py, px): a grid of row shifts u // st (u = py, py + st, ..) x column shifts
    grid = np.array([[len(range(py, k, st)), len(range(px, k, st))] for py in range(st) for px in range(st)],
                    np.int64)
    rotated = bool(config.grid_rotate and not band_path and grid.max() <= kq.GRID_MAX)
    if rotated:
        wq = -(-wq // 16) * 16  # whole vectors per row: every window start aligned
    else:
        grid[:] = 0
    # taps sorted by phase (then v-major when rotated); codes re-laid out [O, S, taps] in that order
    taps = sorted(((u % st) * st + v % st, v if rotated else u, u if rotated else v)
                  for u in range(k) for v in range(k))
    tap_u = np.array([t[2 if rotated else 1] for t in taps], np.int64)
    tap_v = np.array([t[1 if rotated else 2] for t in taps], np.int64)
    tap_off = np.ascontiguousarray((tap_u // st) * wq + (0 if rotated else tap_v // st), dtype=np.int64)
    ph_start = np.searchsorted(np.array([t[0] for t in taps]), np.arange(nph + 1)).astype(np.int64)
    codes_t = np.ascontiguousarray(codes[:, tap_u, tap_v, :].transpose(0, 2, 1))  # [O, S, T]
    qmax = (k - 1) // st

    plen = nph * hq * wq
    pstride = -(-plen // 16) * 16  # table planes padded to whole vectors
    per_image = groups * nsub * ncode * pstride

    def split(x: np.ndarray) -> np.ndarray:
        """x -> xph flat [N, C, P, Hq Wq] + slack (zero padding)."""
        n = x.shape[0]
        flat = _aligned64(n * c * plen + _SLACK)
        kq.phase_split(x, pad, st, hq, wq, flat[:n * c * plen].reshape(n, c, nph, hq * wq))
        return flat

    def table(x: np.ndarray) -> np.ndarray:
        n = len(x)
        xph = split(x)
        out = _aligned64(n * per_image + _SLACK, zero=False)
        out[-_SLACK:] = 0.0  # read only into dropped lanes, but keep it finite
        kq.qconv_table(xph, np.array([n, c, groups, plen, pstride], np.int64), cb, out)
        return out

    def blocking(n: int) -> tuple[int, int]:
        jobs_per_block = max(1, -(-threads() // (n * groups)))
        block = -(-og // jobs_per_block)
        return block, conv_band(block, ncode, ho, wq, qmax)

    def lookup(t: np.ndarray) -> np.ndarray:
        n = (t.size - _SLACK) // per_image if isinstance(t, np.ndarray) else 0
        if not (n >= 1 and t.dtype == f32 and t.ndim == 1 and t.flags.c_contiguous
                and t.size == n * per_image + _SLACK):
            raise QcnnError(f"layer {layer.name}: look-up needs the table this layer's table() built")
        block, band = blocking(n)
        dims = np.array([n, groups, nsub, ncode, nph, hq * wq, wq, pstride], np.int64)
        y = np.empty((n, n_out, ho, wo), f32)
        kq.qconv_lookup(t, dims, codes_t, tap_off, ph_start, grid, bias, block, band, y)
        return y

    def fused(x: np.ndarray) -> np.ndarray:
        n = len(x)
        block, band = blocking(n)
        y = np.empty((n, n_out, ho, wo), f32)
        kq.qconv_fused(split(x), np.array([n, c, groups, nph, hq, wq, qmax], np.int64), cb, codes_t, tap_off,
                       ph_start, grid, bias, block, band, y)
        return y

    if band_path:
        band = _band_path(layer, in_shape, out_shape, cb, codes_t, bias, config, threads)
        return StagedKernel(table, lookup, fused=band)
    fused.schedule = "rows-rotated" if rotated else "rows-shifted"  # type: ignore[attr-defined]  # for tests
    return StagedKernel(table, lookup, fused=fused)


def _band_path(layer: Layer, in_shape: Shape, out_shape: Shape, cb: np.ndarray, codes_t: np.ndarray,
               bias: np.ndarray, config: NumbaConfig, threads: Callable[[], int]) -> Kernel:
    """Narrow stride-1 quantized conv (padded rows fit one 16-float vector): x -> y [N, O, Ho, Wo]
    by :func:`kernels_qconv.qconv_band`; codes_t [O, S, k k] (taps row-major) become flat offsets
    into a band's table tile, one set per band height of at most ``config.band_rows`` rows (taps
    v-major and no column shift when the tiles are rotated: ``config.band_rotate``, k <= 5)."""
    c, h, _ = in_shape
    k, pad, groups = layer.kernel, layer.pad, layer.groups
    hq = h + 2 * pad
    _, ho, wo = out_shape
    n_out = codes_t.shape[0]
    band_rows = config.band_rows
    rotated = bool(config.band_rotate and k <= 5)
    if rotated:  # v-major taps, aligned window starts
        order = np.array([u * k + v for v in range(k) for u in range(k)], np.int64)
        codes_t = codes_t[:, :, order]
        tap = np.array([u * 16 for v in range(k) for u in range(k)], np.int64)
    else:
        tap = np.array([u * 16 + v for u in range(k) for v in range(k)], np.int64)
    dims = np.array([c, groups, hq, k], np.int64)
    offs_by_bo: dict[int, np.ndarray] = {}

    def kernel(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        bands = max(1, -(-threads() // n))
        bo = max(1, min(band_rows, -(-ho // bands)))
        if bo not in offs_by_bo:
            tstride = np.int32((bo + k - 1) * 16)  # int32: a quarter of the bytes streamed per band
            offs_by_bo[bo] = np.ascontiguousarray(codes_t.astype(np.int32) * tstride + tap.astype(np.int32))
        flat = _aligned64(n * c * hq * 16 + _SLACK)
        kq.phase_split(x, pad, 1, hq, 16, flat[:n * c * hq * 16].reshape(n, c, 1, hq * 16))
        y = np.empty((n, n_out, ho, wo), f32)
        kq.qconv_band(flat, dims, cb, offs_by_bo[bo], bias, bo, rotated, y)
        return y

    kernel.schedule = "band-rotated" if rotated else "band-shifted"  # type: ignore[attr-defined]  # for tests
    return kernel


def _qfc(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> StagedKernel:
    cb = _c32(params["codebook"])
    codes = np.asarray(params["codes"], dtype=np.uint8)
    bias = _c32(params["bias"])
    nsub, ncode, dim = cb.shape
    nfeat = int(np.prod(in_shape))
    packed_path = HAS_AVX512 and ncode <= 32
    kp = (16 if ncode <= 16 else 32) if packed_path else ncode  # table row: one or two registers
    cbt = np.zeros((nsub, dim, kp), f32)
    cbt[:, :, :ncode] = cb.transpose(0, 2, 1)
    if packed_path:
        packed, blk = kf.pack_codes(codes, ncode)

        def run_lookup(t: np.ndarray, y: np.ndarray) -> None:
            kf.qfc_lookup_packed(t, packed, blk, bias, y)
    else:
        cblk = kf.block_codes(codes)  # [NB, S, 64]

        def run_lookup(t: np.ndarray, y: np.ndarray) -> None:
            kf.qfc_lookup_scalar(t, cblk, bias, y)

    def table(x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(len(x), -1)
        t = np.empty((x2.shape[0], nsub, kp), f32)
        kf.qfc_table(x2, cbt, nfeat, t)
        return t

    def lookup(t: np.ndarray) -> np.ndarray:
        if not (isinstance(t, np.ndarray) and t.dtype == f32 and t.ndim == 3 and t.shape[1:] == (nsub, kp)
                and t.shape[0] >= 1 and t.flags.c_contiguous):
            raise QcnnError(f"layer {layer.name}: look-up needs the table this layer's table() built")
        y = np.empty((t.shape[0], *out_shape), f32)
        run_lookup(t, y)
        return y

    return StagedKernel(table, lookup)


# ----------------------------------------------------------------------------------- the rest

def _pool(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    k, st, pad = layer.kernel, layer.stride, layer.pad

    def kernel(x: np.ndarray) -> np.ndarray:
        y = np.empty((x.shape[0], *out_shape), f32)
        km.max_pool(x, k, st, pad, y)
        return y

    return kernel


def _elementwise(fn: Callable[[np.ndarray, np.ndarray], None], layer: Layer, params: Params, in_shape: Shape,
                 out_shape: Shape) -> Kernel:
    def kernel(x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        fn(x.reshape(-1), y.reshape(-1))
        return y

    return kernel


def _lrn(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    """LRN; beta = 0.75 (AlexNet's) on AVX-512 runs the division- and sqrt-free power."""
    size, alpha, beta, kk = layer.size, float(layer.alpha), float(layer.beta), float(layer.k)
    fast = HAS_AVX512 and beta == 0.75 and kk > 0 and alpha >= 0

    def kernel(x: np.ndarray) -> np.ndarray:
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        if fast:
            y = np.empty_like(x)
            km.lrn_avx512_075(x3, size, alpha / size, kk, y.reshape(n, c, -1))
            return y
        y = np.empty_like(x)
        km.lrn(x3, size, alpha / size, beta, kk, y.reshape(n, c, -1))
        return y

    return kernel


def _softmax(layer: Layer, params: Params, in_shape: Shape, out_shape: Shape) -> Kernel:
    def kernel(x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(len(x), -1)
        y = np.empty_like(x2)
        km.softmax(x2, y)
        return y

    return kernel
