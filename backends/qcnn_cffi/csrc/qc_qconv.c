/* Quantized conv, the Quantized-CNN way: a look-up table of every (padded, phase-split) input
 * pixel against every sub-codeword (small GEMMs, by explicit SIMD FMAs), then look-up
 * accumulation vectorised over space.
 *
 * Layout: T[n][g][s][row][k][phase][Wq], row < Hq, phase = (y % st) * st + x % st of the padded
 * image (st x st stride phases, each Hq x Wq). For output channel o, tap (u, v) and subspace s
 * the code a = A[o,u,v,s] is the same at every output position, so output row i gets
 *     Y[o][i][j] += T[g][s][i + u/st][a][phase(u,v)][j + v/st],   j < Wo,
 * one contiguous run of vector adds (no gathers). Cache blocking: taps are processed in groups
 * (e.g. one subspace s, one tap row u, one column phase) whose table blocks (all K codes) fit in
 * L1, and every output channel consumes a group before the next group starts, so each block
 * loaded from L2 is reused by all channels that pick any of its codes. The look-up is
 * table-row-major: each table row is read once and feeds the output rows in flight (measured
 * 5-10% faster on every AlexNet conv than output-row-major). A register tile holds R output
 * channels x V vectors while a group's taps stream through; partial sums wait in a small
 * accumulator buffer between groups. Per-(o, tap) offsets are precomputed in Python, into the
 * plan structs of qcnn_kernels.h. qc_qconv_fused runs the same schedule with each table row built
 * just before its look-ups (the row of all groups and subspaces stays in L2; the full table never
 * exists); qc_qconv_band is the narrow stride-1 layers' schedule.
 */
#include <math.h>
#include <string.h>
#include "qc_internal.h"
#include "qc_tiles.h"

/* dst[0..n) = src[0..n) for the short rows of the look-ups (n < a few vectors; a memcpy call
 * costs more than the copy) */
static inline void copy_row(float *dst, const float *src, int64_t n) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL) vstore(dst + j, vload(src + j));
#if VL == 16
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        _mm512_mask_storeu_ps(dst + j, m, _mm512_maskz_loadu_ps(m, src + j));
    }
#else
    for (; j < n; ++j) dst[j] = src[j];
#endif
}

int qc_conv_r(void) { return R; }
int qc_conv_chunk(void) { return VL; }
int qc_conv_width(void) { return VMAX * VL; }

/* xq[n, c, i, py*st + px, j] = xpad[n, c, i*st + py, j*st + px] (0 outside the image) */
void qc_pad_phase(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t st,
                  int64_t Hq, int64_t Wq, float *xq) {
    int64_t NC = N * C, P = st * st;
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1) schedule(static)
    for (int64_t nc = 0; nc < NC; ++nc) {
        const float *src = x + nc * H * W;
        for (int64_t i = 0; i < Hq; ++i)
            for (int64_t py = 0; py < st; ++py) {
                int64_t h = i * st + py - pad;
                for (int64_t px = 0; px < st; ++px) {
                    float *d = xq + ((nc * Hq + i) * P + py * st + px) * Wq;
                    if (h < 0 || h >= H) { memset(d, 0, (size_t)Wq * sizeof(float)); continue; }
                    const float *s = src + h * W;
                    if (st == 1) {
                        int64_t j0 = qc_min64(pad, Wq), j1 = qc_max64(qc_min64(W + pad, Wq), j0);
                        memset(d, 0, (size_t)j0 * sizeof(float));
                        memcpy(d + j0, s + (j0 - pad), (size_t)(j1 - j0) * sizeof(float));
                        memset(d + j1, 0, (size_t)(Wq - j1) * sizeof(float));
                        continue;
                    }
                    /* columns j with 0 <= j st + px - pad < W: [j0, j1) */
                    int64_t j0 = qc_min64(pad > px ? (pad - px + st - 1) / st : 0, Wq);
                    int64_t j1 = qc_max64(qc_min64(W + pad - px > 0 ? (W + pad - px + st - 1) / st : 0, Wq), j0);
                    const float *sp = s + px - pad;
                    for (int64_t j = 0; j < j0; ++j) d[j] = 0.0f;
                    for (int64_t j = j0; j < j1; ++j) d[j] = sp[j * st];
                    for (int64_t j = j1; j < Wq; ++j) d[j] = 0.0f;
                }
            }
    }
}

