"""Quantized convolution kernels: LUT planes and look-up accumulation vectorised over space.

Layout. The padded input (Hp = H + 2p, Wp = W + 2p) is split into P = st * st stride
phases of Hq x Wq pixels, Hq = ceil(Hp / st), Wq = ceil(Wp / st):

    xph[n, c, (a % st) st + (b % st), (a // st) Wq + b // st] = xpad[n, c, a, b]

(for st = 1 this is just the zero-padded input), stored flat with 16 floats of slack.
Tables are planes over that layout, T [N, G, S, K, PS] with PS = P Hq Wq rounded up to
whole 16-float vectors:

    T[n, g, s, k, ph, :] = sum_{d < D, sD + d < Cg} cb[s, k, d] xph[n, g Cg + sD + d, ph, :]

Tap (u, v) reads phase ph = (u % st) st + v % st at offset (u // st) Wq + v // st, so an
output row band i0..i0+R of channel o is a flat, contiguous sum

    acc[0:L] += T[n, g, s, A[o, u, v, s], ph][i0 Wq + off : i0 Wq + off + L],  L = (R - 1) Wq + Wo

(columns Wo..Wq of each row are computed and dropped): plain 16-float vector adds
(``simd.window_add*``), no gathers; up to nine taps are summed before each accumulator update.
Each output's sum runs in a fixed order (bias; subspace; phase; its taps in groups of up to nine), the
same in the staged and the tiled kernels and for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .simd import (GRID_MAX, grid_rot1x1, grid_rot1x2, grid_rot1x3, grid_rot1x4, grid_rot1x5, grid_rot2x1,
                   grid_rot2x2, grid_rot2x3, grid_rot2x4, grid_rot2x5, grid_rot3x1, grid_rot3x2, grid_rot3x3,
                   grid_rot3x4, grid_rot3x5, grid_rot4x1, grid_rot4x2, grid_rot4x3, grid_rot4x4, grid_rot4x5,
                   grid_rot5x1, grid_rot5x2, grid_rot5x3, grid_rot5x4, grid_rot5x5, channels_rot1,
                   channels_rot2, channels_rot3, channels_rot4, channels_rot5, channels_add1, channels_add2,
                   channels_add3, channels_add4, channels_add5, channels_add6, channels_add7, channels_add8,
                   channels_add9, dot1, dot1_acc, dot1_pair, dot2, dot2_acc, dot2_pair, dot3, dot3_acc,
                   dot3_pair, dot4, dot4_acc, dot4_pair, dot5, dot5_acc, dot5_pair, dot6, dot6_acc, dot6_pair,
                   dot7, dot7_acc, dot7_pair, dot8, dot8_acc, dot8_pair, window_add1, window_add2,
                   window_add3, window_add4, window_add5, window_add6, window_add7, window_add8, window_add9)

__all__ = ["phase_split", "qconv_table", "qconv_lookup", "qconv_fused", "qconv_band"]

_CHUNK = 32  # vectors (512 floats) of table positions per pass: the input rows stay in L1
_KBLOCK = 16  # codewords per table job


@njit(cache=True)
def _zeros64(size: int) -> np.ndarray:
    """A zeroed float32 [size] starting on a 64-byte boundary: accumulator rows and table planes
    a whole number of 16-float vectors apart then load and store without cache-line splits
    (the allocator's alignment varies from process to process, and with it the speed)."""
    buf = np.zeros(size + 15, np.float32)
    b0 = (16 - (buf.ctypes.data // 4) % 16) % 16
    return buf[b0:b0 + size]


@njit(cache=True, parallel=True)
def phase_split(x: np.ndarray, pad: int, st: int, hq: int, wq: int, out: np.ndarray) -> None:
    """x [N, C, H, W] -> out [N, C, st*st, hq*wq] (out zeroed by the caller: padding stays 0)."""
    n_img, ch, h, w = x.shape
    for job in prange(n_img * ch):
        n = job // ch
        c = job % ch
        for i in range(h):
            a = i + pad
            for pv in range(st):
                ph = (a % st) * st + pv
                row = (a // st) * wq
                j0 = (pv - pad) % st  # columns j with (j + pad) % st == pv
                for j in range(j0, w, st):
                    out[n, c, ph, row + (j + pad) // st] = x[n, c, i, j]


@njit(cache=True, inline="always")
def _dot(out: np.ndarray, oo: int, xf: np.ndarray, xo: int, rs: int, wf: np.ndarray, wo: int, deff: int,
         nvec: int) -> None:
    """out[oo:oo + 16 nvec] = sum_{r < deff} wf[wo + r] xf[xo + r rs:][:16 nvec], 8 rows per pass."""
    d = 0
    while d < deff:
        r = min(8, deff - d)
        x0, w0 = xo + d * rs, wo + d
        if d == 0:
            if r == 8:
                dot8(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 7:
                dot7(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 6:
                dot6(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 5:
                dot5(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 4:
                dot4(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 3:
                dot3(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 2:
                dot2(out, oo, xf, x0, rs, wf, w0, nvec)
            else:
                dot1(out, oo, xf, x0, rs, wf, w0, nvec)
        else:
            if r == 8:
                dot8_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 7:
                dot7_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 6:
                dot6_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 5:
                dot5_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 4:
                dot4_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 3:
                dot3_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            elif r == 2:
                dot2_acc(out, oo, xf, x0, rs, wf, w0, nvec)
            else:
                dot1_acc(out, oo, xf, x0, rs, wf, w0, nvec)
        d += 8


@njit(cache=True, inline="always")
def _dot_codewords(out: np.ndarray, oo: int, ostride: int, xf: np.ndarray, xo: int, rs: int, wf: np.ndarray,
                   wo: int, dim: int, deff: int, k0: int, k1: int, nvec: int) -> None:
    """Table rows of codewords k0..k1: out[oo + k ostride:][:16 nvec] = sum_r wf[wo + k dim + r] xf[xo + r rs:],
    two codewords per pass (sharing the input loads) when a subspace has <= 8 rows."""
    k = k0
    if deff <= 8:
        while k + 2 <= k1:
            o, w = oo + k * ostride, wo + k * dim
            if deff == 8:
                dot8_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 7:
                dot7_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 6:
                dot6_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 5:
                dot5_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 4:
                dot4_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 3:
                dot3_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            elif deff == 2:
                dot2_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            else:
                dot1_pair(out, o, ostride, xf, xo, rs, wf, w, dim, nvec)
            k += 2
    while k < k1:
        _dot(out, oo + k * ostride, xf, xo, rs, wf, wo + k * dim, deff, nvec)
        k += 1


@njit(cache=True, parallel=True)
def qconv_table(xf: np.ndarray, dims: np.ndarray, cb: np.ndarray, out: np.ndarray) -> None:
    """The whole LUT: xf = xph flat [N, C, P Hq Wq] + slack; dims = (N, C, G, P Hq Wq, PS);
    cb [S, K, D] -> out flat [N, G, S, K, PS] + slack.

    Jobs are (image, group, subspace, block of 16 codewords); each walks the positions in
    chunks of 512 whose input rows stay in L1 while every codeword of the block is applied.
    """
    n_img, ch, groups, plen, pstride = dims[0], dims[1], dims[2], dims[3], dims[4]
    nsub, ncode, dim = cb.shape
    cg = ch // groups
    nkb = (ncode + _KBLOCK - 1) // _KBLOCK
    wf = cb.ravel()
    for job in prange(n_img * groups * nsub * nkb):
        kb = job % nkb
        r = job // nkb
        s = r % nsub
        r = r // nsub
        g = r % groups
        n = r // groups
        c0 = g * cg + s * dim
        deff = min(dim, cg - s * dim)
        nvec_all = (plen + 15) // 16
        for v0 in range(0, nvec_all, _CHUNK):
            nvec = min(_CHUNK, nvec_all - v0)
            planes = ((n * groups + g) * nsub + s) * ncode * pstride
            _dot_codewords(out, planes + 16 * v0, pstride, xf, (n * ch + c0) * plen + 16 * v0, plen, wf,
                           s * ncode * dim, dim, deff, kb * _KBLOCK, min(ncode, (kb + 1) * _KBLOCK), nvec)


@njit(cache=True, inline="always")
def _accumulate(acc: np.ndarray, a0: int, tab: np.ndarray, cs: np.ndarray, t0: int, t1: int,
                pbase: int, pstride: int, tap_off: np.ndarray, nvec: int) -> None:
    """acc[a0:][:16 nvec] += the windows of taps t0..t1 (plane cs[t] at pbase + cs[t] pstride + tap_off[t]),
    up to nine taps per pass over the accumulator (a 3x3 subspace in one pass)."""
    t = t0
    while t < t1:
        r = min(9, t1 - t)
        q0 = pbase + cs[t] * pstride + tap_off[t]
        if r == 1:
            window_add1(acc, a0, tab, q0, nvec)
        else:
            q1 = pbase + cs[t + 1] * pstride + tap_off[t + 1]
            if r == 2:
                window_add2(acc, a0, tab, q0, q1, nvec)
            else:
                q2 = pbase + cs[t + 2] * pstride + tap_off[t + 2]
                if r == 3:
                    window_add3(acc, a0, tab, q0, q1, q2, nvec)
                else:
                    q3 = pbase + cs[t + 3] * pstride + tap_off[t + 3]
                    if r == 4:
                        window_add4(acc, a0, tab, q0, q1, q2, q3, nvec)
                    else:
                        q4 = pbase + cs[t + 4] * pstride + tap_off[t + 4]
                        if r == 5:
                            window_add5(acc, a0, tab, q0, q1, q2, q3, q4, nvec)
                        else:
                            q5 = pbase + cs[t + 5] * pstride + tap_off[t + 5]
                            if r == 6:
                                window_add6(acc, a0, tab, q0, q1, q2, q3, q4, q5, nvec)
                            else:
                                q6 = pbase + cs[t + 6] * pstride + tap_off[t + 6]
                                if r == 7:
                                    window_add7(acc, a0, tab, q0, q1, q2, q3, q4, q5, q6, nvec)
                                else:
                                    q7 = pbase + cs[t + 7] * pstride + tap_off[t + 7]
                                    if r == 8:
                                        window_add8(acc, a0, tab, q0, q1, q2, q3, q4, q5, q6, q7, nvec)
                                    else:
                                        q8 = pbase + cs[t + 8] * pstride + tap_off[t + 8]
                                        window_add9(acc, a0, tab, q0, q1, q2, q3, q4, q5, q6, q7, q8, nvec)
        t += r


@njit(cache=True, inline="always")
def _accumulate_channels(acc: np.ndarray, a0: int, astride: int, tab: np.ndarray, offs: np.ndarray, f0: int,
                         fstride: int, ntap: int, nch: int, nvec: int) -> None:
    """For ch < nch: acc[a0 + ch astride:][:16 nvec] += the windows of taps 0..ntap, the window starts
    offs[f0 + ch fstride + t] (int32); up to nine taps per pass, in the order of :func:`_accumulate`."""
    t = 0
    while t < ntap:
        r = min(9, ntap - t)
        f = f0 + t
        if r == 9:
            channels_add9(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 8:
            channels_add8(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 7:
            channels_add7(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 6:
            channels_add6(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 5:
            channels_add5(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 4:
            channels_add4(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 3:
            channels_add3(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        elif r == 2:
            channels_add2(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        else:
            channels_add1(acc, a0, astride, tab, offs, f, fstride, nch, nvec)
        t += r


@njit(cache=True, inline="always")
def _accumulate_rotated(acc: np.ndarray, a0: int, astride: int, tab: np.ndarray, offs: np.ndarray, f0: int,
                        fstride: int, k: int, nch: int, nvec: int) -> None:
    """``channels_rot{k}``: the k x k taps of a run of channels, aligned loads, shifts by rotation."""
    if k == 3:
        channels_rot3(acc, a0, astride, tab, offs, f0, fstride, nch, nvec)
    elif k == 5:
        channels_rot5(acc, a0, astride, tab, offs, f0, fstride, nch, nvec)
    elif k == 4:
        channels_rot4(acc, a0, astride, tab, offs, f0, fstride, nch, nvec)
    elif k == 2:
        channels_rot2(acc, a0, astride, tab, offs, f0, fstride, nch, nvec)
    else:
        channels_rot1(acc, a0, astride, tab, offs, f0, fstride, nch, nvec)


@njit(cache=True, inline="always")
def _accumulate_grid(acc: np.ndarray, a0: int, tab: np.ndarray, cs: np.ndarray, t0: int, ndu: int, ndv: int,
                     pbase: int, pstride: int, tap_off: np.ndarray, nvec: int) -> None:
    """acc[a0:][:16 nvec] += one output's phase tap grid of ndu x ndv <= GRID_MAX (taps t0.. v-major, window
    starts pbase + cs[t] pstride + tap_off[t], aligned) by ``simd.grid_rot{ndu}x{ndv}``."""
    if ndu == 1 and ndv == 1:
        grid_rot1x1(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 1 and ndv == 2:
        grid_rot1x2(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 1 and ndv == 3:
        grid_rot1x3(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 1 and ndv == 4:
        grid_rot1x4(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 1 and ndv == 5:
        grid_rot1x5(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 2 and ndv == 1:
        grid_rot2x1(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 2 and ndv == 2:
        grid_rot2x2(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 2 and ndv == 3:
        grid_rot2x3(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 2 and ndv == 4:
        grid_rot2x4(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 2 and ndv == 5:
        grid_rot2x5(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 3 and ndv == 1:
        grid_rot3x1(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 3 and ndv == 2:
        grid_rot3x2(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 3 and ndv == 3:
        grid_rot3x3(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 3 and ndv == 4:
        grid_rot3x4(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 3 and ndv == 5:
        grid_rot3x5(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 4 and ndv == 1:
        grid_rot4x1(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 4 and ndv == 2:
        grid_rot4x2(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 4 and ndv == 3:
        grid_rot4x3(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 4 and ndv == 4:
        grid_rot4x4(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 4 and ndv == 5:
        grid_rot4x5(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 5 and ndv == 1:
        grid_rot5x1(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 5 and ndv == 2:
        grid_rot5x2(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 5 and ndv == 3:
        grid_rot5x3(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 5 and ndv == 4:
        grid_rot5x4(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)
    elif ndu == 5 and ndv == 5:
        grid_rot5x5(acc, a0, tab, cs, t0, pbase, pstride, tap_off, nvec)


@njit(cache=True, parallel=True)
def qconv_lookup(tf: np.ndarray, dims: np.ndarray, codes: np.ndarray, tap_off: np.ndarray,
                 ph_start: np.ndarray, grid: np.ndarray, bias: np.ndarray, block: int, band: int,
                 out: np.ndarray) -> None:
    """Sum the table planes the codes pick.

    tf: the flat table [N, G, S, K, PS] + slack; dims = (N, G, S, K, P, Hq Wq, Wq, PS);
    codes [O, S, T] uint8 with the k*k taps sorted by phase; tap_off [T] = (u//st) Wq + v//st;
    ph_start [P + 1]: taps of phase ph are ph_start[ph]..ph_start[ph+1]; bias [O];
    out [N, O, Ho, Wo]. Jobs are (image, group, block of ``block`` outputs); each job
    walks output row bands of ``band`` rows with accumulators acc [block, pitch].
    grid [P, 2]: (0, 0), or for rotated look-ups (Wq whole vectors) the phase's tap grid
    (row shifts, column shifts) <= GRID_MAX, its taps v-major and tap_off = (u//st) Wq
    (:func:`_accumulate_grid`).
    """
    groups, nsub, ncode, nph, hw, wq, pstride = dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7]
    n_img, n_out, ho, wo = out.shape
    og = n_out // groups
    nblk = (og + block - 1) // block
    pitch = ((band * wq + 15) // 16) * 16 + 16  # accumulator row: whole vectors plus slack
    for job in prange(n_img * groups * nblk):
        blk = job % nblk
        g = (job // nblk) % groups
        n = job // (nblk * groups)
        o0 = g * og + blk * block
        nb = min(block, (g + 1) * og - o0)
        acc = _zeros64(nb * pitch)
        for i0 in range(0, ho, band):
            rows = min(band, ho - i0)
            nvec = ((rows - 1) * wq + wo + 15) // 16
            for oo in range(nb):
                acc[oo * pitch:(oo + 1) * pitch] = bias[o0 + oo]
            for s in range(nsub):
                sbase = ((n * groups + g) * nsub + s) * ncode * pstride
                for ph in range(nph):
                    for oo in range(nb):
                        if grid[ph, 0] > 0:
                            _accumulate_grid(acc, oo * pitch, tf, codes[o0 + oo, s], ph_start[ph], grid[ph, 0],
                                             grid[ph, 1], sbase + ph * hw + i0 * wq, pstride, tap_off, nvec)
                        else:
                            _accumulate(acc, oo * pitch, tf, codes[o0 + oo, s], ph_start[ph], ph_start[ph + 1],
                                        sbase + ph * hw + i0 * wq, pstride, tap_off, nvec)
            for oo in range(nb):
                for i in range(rows):
                    out[n, o0 + oo, i0 + i, :] = acc[oo * pitch + i * wq:oo * pitch + i * wq + wo]


@njit(cache=True, parallel=True)
def qconv_fused(xf: np.ndarray, dims: np.ndarray, cb: np.ndarray, codes: np.ndarray, tap_off: np.ndarray,
                ph_start: np.ndarray, grid: np.ndarray, bias: np.ndarray, block: int, band: int,
                out: np.ndarray) -> None:
    """Quantized conv with the LUT built in cache-sized tiles and consumed at once.

    The same sums in the same order as ``qconv_table`` then ``qconv_lookup`` (bit-identical
    results), but the table of one (subspace, phase, output row band), a tile
    [K, band + qmax, Wq], is built right before the look-ups that read it, so it is read
    from L2 rather than memory. xf = xph flat [N, C, P, Hq Wq] + slack;
    dims = (N, C, G, P, Hq, Wq, qmax); the rest as in :func:`qconv_lookup`.
    """
    ch, groups, nph, hq, wq, qmax = dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
    hw = hq * wq
    nsub, ncode, dim = cb.shape
    wf = cb.ravel()
    cg = ch // groups
    n_img, n_out, ho, wo = out.shape
    og = n_out // groups
    nblk = (og + block - 1) // block
    pitch = ((band * wq + 15) // 16) * 16 + 16
    tstride = (((band + qmax) * wq + 15) // 16) * 16
    for job in prange(n_img * groups * nblk):
        blk = job % nblk
        g = (job // nblk) % groups
        n = job // (nblk * groups)
        o0 = g * og + blk * block
        nb = min(block, (g + 1) * og - o0)
        buf = _zeros64(nb * pitch + ncode * tstride + 32)
        acc = buf[:nb * pitch]
        tile = buf[nb * pitch:]  # tails read only into dropped lanes: keep finite
        for i0 in range(0, ho, band):
            rows = min(band, ho - i0)
            nvec = ((rows - 1) * wq + wo + 15) // 16
            tvec = (min(rows + qmax, hq - i0) * wq + 15) // 16
            for oo in range(nb):
                acc[oo * pitch:(oo + 1) * pitch] = bias[o0 + oo]
            for s in range(nsub):
                c0 = g * cg + s * dim
                deff = min(dim, cg - s * dim)
                for ph in range(nph):
                    xo = ((n * ch + c0) * nph + ph) * hw + i0 * wq
                    _dot_codewords(tile, 0, tstride, xf, xo, nph * hw, wf, s * ncode * dim, dim, deff, 0, ncode,
                                   tvec)
                    for oo in range(nb):
                        if grid[ph, 0] > 0:
                            _accumulate_grid(acc, oo * pitch, tile, codes[o0 + oo, s], ph_start[ph], grid[ph, 0],
                                             grid[ph, 1], 0, tstride, tap_off, nvec)
                        else:
                            _accumulate(acc, oo * pitch, tile, codes[o0 + oo, s], ph_start[ph], ph_start[ph + 1],
                                        0, tstride, tap_off, nvec)
            for oo in range(nb):
                for i in range(rows):
                    out[n, o0 + oo, i0 + i, :] = acc[oo * pitch + i * wq:oo * pitch + i * wq + wo]


@njit(cache=True, parallel=True)
def qconv_band(xf: np.ndarray, dims: np.ndarray, cb: np.ndarray, offs: np.ndarray, bias: np.ndarray,
               bo: int, rotated: bool, out: np.ndarray) -> None:
    """Narrow stride-1 quantized conv (a padded input row fits one 16-float vector), band by band.

    xf = the zero-padded input flat [N, C, Hq, 16] + slack (rows padded to one vector);
    dims = (C, G, Hq, k); offs [O, S, k k] int32 = code(o, s, u, v) BR 16 + u 16 + v with
    BR = bo + k - 1 (taps row-major); bias [O]; out [N, O, Ho, Wo]. Jobs are (image, band of
    ``bo`` output rows). For each (group, subspace) the band's table, a tile [K, BR, 16], is built
    and every output channel of the group adds its k k taps: output row i0 + q of tap (u, v) with
    code a is tile[a, u + q, v:v + 16], so one offset serves the band's rows (vectors 16 floats
    apart). Per output: bias, then subspaces ascending, each subspace's taps summed as in
    :func:`qconv_lookup` (a balanced tree of up to nine) - the same sums in the same order as the
    staged table + look-up, bit for bit, for any thread count.

    ``rotated`` (k <= 5): offs then hold code BR 16 + u 16 with the taps v-major (v outer), so every
    load is aligned (a load straddling two cache lines costs about 1.5 aligned ones); the taps of
    each column shift v are summed as a tree and rotated down by v lanes (``simd.channels_rot``).
    Another summation order: within float rounding of the stages, still fixed for any thread count.
    """
    ch, groups, hq, kk = dims[0], dims[1], dims[2], dims[3]
    nsub, ncode, dim = cb.shape
    wf = cb.ravel()
    cg = ch // groups
    n_img, n_out, ho, wo = out.shape
    og = n_out // groups
    ntap = kk * kk
    tstride = (bo + kk - 1) * 16
    nbands = (ho + bo - 1) // bo
    hw = hq * 16
    pitch = bo * 16 + 16
    flat_offs = offs.ravel()
    for job in prange(n_img * nbands):
        n = job // nbands
        i0 = (job % nbands) * bo
        rows = min(bo, ho - i0)
        tvec = min(rows + kk - 1, hq - i0)
        buf = _zeros64(n_out * pitch + ncode * tstride + 16)
        acc = buf[:n_out * pitch]
        tile = buf[n_out * pitch:]  # rows a short band leaves unbuilt feed dropped lanes only
        for o in range(n_out):
            acc[o * pitch:(o + 1) * pitch] = bias[o]
        for g in range(groups):
            for s in range(nsub):
                c0 = g * cg + s * dim
                deff = min(dim, cg - s * dim)
                _dot_codewords(tile, 0, tstride, xf, (n * ch + c0) * hw + i0 * 16, hw, wf, s * ncode * dim, dim,
                               deff, 0, ncode, tvec)
                if rotated:
                    _accumulate_rotated(acc, g * og * pitch, pitch, tile, flat_offs, (g * og * nsub + s) * ntap,
                                        nsub * ntap, kk, og, rows)
                else:
                    _accumulate_channels(acc, g * og * pitch, pitch, tile, flat_offs, (g * og * nsub + s) * ntap,
                                         nsub * ntap, ntap, og, rows)
        for o in range(n_out):
            for q in range(rows):
                out[n, o, i0 + q, :] = acc[o * pitch + q * 16:o * pitch + q * 16 + wo]
