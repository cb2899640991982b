/* Float layers: conv (im2col + SGEMM), fc (SGEMV/SGEMM), max pool, relu, LRN, copy, softmax. */
#include <math.h>
#include <string.h>
#include "qc_internal.h"

#define QC_PAR(n) if ((n) > 1)

/* col [(C k k), Ho*Wo]: col[(c k + u) k + v, i Wo + j] = x[c, i st + u - p, j st + v - p] (0 outside). */
static void im2col(const float *x, int64_t C, int64_t H, int64_t W, int64_t k, int64_t st, int64_t pad,
                   int64_t Ho, int64_t Wo, float *col) {
    int64_t rows = C * k * k;
#pragma omp parallel for num_threads(qc_nthreads) QC_PAR(qc_nthreads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        int64_t c = r / (k * k), u = (r / k) % k, v = r % k;
        float *dst = col + r * Ho * Wo;
        const float *src = x + c * H * W;
        for (int64_t i = 0; i < Ho; ++i) {
            int64_t h = i * st + u - pad;
            float *d = dst + i * Wo;
            if (h < 0 || h >= H) { memset(d, 0, (size_t)Wo * sizeof(float)); continue; }
            const float *s = src + h * W;
            for (int64_t j = 0; j < Wo; ++j) {
                int64_t w = j * st + v - pad;
                d[j] = (w >= 0 && w < W) ? s[w] : 0.0f;
            }
        }
    }
}

void qc_conv(const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
             const float *w, const float *b, int64_t O, int64_t k, int64_t st, int64_t pad,
             int64_t G, int64_t Ho, int64_t Wo, float *col, float *y) {
    int64_t Cg = C / G, Og = O / G, HWo = Ho * Wo, ck = Cg * k * k;
    int direct = (k == 1 && st == 1 && pad == 0);
    for (int64_t n = 0; n < N; ++n) {
        float *yn = y + n * O * HWo;
        for (int64_t o = 0; o < O; ++o)
            for (int64_t q = 0; q < HWo; ++q) yn[o * HWo + q] = b[o];
        for (int64_t g = 0; g < G; ++g) {
            const float *xg = x + (n * C + g * Cg) * H * W;
            const float *src = xg;
            if (!direct) { im2col(xg, Cg, H, W, k, st, pad, Ho, Wo, col); src = col; }
            QC_SGEMM(QC_ROW_MAJOR, QC_NO_TRANS, QC_NO_TRANS, (int)Og, (int)HWo, (int)ck, 1.0f,
                     w + g * Og * ck, (int)ck, src, (int)HWo, 1.0f, yn + g * Og * HWo, (int)HWo);
        }
    }
}

void qc_fc(const float *x, int64_t N, int64_t F, const float *w, const float *b, int64_t O, float *y) {
    for (int64_t n = 0; n < N; ++n) memcpy(y + n * O, b, (size_t)O * sizeof(float));
    if (N == 1)
        QC_SGEMV(QC_ROW_MAJOR, QC_NO_TRANS, (int)O, (int)F, 1.0f, w, (int)F, x, 1, 1.0f, y, 1);
    else
        QC_SGEMM(QC_ROW_MAJOR, QC_NO_TRANS, QC_TRANS, (int)N, (int)O, (int)F, 1.0f, x, (int)F, w, (int)F,
                 1.0f, y, (int)O);
}

static inline float fmax_(float m, float v) { return v > m ? v : m; }                  /* maxss, branchless */
static inline float nanmax_(float m, float v) { return (v > m || v != v) ? v : m; }   /* NaN wins */

/* max over clipped windows of one plane: first over the window's rows (vectorised along the row),
 * then over each window's columns. MAXF is fmax_ (fast) or nanmax_ (NaN-propagating, as numpy).
 * The fast variant takes the column maxima as k-1 contiguous (vectorised) passes over the row,
 * hm[w] = max(rowmax[w .. w+k)), and picks hm[j st - p] for windows inside the row. */
