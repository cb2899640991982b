/* Register tiles of the quantized conv look-up (internal to qc_qconv.c and qc_probe.c).
 *
 * A tile holds RR output channels x V vectors of partial sums in registers while a group of
 * taps streams past: tap t of channel r adds the table vectors at base + of[t*RR + r] (+ the
 * tile's vector offsets). A look-up add is one table load and one add, with no reuse in
 * registers, so the load is what costs: these kernels keep it aligned where they can.
 *
 * - Shifted tiles (tilea: R channels, tileb: RB channels): vector v of a tap loads at
 *   base + of + vo[v]; the tap's column shift is in its offset (the load may straddle two lines).
 * - Rotated tiles (SIMD builds): offsets carry no column shift, so every load is aligned; the
 *   taps of one shift dv are summed into b and then a += b moved down dv lanes, lane j taking
 *   b[j + dv] from b's vector and the next one (vshift2; the next one is b itself for rows of
 *   one vector, where the lanes that wrap are j >= VL - dv >= Wo and dropped).
 *   tilerot: the fused path's, one shift per call, V + 1 consecutive vectors of a row;
 *   tiler: the band path's, all k shifts of a k x k kernel per call (taps v-major), V rows.
 * The tap count of every call is >= 1 (the callers' groups are never empty): without a
 * zero-trip path the partial sums stay in registers.
 */
#ifndef QC_TILES_H
#define QC_TILES_H

#include "qc_internal.h"

/* R: channels of the row paths' tiles; VMAX: vectors per tile; RB: the band path's channels
 * (its V <= 4 rows leave registers for more; measured faster); RROT: channels of rotated tiles
 * (a and b both in registers); VROT: rows of a rotated band tile */
#if VL == 16
#define R 6
#define VMAX 4
#define RB 8
#define RROT 3
#elif VL == 8
#define R 4
#define VMAX 3
#define RB R
#define RROT 2
#else
#define R 4
#define VMAX 4
#define RB R
#endif
#define WMAX (VMAX * VL)
#define VROT 3
/* the tables are used by qc_qconv.c, not all of them by qc_probe.c */
#define QC_UNUSED __attribute__((unused))

#define DEF_SHIFTED_TILE(NAME, RR, V)                                                            \
    static void NAME##_##V(const float *base, const int64_t *vo, const int32_t *of, int64_t ntaps, \
                           float *const *accp, int64_t astride) {                                \
        vf a[RR][V];                                                                             \
        int64_t o[V];                                                                            \
        for (int v = 0; v < V; ++v) o[v] = vo[v];                                                \
        for (int r = 0; r < RR; ++r)                                                             \
            for (int v = 0; v < V; ++v) a[r][v] = vload(accp[v] + r * astride);                  \
        int64_t t = ntaps;                                                                       \
        do {                                                                                     \
            for (int r = 0; r < RR; ++r) {                                                       \
                const float *p = base + of[r];                                                   \
                for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vload(p + o[v]));            \
            }                                                                                    \
            of += RR;                                                                            \
        } while (--t > 0);                                                                       \
        for (int r = 0; r < RR; ++r)                                                             \
            for (int v = 0; v < V; ++v) vstore(accp[v] + r * astride, a[r][v]);                  \
    }
typedef void (*shifted_tile_fn)(const float *, const int64_t *, const int32_t *, int64_t, float *const *, int64_t);
#if VMAX == 4
#define DEF_SHIFTED_TILES(NAME, RR)                                                              \
    DEF_SHIFTED_TILE(NAME, RR, 1) DEF_SHIFTED_TILE(NAME, RR, 2) DEF_SHIFTED_TILE(NAME, RR, 3)   \
    DEF_SHIFTED_TILE(NAME, RR, 4)                                                                \
    QC_UNUSED static const shifted_tile_fn NAME##_fns[VMAX + 1] = {0, NAME##_1, NAME##_2, NAME##_3, NAME##_4};
#else
#define DEF_SHIFTED_TILES(NAME, RR)                                                              \
    DEF_SHIFTED_TILE(NAME, RR, 1) DEF_SHIFTED_TILE(NAME, RR, 2) DEF_SHIFTED_TILE(NAME, RR, 3)   \
    QC_UNUSED static const shifted_tile_fn NAME##_fns[VMAX + 1] = {0, NAME##_1, NAME##_2, NAME##_3};
#endif
#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
DEF_SHIFTED_TILES(tilea, R)
DEF_SHIFTED_TILES(tileb, RB)
#pragma GCC pop_options
#define TILESA tilea_fns
#define TILESB tileb_fns

#ifdef RROT
#if VL == 16
typedef __m512i rot2_t;
static inline rot2_t rot2_index(int64_t dv) {
    return _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32((int)dv));
}
/* lanes dv .. dv + VL - 1 of lo : hi (idx = rot2_index(dv)) */
static inline vf vshift2(vf lo, vf hi, rot2_t idx) { return _mm512_permutex2var_ps(lo, idx, hi); }
#else
typedef __m256i rot2_t;
static inline rot2_t rot2_index(int64_t dv) {
    return _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)dv));
}
static inline vf vshift2(vf lo, vf hi, rot2_t idx) {
    __m256i lane = _mm256_and_si256(idx, _mm256_set1_epi32(7));
    __m256 from_hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, lane), _mm256_permutevar8x32_ps(hi, lane), from_hi);
}
#endif