/* For n, g, s and every row i < Hq: T[n,g,s,i] [K, P*Wq] = cb[s][:, :dv] [K, dv] x xq[n, g*Cg + s*D + d, i],
 * by the register-blocked kernels below (measured 1.2x (conv2-5) to 4x (conv1) faster than
 * OpenBLAS' small-matrix SGEMM here). One subspace's table rows by explicit SIMD: for each row i
 * and each vector of columns j, the dv input vectors x[d][i][j..] stay in registers while every
 * codeword k gives
 * T[i][k][j..] = sum_d c[k][d] x[d][i][j..] (dv FMAs with broadcast operands, one store).
 * DV is a compile-time dv so the FMA chain unrolls; the tail vector is masked (AVX-512). */
#if VL == 16
#define TAIL_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define TABLE_TAIL(DV)                                                                          \
    if (j < pw) {                                                                               \
        __mmask16 m = TAIL_MASK(pw - j);                                                        \
        __m512 xv[DV];                                                                          \
        for (int d = 0; d < DV; ++d) xv[d] = _mm512_maskz_loadu_ps(m, xi + d * chan + j);       \
        for (int64_t k = 0; k < K; ++k) {                                                       \
            const float *c = cb + k * D;                                                        \
            __m512 acc = _mm512_mul_ps(_mm512_set1_ps(c[0]), xv[0]);                            \
            for (int d = 1; d < DV; ++d) acc = _mm512_fmadd_ps(_mm512_set1_ps(c[d]), xv[d], acc); \
            _mm512_mask_storeu_ps(ti + k * cs + j, m, acc);                                     \
        }                                                                                       \
    }
#else
#define TABLE_TAIL(DV)                                                                          \
    for (; j < pw; ++j)                                                                         \
        for (int64_t k = 0; k < K; ++k) {                                                       \
            const float *c = cb + k * D;                                                        \
            float acc = c[0] * xi[j];                                                           \
            for (int d = 1; d < DV; ++d) acc = fmaf(c[d], xi[d * chan + j], acc);               \
            ti[k * cs + j] = acc;                                                               \
        }
#endif
#define DEF_TABLE(DV)                                                                           \
    static void table_rows_##DV(const float *b, int64_t chan, int64_t Hq, int64_t pw, int64_t cs, \
                                const float *cb, int64_t K, int64_t D, float *t) {              \
        int64_t rowsz = K * cs, nfull = pw / VL * VL;                                           \
        for (int64_t i = 0; i < Hq; ++i) {                                                      \
            const float *xi = b + i * pw;                                                       \
            float *ti = t + i * rowsz;                                                          \
            int64_t j = 0;                                                                      \
            for (; j < nfull; j += VL) {                                                        \
                vf xv[DV];                                                                      \
                for (int d = 0; d < DV; ++d) xv[d] = vload(xi + d * chan + j);                  \
                for (int64_t k = 0; k < K; ++k) {                                               \
                    const float *c = cb + k * D;                                                \
                    vf acc = vmul(vset1(c[0]), xv[0]);                                          \
                    for (int d = 1; d < DV; ++d) acc = vfmadd(vset1(c[d]), xv[d], acc);         \
                    vstore(ti + k * cs + j, acc);                                               \
                }                                                                               \
            }                                                                                   \
            TABLE_TAIL(DV)                                                                      \
        }                                                                                       \
    }
#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
DEF_TABLE(1)
DEF_TABLE(2)
DEF_TABLE(3)
DEF_TABLE(4)
DEF_TABLE(5)
DEF_TABLE(6)
DEF_TABLE(7)
DEF_TABLE(8)
#pragma GCC pop_options
typedef void (*table_fn)(const float *, int64_t, int64_t, int64_t, int64_t, const float *, int64_t, int64_t, float *);
static const table_fn TABLES[9] = {0, table_rows_1, table_rows_2, table_rows_3, table_rows_4,
                                   table_rows_5, table_rows_6, table_rows_7, table_rows_8};

