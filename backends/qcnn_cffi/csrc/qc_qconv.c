/* Quantized conv, the Quantized-CNN way: a look-up table of every (padded, phase-split) input
 * pixel against every sub-codeword, built with one small SGEMM per (sample, group, subspace),
 * then look-up accumulation vectorised over space.
 *
 * Layout: T[n][g][s][k][phase][Hq][Wq] with phase = (row % st) * st + col % st of the padded
 * image. For output channel o, tap (u, v) and subspace s the code a = A[o,u,v,s] is the same at
 * every output position, so
 *     Y[o][i*Wq + j] += T[g][s][a][phase(u,v)][(i + u/st)*Wq + j + v/st]
 * is one contiguous run of vector adds over the flat positions q = i*Wq + j (columns j >= Wo are
 * computed and dropped). A register tile holds R output channels x V vectors of positions while
 * all taps and subspaces stream through; the per-(o, tap, s) plane offsets are precomputed.
 */
#include <string.h>
#include "qc_internal.h"

#define R QC_CONV_R_VALUE
#if VL == 16
#define QC_CONV_R_VALUE 4
#define VMAX 6
#elif VL == 8
#define QC_CONV_R_VALUE 4
#define VMAX 3
#else
#define QC_CONV_R_VALUE 4
#define VMAX 4
#endif

int qc_conv_r(void) { return R; }
int qc_conv_chunk(void) { return VL; }

void qc_pad_phase(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t st,
                  int64_t Hq, int64_t Wq, float *xq) {
    int64_t NC = N * C, P = st * st;
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1) schedule(static)
    for (int64_t nc = 0; nc < NC; ++nc) {
        const float *src = x + nc * H * W;
        for (int64_t py = 0; py < st; ++py)
            for (int64_t px = 0; px < st; ++px) {
                float *dst = xq + (nc * P + py * st + px) * Hq * Wq;
                for (int64_t i = 0; i < Hq; ++i) {
                    int64_t h = i * st + py - pad;
                    float *d = dst + i * Wq;
                    if (h < 0 || h >= H) { memset(d, 0, (size_t)Wq * sizeof(float)); continue; }
                    const float *s = src + h * W;
                    if (st == 1) {
                        int64_t j0 = qc_min64(pad, Wq), j1 = qc_max64(qc_min64(W + pad, Wq), j0);
                        memset(d, 0, (size_t)j0 * sizeof(float));
                        memcpy(d + j0, s + (j0 - pad), (size_t)(j1 - j0) * sizeof(float));
                        memset(d + j1, 0, (size_t)(Wq - j1) * sizeof(float));
                        continue;
                    }
                    for (int64_t j = 0; j < Wq; ++j) {
                        int64_t w = j * st + px - pad;
                        d[j] = (w >= 0 && w < W) ? s[w] : 0.0f;
                    }
                }
            }
    }
}

void qc_qconv_table(const float *xq, int64_t N, int64_t C, int64_t G, int64_t P, int64_t plane,
                    const float *cb, int64_t S, int64_t K, int64_t D, float *T) {
    int64_t Cg = C / G, cols = P * plane;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < G; ++g)
            for (int64_t s = 0; s < S; ++s) {
                int64_t dv = qc_min64(D, Cg - s * D);
                const float *b = xq + (n * C + g * Cg + s * D) * cols;
                float *t = T + (((n * G + g) * S + s) * K) * cols;
                QC_SGEMM(QC_ROW_MAJOR, QC_NO_TRANS, QC_NO_TRANS, (int)K, (int)cols, (int)dv, 1.0f,
                         cb + s * K * D, (int)D, b, (int)cols, 0.0f, t, (int)cols);
            }
}

/* One register tile: R channels x V vectors at flat position q0, all taps; stores to acc[r*Lr + q]. */
#define DEF_TILE(V)                                                                              \
    static void tile_##V(const float *tb, const int32_t *of, int64_t ntaps, const float *bias,   \
                         int64_t q0, float *acc, int64_t Lr) {                                   \
        vf a[R][V];                                                                              \
        for (int r = 0; r < R; ++r)                                                              \
            for (int v = 0; v < V; ++v) a[r][v] = vset1(bias[r]);                                \
        const float *base = tb + q0;                                                             \
        for (int64_t t = 0; t < ntaps; ++t, of += R) {                                           \
            for (int r = 0; r < R; ++r) {                                                        \
                const float *p = base + of[r];                                                   \
                for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vload(p + v * VL));         \
            }                                                                                    \
        }                                                                                        \
        for (int r = 0; r < R; ++r)                                                              \
            for (int v = 0; v < V; ++v) vstore(acc + r * Lr + q0 + v * VL, a[r][v]);             \
    }

#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
DEF_TILE(1)
#if VMAX >= 2
DEF_TILE(2)
#endif
#if VMAX >= 3
DEF_TILE(3)
#endif
#if VMAX >= 4
DEF_TILE(4)
#endif
#if VMAX >= 5
DEF_TILE(5)
#endif
#if VMAX >= 6
DEF_TILE(6)
#endif
#pragma GCC pop_options

typedef void (*tile_fn)(const float *, const int32_t *, int64_t, const float *, int64_t, float *, int64_t);
static const tile_fn TILES[VMAX + 1] = {
    0, tile_1,
#if VMAX >= 2
    tile_2,
#endif
#if VMAX >= 3
    tile_3,
#endif
#if VMAX >= 4
    tile_4,
#endif
#if VMAX >= 5
    tile_5,
#endif
#if VMAX >= 6
    tile_6,
#endif
};

void qc_qconv_lookup(const float *T, int64_t N, int64_t tsize, int64_t gsize,
                     int64_t ntiles, const int32_t *tile_o0, const int32_t *tile_rc, const int32_t *tile_g,
                     const int32_t *offs, int64_t ntaps, const float *bias_t,
                     int64_t Lr, int64_t Wq, int64_t O, int64_t Ho, int64_t Wo,
                     float *scratch, int64_t nscratch, float *y) {
    (void)nscratch;
    int64_t nvec = Lr / VL, HWo = Ho * Wo;
    int nth = qc_nthreads < ntiles ? qc_nthreads : (int)ntiles;
    if (nth < 1) nth = 1;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        /* a fixed, contiguous range of tiles per thread: results do not depend on the thread count */
        int64_t t0 = ntiles * tid / nth, t1 = ntiles * (tid + 1) / nth;
        for (int64_t n = 0; n < N; ++n) {
            const float *Tn = T + n * tsize;
            for (int64_t c = 0; c < nvec; c += VMAX) {
                int64_t vv = qc_min64(VMAX, nvec - c);
                for (int64_t tl = t0; tl < t1; ++tl)
                    TILES[vv](Tn + tile_g[tl] * gsize, offs + tl * ntaps * R, ntaps, bias_t + tl * R,
                              c * VL, scratch + tl * R * Lr, Lr);
            }
            for (int64_t tl = t0; tl < t1; ++tl)
                for (int r = 0; r < tile_rc[tl]; ++r) {
                    const float *src = scratch + (tl * R + r) * Lr;
                    float *dst = y + (n * O + tile_o0[tl] + r) * HWo;
                    for (int64_t i = 0; i < Ho; ++i) memcpy(dst + i * Wo, src + i * Wq, (size_t)Wo * sizeof(float));
                }
        }
    }
}
