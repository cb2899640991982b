/* Quantized conv with integer tables (qcnn.reference: int_tables, qconv_int_table/lookup).
 *
 * The table entries are rounded to integers in [-Q, Q] with one scale per sample (Q = 127 for
 * int8, 32767 for int16) and stored as int16. The look-ups then add integers, which is exact,
 * so every schedule and thread count gives the reference's sums bit for bit:
 *   - lim > 0 (int8): the sums run in int16 lanes, twice the lanes of a float vector, and are
 *     widened into int32 before a run of lim terms could overflow (lim * Q <= 32767);
 *   - lim = 0 (int16): every table load is widened to int32 (the entries need all 16 bits).
 *
 * Schedule (band): jobs are (sample, band of Bo output rows). A band's outputs are one lane array
 * [Bo, Wq] (row stride Wq, lanes j >= Wo dropped), so for a unit (group g, subspace s, stride
 * phase ph) with table Tb[a][r][j] = q(sum_d xq[g Cg + s D + d][i0 + r][ph][j] cb[s][a][d]),
 * r < BR = Bo + kr - 1, tap (u, v) of phase ph with code a adds to every lane L the entry
 * Tb[a][0][L + (u / st) Wq + v / st]: one run of contiguous vector adds at a fixed offset.
 * Each unit's table (K BR Wq int16) is built in a per-thread buffer right before every channel
 * of g adds its taps of that unit (register tiles of TR channels x up to TV vectors); partial
 * sums live in acc16/acc32 [Og, LP]. The staged entry points build every unit's table of the
 * whole image (one band, Bo = Ho) first, then run the same look-ups.
 *
 * Table entries are computed as the reference states: t = x0 c0, then t = t + xd cd in float32
 * with no fused multiply-add (this file is compiled with fp-contract off), q = clip(rint(t inv)).
 * Vectors are GCC vector extensions: one source for AVX-512, AVX2 and the SSE2 baseline.
 */
#pragma GCC optimize("fp-contract=off")
#include <string.h>
#include "qc_internal.h"

#if defined(__AVX512BW__)
#define IB 64
#define TR 4
#define TV 6
#elif defined(__AVX2__)
#define IB 32
#define TR 3
#define TV 4
#else
#define IB 16
#define TR 3
#define TV 4
#endif
#define L16 (IB / 2) /* int16 lanes per vector */
#define L32 (IB / 4) /* int32 lanes per vector */
typedef int16_t vi16 __attribute__((vector_size(IB)));
typedef int32_t vi32 __attribute__((vector_size(IB)));
typedef int16_t hi16 __attribute__((vector_size(IB / 2)));

#define QI static inline __attribute__((always_inline))
QI vi16 ld16(const int16_t *p) { vi16 v; memcpy(&v, p, sizeof v); return v; }
QI void st16(int16_t *p, vi16 v) { memcpy(p, &v, sizeof v); }
QI vi32 ld32(const int32_t *p) { vi32 v; memcpy(&v, p, sizeof v); return v; }
QI void st32(int32_t *p, vi32 v) { memcpy(p, &v, sizeof v); }
/* L32 int16 entries at p, widened to int32 */
QI vi32 ldw(const int16_t *p) { hi16 h; memcpy(&h, p, sizeof h); return __builtin_convertvector(h, vi32); }

int qc_int_lanes(void) { return L16; }
int qc_int_tile_r(void) { return TR; }
int qc_int_tile_v(void) { return TV; }

/* acc16 [TR rows astride apart][V vectors] += sum over ntaps taps of Tb[of[t TR + r] + v L16 ..] */
#define DEF_TILE16(V)                                                                            \
    static void tile16_##V(const int16_t *tb, const int32_t *of, int64_t ntaps, int16_t *acc, int64_t astride) { \
        vi16 a[TR][V];                                                                           \
        for (int r = 0; r < TR; ++r)                                                             \
            for (int v = 0; v < V; ++v) a[r][v] = ld16(acc + r * astride + v * L16);             \
        for (int64_t t = 0; t < ntaps; ++t, of += TR)                                            \
            for (int r = 0; r < TR; ++r) {                                                       \
                const int16_t *p = tb + of[r];                                                   \
                for (int v = 0; v < V; ++v) a[r][v] += ld16(p + v * L16);                        \
            }                                                                                    \
        for (int r = 0; r < TR; ++r)                                                             \
            for (int v = 0; v < V; ++v) st16(acc + r * astride + v * L16, a[r][v]);             \
    }