/* Long rows (P*Wq >= 8 vectors, AlexNet conv1 with its 16 stride phases): code-major, so the
 * stores run along one row of T while the dv input rows stay in L1. */
/* The same with DV fixed at compile time: the DV codeword coefficients are broadcast once per code
 * and the FMA chain unrolls (same operations in the same order per element as below). */
#define DEF_LONG(DV)                                                                            \
    static void table_long_##DV(const float *b, int64_t chan, int64_t Hq, int64_t pw, int64_t cs, \
                                const float *cb, int64_t K, int64_t D, float *t) {              \
        int64_t rowsz = K * cs, nfull = pw / VL * VL;                                           \
        for (int64_t i = 0; i < Hq; ++i) {                                                      \
            const float *xi = b + i * pw;                                                       \
            float *ti = t + i * rowsz;                                                          \
            for (int64_t k = 0; k < K; ++k) {                                                   \
                const float *c = cb + k * D;                                                    \
                float *out = ti + k * cs;                                                       \
                vf cv[DV];                                                                      \
                for (int d = 0; d < DV; ++d) cv[d] = vset1(c[d]);                               \
                int64_t j = 0;                                                                  \
                for (; j < nfull; j += VL) {                                                    \
                    vf acc = vmul(cv[0], vload(xi + j));                                        \
                    for (int d = 1; d < DV; ++d) acc = vfmadd(cv[d], vload(xi + d * chan + j), acc); \
                    vstore(out + j, acc);                                                       \
                }                                                                               \
                for (; j < pw; ++j) {                                                           \
                    float acc = c[0] * xi[j];                                                   \
                    for (int d = 1; d < DV; ++d) acc = fmaf(c[d], xi[d * chan + j], acc);       \
                    out[j] = acc;                                                               \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }
#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
DEF_LONG(1)
DEF_LONG(2)
DEF_LONG(3)
DEF_LONG(4)
DEF_LONG(5)
DEF_LONG(6)
DEF_LONG(7)
DEF_LONG(8)
#pragma GCC pop_options
static const table_fn LONGS[9] = {0, table_long_1, table_long_2, table_long_3, table_long_4,
                                  table_long_5, table_long_6, table_long_7, table_long_8};

static void table_rows_long(const float *b, int64_t chan, int64_t Hq, int64_t pw, int64_t cs, const float *cb, int64_t K,
                            int64_t D, int64_t dv, float *t) {
    if (dv <= 8) {
        LONGS[dv](b, chan, Hq, pw, cs, cb, K, D, t);
        return;
    }
    int64_t rowsz = K * cs, nfull = pw / VL * VL;
    for (int64_t i = 0; i < Hq; ++i) {
        const float *xi = b + i * pw;
        float *ti = t + i * rowsz;
        for (int64_t k = 0; k < K; ++k) {
            const float *c = cb + k * D;
            float *out = ti + k * cs;
            int64_t j = 0;
            for (; j < nfull; j += VL) {
                vf acc = vmul(vset1(c[0]), vload(xi + j));
                for (int64_t d = 1; d < dv; ++d) acc = vfmadd(vset1(c[d]), vload(xi + d * chan + j), acc);
                vstore(out + j, acc);
            }
            for (; j < pw; ++j) {
                float acc = c[0] * xi[j];
                for (int64_t d = 1; d < dv; ++d) acc = fmaf(c[d], xi[d * chan + j], acc);
                out[j] = acc;
            }
        }
    }
}

/* One (n, g, s) job's table rows: rows consecutive input rows at b (row stride pw, channel stride
 * chan) -> t [rows, K, pw]. The same arithmetic for any row range, so a table built row by row
 * (the fused path) equals the staged one bit for bit. */
static void table_job(const float *b, int64_t chan, int64_t rows, int64_t pw, int64_t cs, const float *cbs, int64_t K,
                      int64_t D, int64_t dv, float *t) {
    int64_t rowsz = K * cs;
    if (pw >= 8 * VL) {
        table_rows_long(b, chan, rows, pw, cs, cbs, K, D, dv, t);
    } else if (dv <= 8) {
        TABLES[dv](b, chan, rows, pw, cs, cbs, K, D, t);
    } else { /* wide subspaces: the first 8 dims by SIMD, the rest accumulated on top */
        TABLES[8](b, chan, rows, pw, cs, cbs, K, D, t);
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t k = 0; k < K; ++k)
                for (int64_t d = 8; d < dv; ++d) {
                    float c = cbs[k * D + d];
                    const float *x = b + d * chan + i * pw;
                    float *o = t + i * rowsz + k * cs;
                    for (int64_t j = 0; j < pw; ++j) o[j] = fmaf(c, x[j], o[j]);
                }
    }
    if (cs > pw) /* the gap after each code's row: read only into dropped lanes, keep it zero */
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t k = 0; k < K; ++k) memset(t + i * rowsz + k * cs + pw, 0, (size_t)(cs - pw) * sizeof(float));
}

void qc_qconv_table(const qc_qconv_table_plan *p, const float *xq, int64_t N, float *T) {
    const int64_t G = p->G, Hq = p->Hq, cs = p->cs, S = p->S, K = p->K, D = p->D;
    const float *cb = p->cb;
    int64_t Cg = p->C / G, C = p->C, pw = p->P * p->Wq, chan = Hq * pw, rowsz = K * cs;
    int64_t jobs = N * G * S;
    int nth = qc_nthreads;
#pragma omp parallel for num_threads(nth) if (nth > 1 && jobs > 1) schedule(static)
    for (int64_t job = 0; job < jobs; ++job) {
        int64_t s = job % S, g = (job / S) % G, n = job / (S * G);
        int64_t dv = qc_min64(D, Cg - s * D);
        table_job(xq + (n * C + g * Cg + s * D) * chan, chan, Hq, pw, cs, cb + s * K * D, K, D, dv,
                  T + job * Hq * rowsz);
    }
}

static void fill_bias_s(float *slot, int64_t t0, int64_t t1, const float *bias_t, int64_t nq, int64_t astride,
                        int64_t rt) {
    for (int64_t tl = t0; tl < t1; ++tl)
        for (int64_t r = 0; r < rt; ++r) {
            float b = bias_t[tl * rt + r], *d = slot + (tl * rt + r) * astride;
            for (int64_t q = 0; q < nq; ++q) d[q] = b;
        }
}
static void fill_bias(float *slot, int64_t t0, int64_t t1, const float *bias_t, int64_t nq) {
    fill_bias_s(slot, t0, t1, bias_t, nq, WMAX, R);
}

/* Table-row-major look-up: the taps of group gr all have the tap-row offset du = gdu[gr] = u / st
 * and add table row rho into output row rho - du. Partial sums of the output rows in flight wait
 * in a ring of kr + 1 slots, acc [kr + 1, ntiles, R, WMAX], so each table row is read once, while
 * it is hot. Each thread takes a fixed, contiguous range of tiles: results do not depend on the
 * thread count. */
int64_t qc_qconv_lookup_scratch(const qc_qconv_lookup_plan *p) { return (p->kr + 1) * p->ntiles * R * WMAX; }

void qc_qconv_lookup(const qc_qconv_lookup_plan *p, const float *T, int64_t N, float *acc, float *y) {
    const int64_t tsize = p->tsize, gsize = p->gsize, rowstride = p->rowstride, ntiles = p->ntiles;
    const int64_t ntaps = p->ntaps, ngroups = p->ngroups, kr = p->kr, O = p->O, Ho = p->Ho, Wo = p->Wo;
    const int32_t *tile_o0 = p->tile_o0, *tile_rc = p->tile_rc, *tile_g = p->tile_g, *offs = p->offs;
    const int32_t *gstart = p->gstart, *gdu = p->gdu;
    const float *bias_t = p->bias_t;
    int64_t HWo = Ho * Wo, ring = kr + 1, slotsz = ntiles * R * WMAX;
    int nth = qc_nthreads < ntiles ? qc_nthreads : (int)ntiles;
    if (nth < 1) nth = 1;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int64_t t0 = ntiles * tid / nth, t1 = ntiles * (tid + 1) / nth;
        int64_t vo[VMAX];
        float *accp[VMAX];
        for (int v = 0; v < VMAX; ++v) vo[v] = v * VL;
        for (int64_t n = 0; n < N; ++n) {
            const float *Tn = T + n * tsize;
            for (int64_t c0 = 0; c0 < Wo; c0 += WMAX) {
                int64_t width = qc_min64(WMAX, Wo - c0), nvc = (width + VL - 1) / VL, done = 0;
                for (int64_t rho = 0; rho < Ho + kr - 1; ++rho) {
                    if (rho < Ho) fill_bias(acc + (rho % ring) * slotsz, t0, t1, bias_t, nvc * VL);
                    for (int64_t gr = 0; gr < ngroups; ++gr) {
                        int64_t i0 = rho - gdu[gr];
                        if (i0 < 0 || i0 >= Ho) continue;
                        float *slot = acc + (i0 % ring) * slotsz;
                        for (int64_t tl = t0; tl < t1; ++tl) {
                            for (int64_t v = 0; v < nvc; ++v) accp[v] = slot + tl * R * WMAX + v * VL;
                            TILESA[nvc](Tn + tile_g[tl] * gsize + i0 * rowstride + c0, vo,
                                        offs + (tl * ntaps + gstart[gr]) * R, gstart[gr + 1] - gstart[gr], accp, WMAX);
                        }
                    }
                    /* rows whose last table row (i + kr - 1) has been visited are complete */
                    for (; done < Ho && done + kr - 1 <= rho; ++done) {
                        const float *slot = acc + (done % ring) * slotsz;
                        for (int64_t tl = t0; tl < t1; ++tl) {
                            float *dst = y + n * O * HWo + tile_o0[tl] * HWo + done * Wo + c0;
                            for (int r = 0; r < tile_rc[tl]; ++r)
                                memcpy(dst + r * HWo, slot + (tl * R + r) * WMAX, (size_t)width * sizeof(float));
                        }
                    }
                }
            }
        }
    }
}

