"""CPU feature detection and the hand-written SIMD primitives (numba intrinsics emitting LLVM IR).

* ``window_add1..9``: acc += sums of shifted table windows, whole 16-float vectors
  (quantized conv look-up; portable LLVM vectors); ``channels_add1..9`` the same over a run of
  channels with the window starts read from an offset array (the band path), ``channels_rot1..5``
  likewise with aligned loads and the column shifts applied by lane rotations; ``grid_rotAxB`` the
  same for one output's phase tap grid over multi-vector windows (two-vector shuffles);
* ``dotR``, ``dotR_acc``, ``dotR_pair``: LUT rows as FMA chains (quantized conv table; portable);
* ``lut32_packed``/``lut16_packed``: quantized fc look-ups with the table held in AVX-512
  registers, ``vpermi2ps``/``vpermps`` on bit-packed codes (AVX-512F only);
* ``pow_m075``: x s^-0.75 by ``vrsqrt14ps`` + Newton (LRN, AVX-512F only).

AVX-512-only primitives must be compiled only where :data:`HAS_AVX512` holds.
"""

from __future__ import annotations

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["HAS_AVX512", "cpu_name", "simd_level", "window_add1", "window_add2", "window_add3", "window_add4",
           "window_add5", "window_add6", "window_add7", "window_add8", "window_add9", "channels_add1",
           "channels_add2", "channels_add3", "channels_add4", "channels_add5", "channels_add6",
           "channels_add7", "channels_add8", "channels_add9", "channels_rot1", "channels_rot2",
           "channels_rot3", "channels_rot4", "channels_rot5", "GRID_MAX", "grid_rot1x1", "grid_rot1x2",
           "grid_rot1x3", "grid_rot1x4", "grid_rot1x5", "grid_rot2x1", "grid_rot2x2", "grid_rot2x3",
           "grid_rot2x4", "grid_rot2x5", "grid_rot3x1", "grid_rot3x2", "grid_rot3x3", "grid_rot3x4",
           "grid_rot3x5", "grid_rot4x1", "grid_rot4x2", "grid_rot4x3", "grid_rot4x4", "grid_rot4x5",
           "grid_rot5x1", "grid_rot5x2", "grid_rot5x3", "grid_rot5x4", "grid_rot5x5", "pow_m075",
           "lut32_packed", "lut16_packed", "PACK32", "PACK16"]


def _features() -> set[str]:
    try:
        text = llvm.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - llvmlite cannot read the features
        return set()
    return {f[1:] for f in text.split(",") if f.startswith("+")}


_FEATURES = _features()
#: True when the host CPU (as LLVM sees it) has AVX-512F: the permute look-up is usable.
HAS_AVX512 = "avx512f" in _FEATURES


def cpu_name() -> str:
    """LLVM's name for the host CPU (numba compiles for it), e.g. ``emeraldrapids``."""
    return str(llvm.get_host_cpu_name())


def simd_level() -> str:
    """The widest vector extension LLVM may use here: avx512 (with subsets), avx2, sse4.2 or none."""
    if HAS_AVX512:
        extra = [f for f in ("avx512bw", "avx512vl", "avx512vnni", "avx512fp16") if f in _FEATURES]
        return "+".join(["avx512f", *extra])
    for name in ("avx2", "avx", "sse4.2"):
        if name in _FEATURES:
            return name
    return "none"


def _vec16(builder, data, off):  # type: ignore[no-untyped-def]
    v16f = ir.VectorType(ir.FloatType(), 16)
    return builder.bitcast(builder.gep(data, [off]), v16f.as_pointer())


def _window_sum(builder, data, starts, j):  # type: ignore[no-untyped-def]
    """The sum of the 16-float windows data[q + j ..] over the starts q, as a balanced tree
    ((w0 + w1) + (w2 + w3)) + ...: the one summation order of every look-up intrinsic here."""
    vals = [builder.load(_vec16(builder, data, builder.add(q, j)), align=4) for q in starts]
    while len(vals) > 1:
        vals = [builder.fadd(vals[i], vals[i + 1]) if i + 1 < len(vals) else vals[i] for i in range(0, len(vals), 2)]
    return vals[0]