/* the same with int32 sums: each int16 vector of lanes is two widened halves */
#define DEF_TILE32(V)                                                                            \
    static void tile32_##V(const int16_t *tb, const int32_t *of, int64_t ntaps, int32_t *acc, int64_t astride) { \
        vi32 a[TR][2 * V];                                                                       \
        for (int r = 0; r < TR; ++r)                                                             \
            for (int v = 0; v < 2 * V; ++v) a[r][v] = ld32(acc + r * astride + v * L32);         \
        for (int64_t t = 0; t < ntaps; ++t, of += TR)                                            \
            for (int r = 0; r < TR; ++r) {                                                       \
                const int16_t *p = tb + of[r];                                                   \
                for (int v = 0; v < 2 * V; ++v) a[r][v] += ldw(p + v * L32);                     \
            }                                                                                    \
        for (int r = 0; r < TR; ++r)                                                             \
            for (int v = 0; v < 2 * V; ++v) st32(acc + r * astride + v * L32, a[r][v]);         \
    }
DEF_TILE16(1) DEF_TILE16(2) DEF_TILE16(3) DEF_TILE16(4) DEF_TILE16(5) DEF_TILE16(6)
DEF_TILE32(1) DEF_TILE32(2) DEF_TILE32(3)
typedef void (*tile16_fn)(const int16_t *, const int32_t *, int64_t, int16_t *, int64_t);
typedef void (*tile32_fn)(const int16_t *, const int32_t *, int64_t, int32_t *, int64_t);
static const tile16_fn TILE16[7] = {0, tile16_1, tile16_2, tile16_3, tile16_4, tile16_5, tile16_6};
static const tile32_fn TILE32[4] = {0, tile32_1, tile32_2, tile32_3};
#define TV32 3 /* vectors of int16 lanes per int32 tile (2 TV32 int32 vectors per row) */

/* The per-sample scale (qcnn.reference.int_tables): bound = max|x[n]| * cmax; xq holds x and
 * zeros, so its maximum is x's. inv = Q / bound, scale = bound / Q (0, 0 when bound is 0). */
static void sample_scales(const float *xq, int64_t per, float cmax, int32_t qmax, float *inv, float *scale) {
    float m = 0.0f;
    for (int64_t i = 0; i < per; ++i) {
        float a = xq[i] < 0.0f ? -xq[i] : xq[i];
        m = a > m ? a : m;
    }
    float bound = m * cmax;
    *inv = bound > 0.0f ? (float)qmax / bound : 0.0f;
    *scale = bound > 0.0f ? bound / (float)qmax : 0.0f;
}

typedef float vfl __attribute__((vector_size(IB)));
QI vfl ldf(const float *p) { vfl v; memcpy(&v, p, sizeof v); return v; }
QI vfl vsel(vi32 m, vfl a, vfl b) { return (vfl)(((vi32)a & m) | ((vi32)b & ~m)); }

/* round t * inv to the nearest integer (ties to even) in [-Q, Q]: clip first (the same result,
 * Q being an integer), then the float32 round-to-integer trick, exact for |y| <= 2^22 */
QI int16_t quantize(float t, float inv, float q) {
    float y = t * inv;
    y = y > q ? q : y;
    y = y < -q ? -q : y;
    y = (y + 12582912.0f) - 12582912.0f;
    return (int16_t)(int32_t)y;
}
/* the same on L32 lanes: clip by min/max, then the conversion rounding to nearest-even (the
 * default MXCSR mode) on x86; the portable add/subtract trick elsewhere */