#define DEF_POOL(NAME, MAXF, SLIDE)                                                                   \
    static void NAME(const float *xp, int64_t H, int64_t W, int64_t k, int64_t st, int64_t pad,       \
                     int64_t Ho, int64_t Wo, float *yp, float *rowmax, float *hm) {                   \
        for (int64_t i = 0; i < Ho; ++i) {                                                            \
            int64_t h0 = qc_max64(i * st - pad, 0), h1 = qc_min64(i * st - pad + k, H);              \
            if (h0 >= h1) { for (int64_t j = 0; j < Wo; ++j) yp[i * Wo + j] = -INFINITY; continue; } \
            memcpy(rowmax, xp + h0 * W, (size_t)W * sizeof(float));                                   \
            for (int64_t h = h0 + 1; h < h1; ++h) {                                                   \
                const float *xr = xp + h * W;                                                         \
                for (int64_t w = 0; w < W; ++w) rowmax[w] = MAXF(rowmax[w], xr[w]);                   \
            }                                                                                         \
            int64_t nin = W - k + 1; /* windows [w, w+k) inside the row */                           \
            if (SLIDE && nin > 0) {                                                                   \
                memcpy(hm, rowmax, (size_t)nin * sizeof(float));                                      \
                for (int64_t dw = 1; dw < k; ++dw)                                                    \
                    for (int64_t w = 0; w < nin; ++w) hm[w] = MAXF(hm[w], rowmax[w + dw]);            \
            }                                                                                         \
            for (int64_t j = 0; j < Wo; ++j) {                                                        \
                int64_t ws = j * st - pad;                                                            \
                if (SLIDE && ws >= 0 && ws < nin) { yp[i * Wo + j] = hm[ws]; continue; }              \
                int64_t w0 = qc_max64(ws, 0), w1 = qc_min64(ws + k, W);                               \
                float m = -INFINITY;                                                                  \
                for (int64_t w = w0; w < w1; ++w) m = MAXF(m, rowmax[w]);                             \
                yp[i * Wo + j] = m;                                                                   \
            }                                                                                         \
        }                                                                                             \
    }
DEF_POOL(pool_plane_fast, fmax_, 1)
DEF_POOL(pool_plane_exact, nanmax_, 0)

/* 1 if the plane holds a NaN or an inf (then the exact path runs; inf alone would be fine) */
static int has_nonfinite(const float *x, int64_t n) {
    const uint32_t *b = (const uint32_t *)(const void *)x;
    uint32_t any = 0;
    for (int64_t i = 0; i < n; ++i) any |= ((b[i] & 0x7f800000u) == 0x7f800000u);
    return any != 0;
}

void qc_max_pool(const float *x, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t st, int64_t pad,
                 int64_t Ho, int64_t Wo, float *scratch, int64_t nscratch, float *y) {
    int nth = qc_nthreads < nscratch ? qc_nthreads : (int)nscratch; /* one scratch row pair per thread */
    if (nth < 1) nth = 1;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *rowmax = scratch + (int64_t)tid * 2 * W, *hm = rowmax + W;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < NC; ++p) {
            const float *xp = x + p * H * W;
            if (has_nonfinite(xp, H * W)) pool_plane_exact(xp, H, W, k, st, pad, Ho, Wo, y + p * Ho * Wo, rowmax, hm);
            else pool_plane_fast(xp, H, W, k, st, pad, Ho, Wo, y + p * Ho * Wo, rowmax, hm);
        }
    }
}

void qc_relu(const float *x, int64_t n, float *y) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN passes through */
}

void qc_copy(const float *x, int64_t n, float *y) { memcpy(y, x, (size_t)n * sizeof(float)); }

#if defined(__GLIBC__) && VL > 1
/* glibc's libmvec: vector expf/logf (ULP-accurate) */
#if VL == 16
vf _ZGVeN16v_expf(vf);
vf _ZGVeN16v_logf(vf);
#define vexp _ZGVeN16v_expf
#define vlog _ZGVeN16v_logf
#else
vf _ZGVdN8v_expf(vf);
vf _ZGVdN8v_logf(vf);
#define vexp _ZGVdN8v_expf
#define vlog _ZGVdN8v_logf
#endif
#define QC_HAVE_VMATH 1
#endif