def _add_into(builder, data, off, value):  # type: ignore[no-untyped-def]
    """data[off .. off + 16] += value."""
    p = _vec16(builder, data, off)
    builder.store(builder.fadd(builder.load(p, align=4), value), p, align=4)


def _window_codegen(ntap: int):  # type: ignore[no-untyped-def]
    """LLVM code for acc[a + i] += table[q_0 + i] (+ table[q_1 + i] ...), i < 16 nvec, with the
    table windows summed as a balanced tree ((t0 + t1) + (t2 + t3)) before the add into acc."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        acc_v, ao, tab_v = args[0], args[1], args[2]
        offs, nvec = args[3:3 + ntap], args[3 + ntap]
        arr_acc = context.make_array(signature.args[0])(context, builder, acc_v)
        arr_tab = context.make_array(signature.args[2])(context, builder, tab_v)
        with cgutils.for_range(builder, nvec) as loop:
            j = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            _add_into(builder, arr_acc.data, builder.add(ao, j), _window_sum(builder, arr_tab.data, offs, j))
        return context.get_dummy_value()

    return codegen


# window_addT(acc, a, table, q_0, ..., q_{T-1}, nvec) for T = 1..9 taps: acc[a:a+16 nvec] += the
# sum of the table windows starting at q_0.. (balanced tree, then into acc). Whole 16-float
# vectors only (portable LLVM vectors): callers keep >= 15 floats of slack after every
# accumulator row and after the table. numba reads an intrinsic's parameter list, so the
# nine signatures are generated.

def _window_intrinsic(ntap: int):  # type: ignore[no-untyped-def]
    qs = ", ".join(f"q{i}" for i in range(ntap))
    namespace: dict = {"types": types, "_window_codegen": _window_codegen}
    exec(f"def window_add{ntap}(typingctx, acc, a_off, table, {qs}, nvec):\n"  # noqa: S102 - fixed template
         f"    return types.void(acc, a_off, table, {qs}, nvec), _window_codegen({ntap})\n", namespace)
    impl = namespace[f"window_add{ntap}"]
    impl.__doc__ = f"acc[a_off + i] += sum of table[q + i] over {ntap} window starts q, i < 16 nvec."
    return intrinsic(impl)


window_add1, window_add2, window_add3, window_add4, window_add5, window_add6, window_add7, window_add8, \
    window_add9 = (_window_intrinsic(t) for t in range(1, 10))


def _channels_codegen(ntap: int, shifts: int = 1):  # type: ignore[no-untyped-def]
    """LLVM code for the band path's look-up of a run of channels, the window starts read from an
    int32 offset array: for ch < nch, with f = f0 + ch fstride and q_t = offs[f + t], t < ntap,
    per vector j (i < 16):
    * ``shifts`` = 1 (``channels_add``): acc[a0 + ch astride + 16 j + i] += sum_t table[q_t + 16 j + i],
      summed as in ``window_add``;
    * ``shifts`` = k > 1 (``channels_rot``, ntap = k k): the starts are aligned and v-major (column
      shift v outer, tap row u inner, the shift left out); the k taps of shift v are summed as a
      balanced tree, s_v, and acc[j] += s_0 + rot_1(s_1) + ... + rot_{k-1}(s_{k-1}), rot_v moving
      lane i + v to lane i (lanes that wrap are >= 16 - v: the caller drops them)."""
    per = ntap // shifts

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        acc_v, a0, astride, tab_v, offs_v, f0, fstride, nch, nvec = args
        arr_acc = context.make_array(signature.args[0])(context, builder, acc_v)
        arr_tab = context.make_array(signature.args[3])(context, builder, tab_v)
        arr_offs = context.make_array(signature.args[4])(context, builder, offs_v)
        v16f = ir.VectorType(ir.FloatType(), 16)
        masks = [ir.Constant(ir.VectorType(ir.IntType(32), 16), [(i + v) % 16 for i in range(16)])
                 for v in range(shifts)]
        with cgutils.for_range(builder, nch) as chan:
            f = builder.add(f0, builder.mul(chan.index, fstride))
            offs = [builder.sext(builder.load(builder.gep(arr_offs.data, [builder.add(f, ir.Constant(f.type, t))])),
                                 f.type) for t in range(ntap)]
            ao = builder.add(a0, builder.mul(chan.index, astride))
            with cgutils.for_range(builder, nvec) as loop:
                j = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
                total = None
                for v in range(shifts):
                    part = _window_sum(builder, arr_tab.data, offs[v * per:(v + 1) * per], j)
                    if v:
                        part = builder.shuffle_vector(part, ir.Constant(v16f, None), masks[v])
                    total = part if total is None else builder.fadd(total, part)
                _add_into(builder, arr_acc.data, builder.add(ao, j), total)
        return context.get_dummy_value()

    return codegen


def _channels_intrinsic(name: str, ntap: int, shifts: int = 1):  # type: ignore[no-untyped-def]
    def impl(typingctx, acc, a0, astride, table, offs, f0, fstride, nch, nvec):  # type: ignore[no-untyped-def]
        return (types.void(acc, a0, astride, table, offs, f0, fstride, nch, nvec), _channels_codegen(ntap, shifts))

    impl.__name__ = name
    impl.__doc__ = (f"For ch < nch: acc[a0 + ch astride + i] += the {ntap} taps at offs[f0 + ch fstride + t], "
                    + ("summed as a tree" if shifts == 1 else f"aligned, v-major, {shifts} shifts applied by lane "
                       "rotations") + ", i < 16 nvec.")
    return intrinsic(impl)


# channels_addT(acc, a0, astride, table, offs, f0, fstride, nch, nvec), T = 1..9 taps: the band
# path's look-up of a run of channels in one call (no per-channel call overhead).
channels_add1, channels_add2, channels_add3, channels_add4, channels_add5, channels_add6, channels_add7, \
    channels_add8, channels_add9 = (_channels_intrinsic(f"channels_add{t}", t) for t in range(1, 10))
# channels_rotK, K = 1..5: the same for a K x K kernel with aligned loads (every table window and
# accumulator on a 64-byte line) and the column shifts applied by lane rotations.
channels_rot1, channels_rot2, channels_rot3, channels_rot4, channels_rot5 = (
    _channels_intrinsic(f"channels_rot{k}", k * k, k) for k in range(1, 6))


def _grid_codegen(ndu: int, ndv: int):  # type: ignore[no-untyped-def]
    """LLVM code for ``grid_rot{ndu}x{ndv}``: the look-up of one output's taps of one stride phase,
    an ndu x ndv grid of (row shift du, column shift dv), from table windows whose starts are all
    aligned. Tap t = dv ndu + du (v-major) starts at q_t = pbase + codes[t0 + t] pstride + toff[t0 + t]
    (toff holds du Wq, Wq a whole number of vectors). Per vector j the ndu taps of each dv are summed
    as a balanced tree, s_dv[j], and
        acc[a0 + 16 j + i] += s_0[j][i] + s_1[j:j+2][i + 1] + ... + s_{ndv-1}[j:j+2][i + ndv - 1],
    each shifted term one two-vector shuffle (valignd) of consecutive partial sums, the later one
    carried to the next j. Reads reach 16 (nvec + 1) floats past each window start."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        acc_v, a0, tab_v, cs_v, t0, pbase, pstride, toff_v, nvec = args
        arr_acc = context.make_array(signature.args[0])(context, builder, acc_v)
        arr_tab = context.make_array(signature.args[2])(context, builder, tab_v)
        arr_cs = context.make_array(signature.args[3])(context, builder, cs_v)
        arr_toff = context.make_array(signature.args[7])(context, builder, toff_v)
        v16f = ir.VectorType(ir.FloatType(), 16)
        i32, i64 = ir.IntType(32), pbase.type
        offs = []
        for t in range(ndu * ndv):
            ti = builder.add(t0, ir.Constant(t0.type, t))
            code = builder.zext(builder.load(builder.gep(arr_cs.data, [ti])), i64)
            toff = builder.load(builder.gep(arr_toff.data, [ti]))
            offs.append(builder.add(builder.add(pbase, builder.mul(code, pstride)), toff))

        def shift_sum(dv, j):  # type: ignore[no-untyped-def]
            return _window_sum(builder, arr_tab.data, offs[dv * ndu:(dv + 1) * ndu], j)

        carry = [cgutils.alloca_once(builder, v16f) for _ in range(ndv)]
        zero = ir.Constant(i64, 0)
        for dv in range(1, ndv):
            builder.store(shift_sum(dv, zero), carry[dv])
        masks = [ir.Constant(ir.VectorType(i32, 16), [i + dv for i in range(16)]) for dv in range(ndv)]
        with cgutils.for_range(builder, nvec) as loop:
            j = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            j1 = builder.add(j, ir.Constant(j.type, 16))
            total = shift_sum(0, j)
            for dv in range(1, ndv):
                nxt = shift_sum(dv, j1)
                total = builder.fadd(total, builder.shuffle_vector(builder.load(carry[dv]), nxt, masks[dv]))
                builder.store(nxt, carry[dv])
            _add_into(builder, arr_acc.data, builder.add(a0, j), total)
        return context.get_dummy_value()

    return codegen