#if defined(__AVX512BW__)
#include <immintrin.h>
QI hi16 vquantize(vfl t, vfl inv, vfl q) {
    __m512 y = _mm512_mul_ps((__m512)t, (__m512)inv);
    y = _mm512_min_ps(_mm512_max_ps(y, _mm512_sub_ps(_mm512_setzero_ps(), (__m512)q)), (__m512)q);
    return (hi16)_mm512_cvtepi32_epi16(_mm512_cvtps_epi32(y));
}
#elif defined(__AVX2__)
#include <immintrin.h>
QI hi16 vquantize(vfl t, vfl inv, vfl q) {
    __m256 y = _mm256_mul_ps((__m256)t, (__m256)inv);
    y = _mm256_min_ps(_mm256_max_ps(y, _mm256_sub_ps(_mm256_setzero_ps(), (__m256)q)), (__m256)q);
    __m256i i = _mm256_cvtps_epi32(y);
    return (hi16)_mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
}
#else
QI hi16 vquantize(vfl t, vfl inv, vfl q) {
    vfl y = t * inv;
    y = vsel(y > q, q, y);
    y = vsel(y < -q, -q, y);
    y = (y + 12582912.0f) - 12582912.0f;
    return __builtin_convertvector(__builtin_convertvector(y, vi32), hi16);
}
#endif

/* One contiguous run of n table columns for all K codes: out[a * bs + j] = q(sum_d x[d * xs + j] cb[a][d]),
 * j < n. The dv inputs of L32 columns stay in registers while every code is computed. */
#define DEF_RUN(DV)                                                                              \
    static void run_##DV(const float *x, int64_t xs, int64_t n, const float *cb, int64_t K, int64_t D, float inv, \
                         float q, int16_t *out, int64_t bs) {                                    \
        const vfl iv = (vfl){0} + inv, qv = (vfl){0} + q;                                        \
        for (int64_t j = 0; j < n; j += L32) {                                                   \
            vfl xv[DV];                                                                          \
            int64_t m = qc_min64(L32, n - j);                                                    \
            if (m == L32) {                                                                      \
                for (int d = 0; d < DV; ++d) xv[d] = ldf(x + d * xs + j);                        \
            } else {                                                                             \
                for (int d = 0; d < DV; ++d) {                                                   \
                    float tmp[L32] = {0};                                                        \
                    memcpy(tmp, x + d * xs + j, (size_t)m * sizeof(float));                      \
                    xv[d] = ldf(tmp);                                                            \
                }                                                                                \
            }                                                                                    \
            for (int64_t a = 0; a < K; ++a) {                                                    \
                const float *c = cb + a * D;                                                     \
                vfl t = xv[0] * c[0];                                                            \
                for (int d = 1; d < DV; ++d) t = t + xv[d] * c[d];                               \
                hi16 h = vquantize(t, iv, qv);                                                   \
                memcpy(out + a * bs + j, &h, sizeof h); /* a tail's extra lanes: into the slack */ \
            }                                                                                    \
        }                                                                                        \
    }
DEF_RUN(1) DEF_RUN(2) DEF_RUN(3) DEF_RUN(4) DEF_RUN(5) DEF_RUN(6) DEF_RUN(7) DEF_RUN(8)
typedef void (*run_fn)(const float *, int64_t, int64_t, const float *, int64_t, int64_t, float, float, int16_t *, int64_t);
static const run_fn RUNS[9] = {0, run_1, run_2, run_3, run_4, run_5, run_6, run_7, run_8};

/* any dv: the scalar order of the reference */
static void run_any(const float *x, int64_t xs, int64_t n, const float *cb, int64_t K, int64_t D, int64_t dv, float inv,
                    float q, int16_t *out, int64_t bs) {
    for (int64_t a = 0; a < K; ++a) {
        const float *c = cb + a * D;
        for (int64_t j = 0; j < n; ++j) {
            float t = x[j] * c[0];
            for (int64_t d = 1; d < dv; ++d) t = t + x[d * xs + j] * c[d];
            out[a * bs + j] = quantize(t, inv, q);
        }
    }
}