#ifdef RROT
int qc_conv_fused_rot_r(void) { return RROT; }
#else
int qc_conv_fused_rot_r(void) { return 0; } /* scalar build: no rotated tiles */
#endif

/* Fused table building and look-up: the table-row-major look-up above, but table row rho
 * of every (group, subspace) is built, by the same SIMD code as qc_qconv_table, into a per-thread
 * row buffer [G, S, K, P, Wq] right before the look-ups that read it, so the table never leaves
 * L2. Offsets are relative to that row buffer (no tap-row term: group gr adds row rho into output
 * row rho - gdu[gr]). Each output's sum runs in the same order as in qc_qconv_lookup, so the
 * results are bit-identical to table + look-up, for any thread count. Jobs are (sample, band of
 * output rows); a band rebuilds the kr - 1 table rows it shares with the band above. */
int64_t qc_qconv_fused_scratch(const qc_qconv_fused_plan *p) {
    int64_t rowfl = p->rowfl, kr = p->kr, ntiles = p->ntiles, Wo = p->Wo;
    int64_t nseg = (Wo + WMAX - 1) / WMAX;
    /* + 16 floats: each thread's row buffer starts on a 64-byte line */
    return rowfl + (kr + 1) * nseg * ntiles * R * qc_min64(WMAX, (Wo + VL - 1) / VL * VL) + 16;
}

