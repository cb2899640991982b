/* Quantized fc, the Quantized-CNN way: T[s][k] = <x_s, c_sk>, then y[o] = b[o] + sum_s T[s][A[o,s]].
 *
 * Codes are blocked [O/B][S][B]: a subspace's codes of B consecutive outputs are contiguous, so a
 * vector of codes indexes a table row held in registers: AVX-512 vpermps (K <= 16) or vpermi2ps
 * (K <= 32, two registers), a gather above that; AVX2 vpermps for K <= 8, else a gather; scalar
 * otherwise. Table rows are padded to Kp entries (zeros beyond K; codes < K never read them).
 * Codes are streamed once per image from memory (AlexNet fc6: 9.4 M), so they are packed where the
 * permutes allow: K <= 16 two 4-bit codes per byte; K <= 32 (AVX-512) six 5-bit codes per 32-bit
 * word, word l of a subspace holding outputs l, 16 + l, ..., 80 + l of a block of B = 96
 * (vpermi2ps reads the low 5 bits of each index, so a shift is the whole unpacking).
 */
#include <string.h>
#include "qc_internal.h"

#define B 64
/* Software prefetch distance (bytes) along a block's codes: the look-up streams O*S code bytes
 * (AlexNet fc6: 9.4 MB) once per image, cold in a whole-network pass; measured here, fc6+fc7 in
 * sequence 1.8 -> 0.9 ms (the hardware prefetcher alone keeps too few lines in flight). */
#ifndef QC_FC_PREFETCH
#define QC_FC_PREFETCH 4096
#endif

int qc_fc_block(void) { return B; }

int qc_fc_block_for(int Kp) {
#if VL == 16
    if (Kp == 32) return 96;
#endif
    (void)Kp;
    return B;
}

void qc_qfc_table(const float *x, int64_t N, int64_t F, const float *cbt, int64_t S, int64_t D, int64_t Kp,
                  float *T) {
    for (int64_t n = 0; n < N; ++n) {
        const float *xn = x + n * F;
        float *Tn = T + n * S * Kp;
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1 && S >= 512) schedule(static)
        for (int64_t s = 0; s < S; ++s) {
            int64_t dv = qc_min64(D, F - s * D);
            float *t = Tn + s * Kp;
            const float *c = cbt + s * D * Kp;
            for (int64_t k = 0; k < Kp; ++k) t[k] = 0.0f;
            for (int64_t d = 0; d < dv; ++d) {
                float xv = xn[s * D + d];
                const float *cd = c + d * Kp;
                for (int64_t k = 0; k < Kp; ++k) t[k] += xv * cd[k];
            }
        }
    }
}

/* acc[0..Bk) = bias[0..Bk) + sum_s T[s][code(s, i)] for one block of Bk = qc_fc_block_for(Kp)
 * outputs and one sample */