/* Unit (g, s, ph) table of rows i0 .. i0 + BR - 1 (rows >= Hq: zeros): tb [K][BR Wq]. */
static void unit_table(const qc_qconv_int_plan *p, const float *xqn, int64_t g, int64_t s, int64_t ph, int64_t i0,
                       float inv, int16_t *tb) {
    const int64_t C = p->C, G = p->G, P = p->P, Hq = p->Hq, Wq = p->Wq, K = p->K, D = p->D, BR = p->BR;
    const int64_t Cg = C / G, dv = qc_min64(D, Cg - s * D), bs = p->CS, rows = qc_max64(0, qc_min64(BR, Hq - i0));
    const float *cb = p->cb + s * K * D, q = (float)p->qmax;
    const float *x0 = xqn + (g * Cg + s * D) * Hq * P * Wq + ph * Wq;
    const int64_t xs = Hq * P * Wq;
    /* one phase: the rows are one contiguous run */
    const int64_t nruns = P == 1 ? (rows > 0) : rows, len = P == 1 ? rows * Wq : Wq;
    for (int64_t r = 0; r < nruns; ++r) {
        const float *x = x0 + (i0 + r) * P * Wq;
        if (dv <= 8)
            RUNS[dv](x, xs, len, cb, K, D, inv, q, tb + r * Wq, bs);
        else
            run_any(x, xs, len, cb, K, D, dv, inv, q, tb + r * Wq, bs);
    }
    if (rows < BR)
        for (int64_t a = 0; a < K; ++a) memset(tb + a * bs + rows * Wq, 0, (size_t)((BR - rows) * Wq) * sizeof(int16_t));
}

static int64_t tb_elems(const qc_qconv_int_plan *p) { return p->K * p->CS + 2 * p->LP + 64; }
/* accumulator rows: the group's tiles, a short last tile's repeated channels included */
static int64_t og_lanes(const qc_qconv_int_plan *p) { return p->ntiles / p->G * TR * p->LP; }

int64_t qc_qconv_int_table_size(const qc_qconv_int_plan *p) {
    return p->G * p->nunits * p->K * p->CS + 2 * p->LP + 64;
}

/* bytes of one thread's scratch, in floats: table buffer, float row, acc16, acc32, alignment */
int64_t qc_qconv_int_scratch(const qc_qconv_int_plan *p) {
    int64_t bytes = tb_elems(p) * 2 + p->Wq * 4 + og_lanes(p) * 6 + 4 * 64;
    return (bytes + 3) / 4;
}

static void *align64(void *ptr) { return (char *)ptr + (64 - (uintptr_t)ptr % 64) % 64; }

/* One band: output rows i0 .. i0 + V - 1 of sample n. T: the sample's staged tables (units of the
 * whole image, BR = the plan's) or NULL to build each unit into the thread's buffer. */