def _grid_intrinsic(ndu: int, ndv: int):  # type: ignore[no-untyped-def]
    def impl(typingctx, acc, a0, table, codes, t0, pbase, pstride, toff, nvec):  # type: ignore[no-untyped-def]
        return (types.void(acc, a0, table, codes, t0, pbase, pstride, toff, nvec), _grid_codegen(ndu, ndv))

    impl.__name__ = f"grid_rot{ndu}x{ndv}"
    impl.__doc__ = (f"acc[a0 + i] += the {ndu}x{ndv} taps (v-major) at aligned window starts "
                    "pbase + codes[t0 + t] pstride + toff[t0 + t], column shifts by shuffles, i < 16 nvec.")
    return intrinsic(impl)


# grid_rotAxB(acc, a0, table, codes, t0, pbase, pstride, toff, nvec) for phase tap grids of
# A row shifts x B column shifts, A, B <= 5 (GRID_MAX).
GRID_MAX = 5
grid_rot1x1 = _grid_intrinsic(1, 1)
grid_rot1x2 = _grid_intrinsic(1, 2)
grid_rot1x3 = _grid_intrinsic(1, 3)
grid_rot1x4 = _grid_intrinsic(1, 4)
grid_rot1x5 = _grid_intrinsic(1, 5)
grid_rot2x1 = _grid_intrinsic(2, 1)
grid_rot2x2 = _grid_intrinsic(2, 2)
grid_rot2x3 = _grid_intrinsic(2, 3)
grid_rot2x4 = _grid_intrinsic(2, 4)
grid_rot2x5 = _grid_intrinsic(2, 5)
grid_rot3x1 = _grid_intrinsic(3, 1)
grid_rot3x2 = _grid_intrinsic(3, 2)
grid_rot3x3 = _grid_intrinsic(3, 3)
grid_rot3x4 = _grid_intrinsic(3, 4)
grid_rot3x5 = _grid_intrinsic(3, 5)
grid_rot4x1 = _grid_intrinsic(4, 1)
grid_rot4x2 = _grid_intrinsic(4, 2)
grid_rot4x3 = _grid_intrinsic(4, 3)
grid_rot4x4 = _grid_intrinsic(4, 4)
grid_rot4x5 = _grid_intrinsic(4, 5)
grid_rot5x1 = _grid_intrinsic(5, 1)
grid_rot5x2 = _grid_intrinsic(5, 2)
grid_rot5x3 = _grid_intrinsic(5, 3)
grid_rot5x4 = _grid_intrinsic(5, 4)
grid_rot5x5 = _grid_intrinsic(5, 5)