static void block_lookup(const float *T, int64_t S, int64_t Kp, const uint8_t *codes, const float *bias,
                         float *out) {
#if VL == 16
    __m512 a0 = _mm512_loadu_ps(bias), a1 = _mm512_loadu_ps(bias + 16);
    __m512 a2 = _mm512_loadu_ps(bias + 32), a3 = _mm512_loadu_ps(bias + 48);
#define IDX(i) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + 16 * (i))))
    if (Kp == 16) { /* packed: byte i < 32 = code(i) | code(i + 32) << 4; vpermps reads 4 index bits */
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * (B / 2);
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            __m512 t = _mm512_loadu_ps(T + s * 16);
            __m512i i0 = IDX(0), i1 = IDX(1);
            a0 = _mm512_add_ps(a0, _mm512_permutexvar_ps(i0, t));
            a1 = _mm512_add_ps(a1, _mm512_permutexvar_ps(i1, t));
            a2 = _mm512_add_ps(a2, _mm512_permutexvar_ps(_mm512_srli_epi32(i0, 4), t));
            a3 = _mm512_add_ps(a3, _mm512_permutexvar_ps(_mm512_srli_epi32(i1, 4), t));
        }
    } else if (Kp == 32) { /* packed: 6 x 5-bit codes per word, 96 outputs (see the top) */
        __m512 a4 = _mm512_loadu_ps(bias + 64), a5 = _mm512_loadu_ps(bias + 80);
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * 64;
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            __m512 lo = _mm512_loadu_ps(T + s * 32), hi = _mm512_loadu_ps(T + s * 32 + 16);
            __m512i w = _mm512_loadu_si512((const void *)c);
            a0 = _mm512_add_ps(a0, _mm512_permutex2var_ps(lo, w, hi));
            a1 = _mm512_add_ps(a1, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 5), hi));
            a2 = _mm512_add_ps(a2, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 10), hi));
            a3 = _mm512_add_ps(a3, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 15), hi));
            a4 = _mm512_add_ps(a4, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 20), hi));
            a5 = _mm512_add_ps(a5, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 25), hi));
        }
        _mm512_storeu_ps(out + 64, a4);
        _mm512_storeu_ps(out + 80, a5);
    } else {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            const float *t = T + s * Kp;
            a0 = _mm512_add_ps(a0, _mm512_i32gather_ps(IDX(0), t, 4));
            a1 = _mm512_add_ps(a1, _mm512_i32gather_ps(IDX(1), t, 4));
            a2 = _mm512_add_ps(a2, _mm512_i32gather_ps(IDX(2), t, 4));
            a3 = _mm512_add_ps(a3, _mm512_i32gather_ps(IDX(3), t, 4));
        }
    }
#undef IDX
    _mm512_storeu_ps(out, a0);
    _mm512_storeu_ps(out + 16, a1);
    _mm512_storeu_ps(out + 32, a2);
    _mm512_storeu_ps(out + 48, a3);
#elif VL == 8
    __m256 a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm256_loadu_ps(bias + 8 * i);
#define IDX(i) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + 8 * (i))))
    if (Kp == 8) {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            __m256 t = _mm256_loadu_ps(T + s * 8);
            for (int i = 0; i < 8; ++i) a[i] = _mm256_add_ps(a[i], _mm256_permutevar8x32_ps(t, IDX(i)));
        }
    } else {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            const float *t = T + s * Kp;
            for (int i = 0; i < 8; ++i) a[i] = _mm256_add_ps(a[i], _mm256_i32gather_ps(t, IDX(i), 4));
        }
    }
#undef IDX
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + 8 * i, a[i]);
#else
    float a[B];
    memcpy(a, bias, sizeof a);
    for (int64_t s = 0; s < S; ++s) {
        const uint8_t *c = codes + s * B;
        const float *t = T + s * Kp;
        for (int i = 0; i < B; ++i) a[i] += t[c[i]];
    }
    memcpy(out, a, sizeof a);
#endif
}

void qc_qfc_lookup(const float *T, int64_t N, int64_t S, int64_t Kp, const uint8_t *codes, int64_t Ob,
                   const float *bias, int64_t O, float *y) {
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1 && Ob > 1) schedule(static)
    for (int64_t blk = 0; blk < Ob; ++blk) {
        float out[128];
        int64_t bk = qc_fc_block_for((int)Kp), o0 = blk * bk, cnt = qc_min64(bk, O - o0);
        for (int64_t n = 0; n < N; ++n) {
            block_lookup(T + n * S * Kp, S, Kp, codes + blk * S * qc_fc_code_bytes((int)Kp), bias + o0, out);
            memcpy(y + n * O + o0, out, (size_t)cnt * sizeof(float));
        }
    }
}

int qc_fc_code_bytes(int Kp) {
#if VL == 16
    if (Kp == 16) return B / 2;
    if (Kp == 32) return 64; /* 16 words of six codes */
#endif
    return B;
}

int qc_fc_kpad(int K) {
#if VL == 16
    if (K <= 16) return 16;
    if (K <= 32) return 32;
#elif VL == 8
    if (K <= 8) return 8;
#endif
    return K;
}