static void band(const qc_qconv_int_plan *p, const float *xqn, const int16_t *T, int64_t i0, int64_t V, float inv,
                 float scale, void *scratch, float *yn) {
    const int64_t G = p->G, Wq = p->Wq, LP = p->LP, O = p->O, Og = O / G;
    const int64_t Ho = p->Ho, Wo = p->Wo, nunits = p->nunits, tpg = p->ntiles / G, ntaps = p->ntaps;
    const int64_t lim = p->lim, unit_sz = p->K * p->CS;
    int16_t *tb = align64(scratch);
    int16_t *acc16 = align64(tb + tb_elems(p));
    int32_t *acc32 = align64(acc16 + og_lanes(p));
    const int64_t nvec = LP / L16, nacc = og_lanes(p);
    for (int64_t g = 0; g < G; ++g) {
        memset(acc32, 0, (size_t)nacc * sizeof(int32_t));
        if (lim > 0) memset(acc16, 0, (size_t)nacc * sizeof(int16_t));
        int64_t run = 0; /* terms in acc16 since the last widening */
        for (int64_t u = 0; u < nunits; ++u) {
            int64_t t0 = p->ustart[u], nt = p->ustart[u + 1] - t0;
            const int16_t *tab;
            if (T) {
                tab = T + (g * nunits + u) * unit_sz;
            } else {
                unit_table(p, xqn, g, p->unit_s[u], p->unit_ph[u], i0, inv, tb);
                tab = tb;
            }
            if (lim > 0 && run + nt > lim) {
                for (int64_t l = 0; l < nacc; ++l) acc32[l] += acc16[l];
                memset(acc16, 0, (size_t)nacc * sizeof(int16_t));
                run = 0;
            }
            run += nt;
            for (int64_t tl = 0; tl < tpg; ++tl) {
                int64_t tile = g * tpg + tl, o0 = p->tile_o0[tile] - g * Og;
                const int32_t *of = p->offs + (tile * ntaps + t0) * TR;
                if (lim > 0) {
                    for (int64_t v0 = 0; v0 < nvec; v0 += TV)
                        TILE16[qc_min64(TV, nvec - v0)](tab + v0 * L16, of, nt, acc16 + o0 * LP + v0 * L16, LP);
                } else {
                    for (int64_t v0 = 0; v0 < nvec; v0 += TV32)
                        TILE32[qc_min64(TV32, nvec - v0)](tab + v0 * L16, of, nt, acc32 + o0 * LP + v0 * L16, LP);
                }
            }
        }
        /* epilogue: y = float32(sum) * scale + bias (+ ReLU) */
        for (int64_t o = 0; o < Og; ++o) {
            float b = p->bias[g * Og + o];
            const int32_t *a32 = acc32 + o * LP;
            const int16_t *a16 = acc16 + o * LP;
            for (int64_t q = 0; q < V; ++q) {
                float *dst = yn + ((g * Og + o) * Ho + i0 + q) * Wo;
                const int64_t l0 = q * Wq;
                if (lim > 0)
                    for (int64_t j = 0; j < Wo; ++j) dst[j] = (float)(a32[l0 + j] + a16[l0 + j]) * scale + b;
                else
                    for (int64_t j = 0; j < Wo; ++j) dst[j] = (float)a32[l0 + j] * scale + b;
                if (p->relu)
                    for (int64_t j = 0; j < Wo; ++j) dst[j] = dst[j] > 0.0f ? dst[j] : 0.0f;
            }
        }
    }
}

static int threads_for(int64_t jobs, int64_t nscratch) {
    int nth = qc_nthreads < nscratch ? qc_nthreads : (int)nscratch;
    if (nth < 1) nth = 1;
    if (nth > jobs) nth = (int)jobs;
    return nth;
}

void qc_qconv_int(const qc_qconv_int_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                  float *y) {
    const int64_t per = p->C * p->Hq * p->P * p->Wq, Bo = p->Bo, Ho = p->Ho, nb = (Ho + Bo - 1) / Bo;
    const int64_t jobs = N * nb, sz = qc_qconv_int_scratch(p), ysz = p->O * Ho * p->Wo;
    int nth = threads_for(jobs, nscratch);
    float *inv = scratch + nth * sz, *scale = inv + N; /* the caller's scratch holds 2 N more */
    for (int64_t n = 0; n < N; ++n) sample_scales(xq + n * per, per, p->cmax, p->qmax, inv + n, scale + n);
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        /* reads past a band's rows feed dropped lanes only: keep the slack zero */
        memset(align64(scratch + tid * sz), 0, (size_t)tb_elems(p) * sizeof(int16_t));
#pragma omp for schedule(static)
        for (int64_t job = 0; job < jobs; ++job) {
            int64_t n = job / nb, i0 = (job % nb) * Bo;
            band(p, xq + n * per, NULL, i0, qc_min64(Bo, Ho - i0), inv[n], scale[n], scratch + tid * sz, y + n * ysz);
        }
    }
}