void qc_qconv_fused(const qc_qconv_fused_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                    float *y) {
    const int64_t C = p->table.C, G = p->table.G, P = p->table.P, Hq = p->table.Hq, Wq = p->table.Wq;
    const int64_t cs = p->table.cs, S = p->table.S, K = p->table.K, D = p->table.D;
    const float *cb = p->table.cb;
    const int64_t ntiles = p->ntiles, ntaps = p->ntaps, ngroups = p->ngroups, kr = p->kr;
    const int64_t O = p->O, Ho = p->Ho, Wo = p->Wo, rowfl = p->rowfl;
    int64_t tchunk = p->tchunk;
    const int32_t *tile_o0 = p->tile_o0, *tile_rc = p->tile_rc, *tile_g = p->tile_g, *offs = p->offs;
    const int32_t *gstart = p->gstart, *gdu = p->gdu, *gdv = p->gdv;
    const float *bias_t = p->bias_t;
    int64_t Cg = C / G, pw = P * Wq, chan = Hq * pw, rowstride = K * cs, gsz = S * rowstride;
    /* gdv: rotated tiles of RROT channels (see above), else tiles of R with shifted loads */
#ifdef RROT
    int64_t rt = gdv ? RROT : R;
    rot2_t ix[VL];
    for (int64_t v = 0; v < VL; ++v) ix[v] = rot2_index(v);
#else
    int64_t rt = R;
    (void)gdv;
#endif
    /* accumulator rows as wide as a segment's vectors (dense: no cache sets left idle) */
    int64_t astride = qc_min64(WMAX, (Wo + VL - 1) / VL * VL);
    int64_t HWo = Ho * Wo, nseg = (Wo + WMAX - 1) / WMAX, segsz = ntiles * rt * astride, slotsz = nseg * segsz;
    int64_t ring = kr + 1, per = qc_qconv_fused_scratch(p);
    if (tchunk < 1) tchunk = ntiles;
    int nth = qc_nthreads < nscratch ? qc_nthreads : (int)nscratch;
    if (nth < 1) nth = 1;
    int64_t bands = (nth > 1 && N % nth) ? nth : 1;
    if (bands > Ho) bands = Ho;
    int64_t jobs = N * bands;
    if (nth > jobs) nth = (int)jobs;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *row = scratch + tid * per;
        row += ((64 - (uintptr_t)row % 64) % 64) / sizeof(float); /* float-aligned input: whole floats */
        float *acc = row + rowfl;
        /* reads past the last row feed dropped lanes only: keep them finite */
        memset(row + G * gsz, 0, (size_t)(rowfl - G * gsz) * sizeof(float));
        int64_t vo[VMAX];
        float *accp[VMAX];
        for (int v = 0; v < VMAX; ++v) vo[v] = v * VL;
#pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; ++job) {
            int64_t n = job / bands, bd = job % bands;
            int64_t ilo = Ho * bd / bands, ihi = Ho * (bd + 1) / bands, done = ilo;
            for (int64_t rho = ilo; rho < ihi + kr - 1; ++rho) {
                for (int64_t gs = 0; gs < G * S; ++gs) {
                    int64_t g = gs / S, s = gs % S, dv = qc_min64(D, Cg - s * D);
                    table_job(xq + (n * C + g * Cg + s * D) * chan + rho * pw, chan, 1, pw, cs, cb + s * K * D, K, D,
                              dv, row + gs * rowstride);
                }
                for (int64_t seg = 0; seg < nseg; ++seg) {
                    int64_t c0 = seg * WMAX, width = qc_min64(WMAX, Wo - c0), nvc = (width + VL - 1) / VL;
                    if (rho < ihi)
                        fill_bias_s(acc + (rho % ring) * slotsz + seg * segsz, 0, ntiles, bias_t, nvc * VL, astride,
                                    rt);
                    for (int64_t ta = 0; ta < ntiles; ta += tchunk) {
                        int64_t tb = qc_min64(ta + tchunk, ntiles);
                        for (int64_t gr = 0; gr < ngroups; ++gr) {
                            int64_t i0 = rho - gdu[gr];
                            if (i0 < ilo || i0 >= ihi) continue;
                            float *slot = acc + (i0 % ring) * slotsz + seg * segsz;
                            for (int64_t tl = ta; tl < tb; ++tl) {
                                for (int64_t v = 0; v < nvc; ++v) accp[v] = slot + tl * rt * astride + v * VL;
                                const int32_t *of = offs + (tl * ntaps + gstart[gr]) * rt;
#ifdef RROT
                                if (gdv) {
                                    TILESROT[nvc](row + tile_g[tl] * gsz + c0, of, gstart[gr + 1] - gstart[gr], accp,
                                                  astride, ix, gdv[gr]);
                                    continue;
                                }
#endif
                                TILESA[nvc](row + tile_g[tl] * gsz + c0, vo, of, gstart[gr + 1] - gstart[gr], accp,
                                            astride);
                            }
                        }
                    }
                }
                /* rows whose last table row (i + kr - 1) has been visited are complete */
                for (; done < ihi && done + kr - 1 <= rho; ++done) {
                    const float *slot = acc + (done % ring) * slotsz;
                    for (int64_t seg = 0; seg < nseg; ++seg) {
                        int64_t c0 = seg * WMAX, width = qc_min64(WMAX, Wo - c0);
                        for (int64_t tl = 0; tl < ntiles; ++tl) {
                            float *dst = y + n * O * HWo + tile_o0[tl] * HWo + done * Wo + c0;
                            for (int r = 0; r < tile_rc[tl]; ++r)
                                copy_row(dst + r * HWo, slot + seg * segsz + (tl * rt + r) * astride, width);
                        }
                    }
                }
            }
        }
    }
}