def _dot_codegen(nrows: int, accumulate: bool, ncw: int = 1):  # type: ignore[no-untyped-def]
    """LLVM code for ``ncw`` codewords c at once (sharing the input loads):
    out[o + c os + i] (=, or += when ``accumulate``) sum_{r < nrows} w[wo + c ws + r] x[xo + r rs + i],
    i < 16 nvec, each as two FMA chains (even rows: w0 x0 -> fma(w2, x2, .) -> ..., odd rows
    likewise) added at the end, so the result does not depend on ``ncw``; weights splatted once."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        if ncw == 1:
            out_v, oo, x_v, xo, rs, w_v, wo, nvec = args
            ostride = wstride = ir.Constant(oo.type, 0)
        else:
            out_v, oo, ostride, x_v, xo, rs, w_v, wo, wstride, nvec = args
        i_w = 5 if ncw == 1 else 6
        f32 = ir.FloatType()
        v16f = ir.VectorType(f32, 16)
        arr_out = context.make_array(signature.args[0])(context, builder, out_v)
        arr_x = context.make_array(signature.args[2 if ncw == 1 else 3])(context, builder, x_v)
        arr_w = context.make_array(signature.args[i_w])(context, builder, w_v)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16f, [v16f, v16f, v16f]),
                                             "llvm.fma.v16f32")
        splats = []  # splats[c][r]
        outs = []
        for c in range(ncw):
            wbase = builder.add(wo, builder.mul(wstride, ir.Constant(wo.type, c)))
            outs.append(builder.add(oo, builder.mul(ostride, ir.Constant(oo.type, c))))
            row = []
            for r in range(nrows):
                wr = builder.load(builder.gep(arr_w.data, [builder.add(wbase, ir.Constant(wo.type, r))]))
                vec = builder.insert_element(ir.Constant(v16f, None), wr, ir.Constant(ir.IntType(32), 0))
                row.append(builder.shuffle_vector(vec, ir.Constant(v16f, None),
                                                  ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16)))
            splats.append(row)
        rows = [builder.add(xo, builder.mul(rs, ir.Constant(rs.type, r))) for r in range(nrows)]
        with cgutils.for_range(builder, nvec) as loop:
            j = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            xs = [builder.load(_vec16(builder, arr_x.data, builder.add(rows[r], j)), align=4) for r in range(nrows)]
            for c in range(ncw):
                chains: list = [None, None]
                for r in range(nrows):
                    prev = chains[r % 2]
                    chains[r % 2] = (builder.fmul(splats[c][r], xs[r]) if prev is None
                                     else builder.call(fma, [splats[c][r], xs[r], prev]))
                acc = chains[0] if chains[1] is None else builder.fadd(chains[0], chains[1])
                p_out = _vec16(builder, arr_out.data, builder.add(outs[c], j))
                if accumulate:
                    acc = builder.fadd(builder.load(p_out, align=4), acc)
                builder.store(acc, p_out, align=4)
        return context.get_dummy_value()

    return codegen


def _dot_intrinsic(nrows: int, accumulate: bool):  # type: ignore[no-untyped-def]
    def impl(typingctx, out, o_off, x, x_off, rstride, w, w_off, nvec):  # type: ignore[no-untyped-def]
        return types.void(out, o_off, x, x_off, rstride, w, w_off, nvec), _dot_codegen(nrows, accumulate)

    impl.__name__ = f"dot{nrows}{'_acc' if accumulate else ''}"
    impl.__doc__ = (f"out[o_off + i] {'+=' if accumulate else '='} sum_(r < {nrows}) w[w_off + r] "
                    "x[x_off + r rstride + i], i < 16 nvec (whole vectors: keep 15 floats of slack).")
    return intrinsic(impl)


def _dot_pair_intrinsic(nrows: int):  # type: ignore[no-untyped-def]
    def impl(typingctx, out, o_off, o_stride, x, x_off, rstride, w, w_off, w_stride,  # type: ignore[no-untyped-def]
             nvec):
        return (types.void(out, o_off, o_stride, x, x_off, rstride, w, w_off, w_stride, nvec),
                _dot_codegen(nrows, False, 2))

    impl.__name__ = f"dot{nrows}_pair"
    impl.__doc__ = (f"For c in (0, 1): out[o_off + c o_stride + i] = sum_(r < {nrows}) w[w_off + c w_stride + r] "
                    "x[x_off + r rstride + i], i < 16 nvec: two codewords sharing the input loads.")
    return intrinsic(impl)


# dotR / dotR_acc(out, o, x, xo, rstride, w, wo, nvec) for R = 1..8 rows: one table row chunk
# of a subspace of R input channels (the LUT build's inner kernel); dotR_pair does two
# codewords at once with bit-identical results.
dot1, dot2, dot3, dot4, dot5, dot6, dot7, dot8 = (_dot_intrinsic(r, False) for r in range(1, 9))
dot1_acc, dot2_acc, dot3_acc, dot4_acc, dot5_acc, dot6_acc, dot7_acc, dot8_acc = (
    _dot_intrinsic(r, True) for r in range(1, 9))
dot1_pair, dot2_pair, dot3_pair, dot4_pair, dot5_pair, dot6_pair, dot7_pair, dot8_pair = (
    _dot_pair_intrinsic(r) for r in range(1, 9))


@intrinsic
def pow_m075(typingctx, out, o_off, x, s, nvec):  # type: ignore[no-untyped-def]
    """out[o_off + i] = x[o_off + i] * s[i] ** -0.75, i < 16 nvec (AVX-512F only).

    s^-0.5 and then (s^0.5)^-0.5 by ``vrsqrt14ps`` (14 bits) with one Newton step each
    (y <- y (1.5 - 0.5 a y^2), ~23 bits): no divisions or square roots, within a few
    float32 ulps of exp(-0.75 ln s). Needs s > 0 (LRN scales are k + ... >= k > 0).
    """
    sig = types.void(out, o_off, x, s, nvec)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        out_v, oo, x_v, s_v, nvec = args
        f32 = ir.FloatType()
        v16f = ir.VectorType(f32, 16)
        arr_out = context.make_array(signature.args[0])(context, builder, out_v)
        arr_x = context.make_array(signature.args[2])(context, builder, x_v)
        arr_s = context.make_array(signature.args[3])(context, builder, s_v)
        rsqrt = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v16f, [v16f, v16f, ir.IntType(16)]), "llvm.x86.avx512.rsqrt14.ps.512")
        half = ir.Constant(v16f, [0.5] * 16)
        three_halves = ir.Constant(v16f, [1.5] * 16)

        def rsqrt_nr(a):  # type: ignore[no-untyped-def]
            y = builder.call(rsqrt, [a, ir.Constant(v16f, None), ir.Constant(ir.IntType(16), 0xFFFF)])
            t = builder.fmul(builder.fmul(half, a), builder.fmul(y, y))
            return builder.fmul(y, builder.fsub(three_halves, t))

        with cgutils.for_range(builder, nvec) as loop:
            i = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            j = builder.add(oo, i)
            sv = builder.load(_vec16(builder, arr_s.data, i), align=4)
            y = rsqrt_nr(sv)                          # s^-0.5
            u = rsqrt_nr(builder.fmul(sv, y))         # (s^0.5)^-0.5 = s^-0.25
            xv = builder.load(_vec16(builder, arr_x.data, j), align=4)
            builder.store(builder.fmul(xv, builder.fmul(y, u)), _vec16(builder, arr_out.data, j), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _lut_packed_codegen(per_word: int, bits: int):  # type: ignore[no-untyped-def]
    """LLVM code for ``lut{16,32}_packed``: see :func:`lut32_packed`."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        out_v, oo, tab_v, to, codes_v, co, cs, nsub_v = args
        f32, i32 = ir.FloatType(), ir.IntType(32)
        v16f, v16i = ir.VectorType(f32, 16), ir.VectorType(i32, 16)
        arr_out = context.make_array(signature.args[0])(context, builder, out_v)
        arr_tab = context.make_array(signature.args[2])(context, builder, tab_v)
        arr_codes = context.make_array(signature.args[4])(context, builder, codes_v)
        if bits == 5:
            perm = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16f, [v16f, v16i, v16f]),
                                                  "llvm.x86.avx512.vpermi2var.ps.512")
        else:
            perm = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16f, [v16f, v16i]),
                                                  "llvm.x86.avx512.permvar.sf.512")
        slots = []
        for q in range(per_word):
            slot = cgutils.alloca_once(builder, v16f)
            p_out = _vec16(builder, arr_out.data, builder.add(oo, ir.Constant(oo.type, 16 * q)))
            builder.store(builder.load(p_out, align=4), slot)
            slots.append((slot, p_out))
        i8p = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        ahead = ir.Constant(co.type, PREFETCH_BYTES // 4)  # codes are uint32 words
        with cgutils.for_range(builder, nsub_v) as loop:
            s = loop.index
            tbase = builder.add(to, builder.mul(s, ir.Constant(s.type, 32 if bits == 5 else 16)))
            c_now = builder.add(co, builder.mul(s, cs))
            builder.call(prefetch, [builder.bitcast(builder.gep(arr_codes.data, [builder.add(c_now, ahead)]), i8p),
                                    ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            t0 = builder.load(_vec16(builder, arr_tab.data, tbase), align=4)
            if bits == 5:
                t1 = builder.load(_vec16(builder, arr_tab.data, builder.add(tbase, ir.Constant(s.type, 16))),
                                  align=4)
            pc = builder.bitcast(builder.gep(arr_codes.data, [c_now]), v16i.as_pointer())
            raw = builder.load(pc, align=4)
            for q in range(per_word):
                idx = raw if q == 0 else builder.lshr(raw, ir.Constant(v16i, [bits * q] * 16))
                picked = builder.call(perm, [t0, idx, t1] if bits == 5 else [t0, idx])
                slot = slots[q][0]
                builder.store(builder.fadd(builder.load(slot), picked), slot)
        for slot, p_out in slots:
            builder.store(builder.load(slot), p_out, align=4)
        return context.get_dummy_value()

    return codegen


#: Software prefetch distance along the packed fc codes (bytes ahead of the word being read): the
#: look-up streams the codes once per image, cold in a whole-network pass, and the hardware
#: prefetcher alone keeps too few lines in flight. Prefetching past the array's end is harmless
#: (a hint, never a fault).
PREFETCH_BYTES = 4096

#: codes per 32-bit word and bits per code of the packed fc look-ups (K <= 32, K <= 16)
PACK32 = (6, 5)
PACK16 = (8, 4)


@intrinsic
def lut32_packed(typingctx, out, o_off, table, t_off, codes, c_off, c_stride, nsub):  # type: ignore[no-untyped-def]
    """96 outputs i = 16 q + l (q < 6) at once, K <= 32 (AVX-512F):
    out[o_off + i] += sum_{s < nsub} table[t_off + 32 s + code(s, i)], summed in increasing s
    in six registers.

    Codes are packed 5 bits each, six to a 32-bit word: word l of the 16 at
    codes[c_off + s c_stride:] (as uint32) holds code(s, 16 q + l) in bits 5q..5q+4. A shift by
    5q puts them in the low bits, and ``vpermi2ps`` reads only the low 5 index bits: no
    unpacking, 6 permutes per 64 bytes of codes.
    """
    return types.void(out, o_off, table, t_off, codes, c_off, c_stride, nsub), _lut_packed_codegen(*PACK32)


@intrinsic
def lut16_packed(typingctx, out, o_off, table, t_off, codes, c_off, c_stride, nsub):  # type: ignore[no-untyped-def]
    """As :func:`lut32_packed` for K <= 16: 4-bit codes, eight to a word (bits 4q..4q+3), 128
    outputs at once, 16-entry table in one register looked up by ``vpermps`` (low 4 index bits);
    table rows are 16 floats apart: out[o_off + i] += sum_s table[t_off + 16 s + code(s, i)]."""
    return types.void(out, o_off, table, t_off, codes, c_off, c_stride, nsub), _lut_packed_codegen(*PACK16)


