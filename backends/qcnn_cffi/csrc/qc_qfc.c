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

#define BL_NAME block_lookup
#define BL_T float
#define ADD512(a, b) _mm512_add_ps((a), (b))
#define ADD256(a, b) _mm256_add_ps((a), (b))
#include "qc_qfc_block.h"
#undef BL_NAME
#undef BL_T
#undef ADD512
#undef ADD256
/* integer tables: the same permutes on int32 bits, integer adds */
#define BL_NAME block_lookup_i32
#define BL_T int32_t
#define ADD512(a, b) _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define ADD256(a, b) _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#include "qc_qfc_block.h"
#undef BL_NAME
#undef BL_T
#undef ADD512
#undef ADD256

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

void qc_qfc_int_lookup(const int32_t *T, int64_t N, int64_t S, int64_t Kp, const uint8_t *codes, int64_t Ob,
                       const float *scale, const float *bias, int64_t O, int relu, float *y) {
#pragma omp parallel for num_threads(qc_nthreads) if (qc_nthreads > 1 && Ob > 1) schedule(static)
    for (int64_t blk = 0; blk < Ob; ++blk) {
        int32_t out[128], zero[128] = {0};
        int64_t bk = qc_fc_block_for((int)Kp), o0 = blk * bk, cnt = qc_min64(bk, O - o0);
        for (int64_t n = 0; n < N; ++n) {
            block_lookup_i32(T + n * S * Kp, S, Kp, codes + blk * S * qc_fc_code_bytes((int)Kp), zero, out);
            qc_rescale(out, cnt, scale[n], bias + o0, relu, y + n * O + o0);
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