int qc_conv_band_r(void) { return RB; }
#ifdef RROT
int qc_conv_band_rot_r(void) { return RROT; }
#else
int qc_conv_band_rot_r(void) { return 0; } /* scalar build: no rotated tiles */
#endif

/* Narrow stride-1 layers (an output row fits one vector, Wo <= VL): band path. Output rows are
 * taken Bo at a time; for each (group g, subspace s) the table of the band's BR = Bo + k - 1 input
 * rows, Tb[k][r][WP] (rows padded to WP = whole vectors, zeros past Wq), is built into a per-thread
 * buffer small enough for L1 (~40 KB), and every output channel of g then adds its k*k taps of s:
 * tap (u, v) with code a feeds output row i0 + q from Tb[a][u + q][v ..], so one offset serves the
 * band's V <= Bo rows (V vectors WP floats apart). Partial sums of the band (all channels) live in
 * acc [ntiles, R, Bo, VL] across subspaces. Sum order per output: bias, then s ascending, taps in
 * offs order: fixed, whatever the thread count. Jobs are (sample, band). */
int64_t qc_qconv_band_scratch(const qc_qconv_band_plan *p) {
    return p->K * p->BR * p->WP + 2 * VL + 16 + p->D * p->BR * p->WP + p->ntiles * RB * p->Bo * VL;
}