void qc_qconv_int_table(const qc_qconv_int_plan *p, const float *xq, int64_t N, int16_t *T, float *scale) {
    const int64_t per = p->C * p->Hq * p->P * p->Wq, units = p->G * p->nunits, usz = p->K * p->CS;
    const int64_t tsz = qc_qconv_int_table_size(p);
    for (int64_t n = 0; n < N; ++n) {
        float inv;
        sample_scales(xq + n * per, per, p->cmax, p->qmax, &inv, scale + n);
        int16_t *Tn = T + n * tsz;
        memset(Tn + units * usz, 0, (size_t)(tsz - units * usz) * sizeof(int16_t));
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1) schedule(static)
        for (int64_t gu = 0; gu < units; ++gu) {
            int64_t g = gu / p->nunits, u = gu % p->nunits;
            unit_table(p, xq + n * per, g, p->unit_s[u], p->unit_ph[u], 0, inv, Tn + gu * usz);
        }
    }
}

void qc_qconv_int_lookup(const qc_qconv_int_plan *p, const int16_t *T, const float *scale, int64_t N, float *scratch,
                         int64_t nscratch, float *y) {
    const int64_t sz = qc_qconv_int_scratch(p), ysz = p->O * p->Ho * p->Wo, tsz = qc_qconv_int_table_size(p);
    int nth = threads_for(N, nscratch);
#pragma omp parallel for num_threads(nth) if (nth > 1) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        band(p, NULL, T + n * tsz, 0, p->Ho, 0.0f, scale[n], scratch + tid * sz, y + n * ysz);
    }
}

/* ---- quantized fc with integer tables (qcnn.reference.qfc_int_table/lookup) ---- */

/* y[i] = float32(acc[i]) * scale + bias[i] (+ ReLU), i < n: the one float step after the sums */
void qc_rescale(const int32_t *acc, int64_t n, float scale, const float *bias, int relu, float *y) {
    for (int64_t i = 0; i < n; ++i) y[i] = (float)acc[i] * scale + bias[i];
    if (relu)
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

void qc_qfc_int_table(const float *x, int64_t N, int64_t F, const float *cbt, int64_t S, int64_t D, int64_t Kp,
                      int32_t qmax, float *tf, int32_t *T, float *scale) {
    const float q = (float)qmax;
    for (int64_t n = 0; n < N; ++n) {
        const float *xn = x + n * F;
        float *tn = tf + n * S * Kp;
        for (int64_t s = 0; s < S; ++s) {
            int64_t dv = qc_min64(D, F - s * D);
            float *t = tn + s * Kp;
            const float *c = cbt + s * D * Kp;
            float x0 = xn[s * D];
            for (int64_t k = 0; k < Kp; ++k) t[k] = x0 * c[k];
            for (int64_t d = 1; d < dv; ++d) {
                float xv = xn[s * D + d];
                const float *cd = c + d * Kp;
                for (int64_t k = 0; k < Kp; ++k) t[k] = t[k] + xv * cd[k];
            }
        }
        float m = 0.0f; /* the exact bound: max |T[n]| (padding entries are 0) */
        for (int64_t i = 0; i < S * Kp; ++i) {
            float a = tn[i] < 0.0f ? -tn[i] : tn[i];
            m = a > m ? a : m;
        }
        float inv = m > 0.0f ? q / m : 0.0f;
        scale[n] = m > 0.0f ? m / q : 0.0f;
        int32_t *Tn = T + n * S * Kp;
        for (int64_t i = 0; i < S * Kp; ++i) Tn[i] = quantize(tn[i], inv, q);
    }
}

/* Roofline probe (python -m qcnn_cffi.roofline): the int16-lane tile over offsets into T, reps
 * times: acc [nch / R, R, V, lanes] += sum over taps of T[offs[tile, t, r] + v * lanes ..]. */
void qc_probe_lookup_int(const int16_t *T, const int32_t *offs, int64_t nch, int64_t ntaps, int64_t V, int64_t reps,
                         int16_t *acc) {
    for (int64_t rep = 0; rep < reps; ++rep)
        for (int64_t tl = 0; tl < nch / TR; ++tl)
            TILE16[V](T, offs + tl * ntaps * TR, ntaps, acc + tl * TR * V * L16, V * L16);
}