/* The fused path's: the ntaps taps of one shift dv, a [RROT][V] += vshift2 of b [RROT][V + 1]
 * (dv = 0: straight into a). Reads reach (V + 1) VL floats past each offset. */
#define DEF_TILEROT(V)                                                                           \
    static void tilerot_##V(const float *base, const int32_t *of, int64_t ntaps, float *const *accp, \
                            int64_t astride, const rot2_t *ix, int64_t dv) {                     \
        vf a[RROT][V];                                                                           \
        for (int r = 0; r < RROT; ++r)                                                           \
            for (int v = 0; v < V; ++v) a[r][v] = vload(accp[v] + r * astride);                  \
        int64_t t = ntaps;                                                                       \
        if (dv == 0) {                                                                           \
            do {                                                                                 \
                for (int r = 0; r < RROT; ++r) {                                                 \
                    const float *p = base + of[r];                                               \
                    for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vload(p + v * VL));      \
                }                                                                                \
                of += RROT;                                                                      \
            } while (--t > 0);                                                                   \
        } else {                                                                                 \
            vf b[RROT][V + 1];                                                                   \
            for (int r = 0; r < RROT; ++r)                                                       \
                for (int v = 0; v <= V; ++v) b[r][v] = vset1(0.0f);                              \
            do {                                                                                 \
                for (int r = 0; r < RROT; ++r) {                                                 \
                    const float *p = base + of[r];                                               \
                    for (int v = 0; v <= V; ++v) b[r][v] = vadd(b[r][v], vload(p + v * VL));     \
                }                                                                                \
                of += RROT;                                                                      \
            } while (--t > 0);                                                                   \
            for (int r = 0; r < RROT; ++r)                                                       \
                for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vshift2(b[r][v], b[r][v + 1], ix[dv])); \
        }                                                                                        \
        for (int r = 0; r < RROT; ++r)                                                           \
            for (int v = 0; v < V; ++v) vstore(accp[v] + r * astride, a[r][v]);                  \
    }

/* The band path's: all k x k taps (v-major) of one subspace, V rows VL floats apart. Sum per
 * output: a, then the shift-0 taps in order, then each shift's partial sum. */
#define DEF_TILER(V)                                                                             \
    static void tiler_##V(const float *base, const int32_t *of, int64_t k, float *const *accp,  \
                          int64_t astride, const rot2_t *ix) {                                   \
        vf a[RROT][V], b[RROT][V];                                                               \
        for (int r = 0; r < RROT; ++r)                                                           \
            for (int v = 0; v < V; ++v) a[r][v] = vload(accp[v] + r * astride);                  \
        for (int64_t u = 0; u < k; ++u, of += RROT)                                              \
            for (int r = 0; r < RROT; ++r) {                                                     \
                const float *p = base + of[r];                                                   \
                for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vload(p + v * VL));          \
            }                                                                                    \
        for (int64_t sh = 1; sh < k; ++sh) {                                                     \
            for (int r = 0; r < RROT; ++r)                                                       \
                for (int v = 0; v < V; ++v) b[r][v] = vset1(0.0f);                               \
            for (int64_t u = 0; u < k; ++u, of += RROT)                                          \
                for (int r = 0; r < RROT; ++r) {                                                 \
                    const float *p = base + of[r];                                               \
                    for (int v = 0; v < V; ++v) b[r][v] = vadd(b[r][v], vload(p + v * VL));      \
                }                                                                                \
            for (int r = 0; r < RROT; ++r)                                                       \
                for (int v = 0; v < V; ++v) a[r][v] = vadd(a[r][v], vshift2(b[r][v], b[r][v], ix[sh])); \
        }                                                                                        \
        for (int r = 0; r < RROT; ++r)                                                           \
            for (int v = 0; v < V; ++v) vstore(accp[v] + r * astride, a[r][v]);                  \
    }
#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
DEF_TILEROT(1)
DEF_TILEROT(2)
DEF_TILEROT(3)
#if VMAX >= 4
DEF_TILEROT(4)
#endif
DEF_TILER(1)
DEF_TILER(2)
DEF_TILER(3)
#pragma GCC pop_options
typedef void (*tilerot_fn)(const float *, const int32_t *, int64_t, float *const *, int64_t, const rot2_t *, int64_t);
QC_UNUSED static const tilerot_fn TILESROT[VMAX + 1] = {
    0, tilerot_1, tilerot_2, tilerot_3,
#if VMAX >= 4
    tilerot_4,
#endif
};
typedef void (*tiler_fn)(const float *, const int32_t *, int64_t, float *const *, int64_t, const rot2_t *);
QC_UNUSED static const tiler_fn TILESR[VROT + 1] = {0, tiler_1, tiler_2, tiler_3};
#endif /* RROT */

#endif