void qc_qconv_band(const qc_qconv_band_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                   float *y) {
    const int64_t C = p->C, G = p->G, Hq = p->Hq, Wq = p->Wq, S = p->S, K = p->K, D = p->D;
    const int64_t ntiles = p->ntiles, tps = p->tps, O = p->O, Ho = p->Ho, Wo = p->Wo;
    const int64_t Bo = p->Bo, BR = p->BR, WP = p->WP, k = p->k;
    const int rot = p->rot;
    const float *cb = p->cb, *bias_t = p->bias_t;
    const int32_t *tile_o0 = p->tile_o0, *tile_rc = p->tile_rc, *tile_g = p->tile_g, *offs = p->offs;
    int64_t Cg = C / G, chan = Hq * Wq, HWo = Ho * Wo, astride = Bo * VL, tsz = K * BR * WP;
    int64_t per = qc_qconv_band_scratch(p), nbands = (Ho + Bo - 1) / Bo;
    int64_t jobs = N * nbands, nvec = WP / VL, tpg = ntiles / G; /* tiles per group, group-major */
#ifdef RROT
    int64_t rb = rot ? RROT : RB; /* channels per tile */
    rot2_t ix[VL];
    for (int64_t v = 0; v < VL; ++v) ix[v] = rot2_index(v);
#else
    int64_t rb = RB;
    (void)rot;
#endif
    (void)k;
    int nth = qc_nthreads < nscratch ? qc_nthreads : (int)nscratch;
    if (nth < 1) nth = 1;
    if (nth > jobs) nth = (int)jobs;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *tb = scratch + tid * per;
        tb += ((64 - (uintptr_t)tb % 64) % 64) / sizeof(float);
        float *xb = tb + tsz + 2 * VL, *acc = xb + D * BR * WP;
        /* rows a short last band leaves unbuilt and the slack past the last code feed dropped
         * lanes only: keep them zero (finite, no denormal assists) */
        memset(tb, 0, (size_t)(tsz + 2 * VL) * sizeof(float));
        int64_t vo[VMAX];
        float *accp[VMAX];
        for (int v = 0; v < VMAX; ++v) vo[v] = v * WP;
#pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; ++job) {
            int64_t n = job / nbands, i0 = (job % nbands) * Bo;
            int64_t V = qc_min64(Bo, Ho - i0), nrows = V + BR - Bo; /* input rows the band reads */
            for (int64_t tl = 0; tl < ntiles; ++tl)
                for (int r = 0; r < rb; ++r) {
                    float b = bias_t[tl * rb + r], *d = acc + (tl * rb + r) * astride;
                    for (int64_t q = 0; q < V * VL; ++q) d[q] = b;
                }
            for (int64_t g = 0; g < G; ++g)
                for (int64_t s = 0; s < S; ++s) {
                    int64_t dv = qc_min64(D, Cg - s * D);
                    const float *cbs = cb + s * K * D;
                    /* the band's input rows of this subspace, zero-padded to WP columns */
                    for (int64_t d = 0; d < dv; ++d)
                        for (int64_t r = 0; r < nrows; ++r) {
                            float *dst = xb + (d * BR + r) * WP;
                            memcpy(dst, xq + (n * C + g * Cg + s * D + d) * chan + (i0 + r) * Wq,
                                   (size_t)Wq * sizeof(float));
                            memset(dst + Wq, 0, (size_t)(WP - Wq) * sizeof(float));
                        }
                    for (int64_t r = 0; r < nrows; ++r)
                        for (int64_t jv = 0; jv < nvec; ++jv) {
                            const float *xr = xb + r * WP + jv * VL;
                            float *tr = tb + r * WP + jv * VL;
                            if (dv == 8) {
                                vf x0 = vload(xr), x1 = vload(xr + BR * WP), x2 = vload(xr + 2 * BR * WP),
                                   x3 = vload(xr + 3 * BR * WP), x4 = vload(xr + 4 * BR * WP),
                                   x5 = vload(xr + 5 * BR * WP), x6 = vload(xr + 6 * BR * WP),
                                   x7 = vload(xr + 7 * BR * WP);
                                for (int64_t k = 0; k < K; ++k) {
                                    const float *c = cbs + k * D;
                                    vf a = vmul(vset1(c[0]), x0);
                                    a = vfmadd(vset1(c[1]), x1, a);
                                    a = vfmadd(vset1(c[2]), x2, a);
                                    a = vfmadd(vset1(c[3]), x3, a);
                                    a = vfmadd(vset1(c[4]), x4, a);
                                    a = vfmadd(vset1(c[5]), x5, a);
                                    a = vfmadd(vset1(c[6]), x6, a);
                                    a = vfmadd(vset1(c[7]), x7, a);
                                    vstore(tr + k * BR * WP, a);
                                }
                            } else {
                                for (int64_t k = 0; k < K; ++k) {
                                    const float *c = cbs + k * D;
                                    vf a = vmul(vset1(c[0]), vload(xr));
                                    for (int64_t d = 1; d < dv; ++d)
                                        a = vfmadd(vset1(c[d]), vload(xr + d * BR * WP), a);
                                    vstore(tr + k * BR * WP, a);
                                }
                            }
                        }
                    for (int64_t tl = 0; tl < ntiles; ++tl) {
                        if (tile_g[tl] != g) continue;
                        for (int64_t v = 0; v < V; ++v) accp[v] = acc + tl * rb * astride + v * VL;
                        const int32_t *of = offs + ((g * S + s) * tpg + tl - g * tpg) * tps * rb;
#ifdef RROT
                        if (rot) {
                            TILESR[V](tb, of, k, accp, astride, ix);
                            continue;
                        }
#endif
                        TILESB[V](tb, vo, of, tps, accp, astride);
                    }
                }
            for (int64_t tl = 0; tl < ntiles; ++tl)
                for (int r = 0; r < tile_rc[tl]; ++r)
                    for (int64_t v = 0; v < V; ++v)
                        copy_row(y + n * O * HWo + (tile_o0[tl] + r) * HWo + (i0 + v) * Wo, acc + (tl * rb + r) * astride + v * VL, Wo);
        }
    }
}