#if VL == 16
/* s^(-3/4) = r sqrt(r) with r = 1/sqrt(s): rsqrt14 refined by one Newton step (about 1e-8
 * relative), then a correctly rounded sqrt; AlexNet's beta. Valid for normal, finite s > 0. */
static inline __m512 pow_m075(__m512 s) {
    __m512 r = _mm512_rsqrt14_ps(s);
    __m512 hs = _mm512_mul_ps(s, _mm512_set1_ps(0.5f));
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(hs, _mm512_mul_ps(r, r), _mm512_set1_ps(1.5f)));
    return _mm512_mul_ps(r, _mm512_sqrt_ps(r));
}
#endif

/* y_c = x_c exp(-beta log(k + alpha' sum_{|c'-c| <= r} x_c'^2)), alpha' = alpha / size (given).
 * One pass per vector of pixels: the window sum runs down the channels with every load an L1 hit
 * (the window's rows were just loaded), summed in channel order as the reference does. */
void qc_lrn(const float *x, int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
            float k, float *y) {
    int64_t r = (size - 1) / 2, nblk = (HW + VL - 1) / VL, total = N * nblk;
#pragma omp parallel for num_threads(qc_nthreads) QC_PAR(qc_nthreads) schedule(static)
    for (int64_t idx = 0; idx < total; ++idx) {
        int64_t n = idx / nblk, p0 = (idx % nblk) * VL;
        const float *xn = x + n * C * HW;
        float *yn = y + n * C * HW;
#ifdef QC_HAVE_VMATH
        if (p0 + VL <= HW) {
            vf vk = vset1(k), va = vset1(alpha), vb = vset1(-beta);
            for (int64_t c = 0; c < C; ++c) {
                int64_t lo = qc_max64(c - r, 0), hi = qc_min64(c + r, C - 1);
                vf s = vset1(0.0f);
                for (int64_t cc = lo; cc <= hi; ++cc) {
                    vf v = vload(xn + cc * HW + p0);
                    s = vadd(s, vmul(v, v));
                }
                vf sc = vadd(vk, vmul(va, s));
#if VL == 16
                /* beta = 3/4 (AlexNet) with normal, finite scales: a fast exact-enough power; else libmvec */
                __mmask16 ok = _mm512_cmp_ps_mask(sc, _mm512_set1_ps(1.17549435e-38f), _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(sc, _mm512_set1_ps(3.0e38f), _CMP_LE_OQ);
                vf pw = (ok == 0xFFFF && beta == 0.75f) ? pow_m075(sc) : vexp(vmul(vb, vlog(sc)));
                vstore(yn + c * HW + p0, vmul(vload(xn + c * HW + p0), pw));
#else
                vstore(yn + c * HW + p0, vmul(vload(xn + c * HW + p0), vexp(vmul(vb, vlog(sc)))));
#endif
            }
            continue;
        }
#endif
        int64_t p1 = qc_min64(p0 + VL, HW);
        for (int64_t c = 0; c < C; ++c) {
            int64_t lo = qc_max64(c - r, 0), hi = qc_min64(c + r, C - 1);
            for (int64_t p = p0; p < p1; ++p) {
                float s = 0.0f;
                for (int64_t cc = lo; cc <= hi; ++cc) s += xn[cc * HW + p] * xn[cc * HW + p];
                yn[c * HW + p] = xn[c * HW + p] * expf(-beta * logf(k + alpha * s));
            }
        }
    }
}

void qc_softmax(const float *x, int64_t N, int64_t F, float *y) {
    for (int64_t n = 0; n < N; ++n) {
        const float *xr = x + n * F;
        float *yr = y + n * F;
        float m = -INFINITY;
        for (int64_t i = 0; i < F; ++i) m = (xr[i] > m || xr[i] != xr[i]) ? xr[i] : m;
        double sum = 0.0;
        for (int64_t i = 0; i < F; ++i) { yr[i] = expf(xr[i] - m); sum += yr[i]; }
        float fs = (float)sum;
        for (int64_t i = 0; i < F; ++i) yr[i] /= fs;
    }
}
