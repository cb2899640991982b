/* The fc look-up of one block (included by qc_qfc.c, once per accumulator type): BL_NAME,
 * BL_T (float or int32_t), ADD512 / ADD256 (lane-wise adds of float vectors holding BL_T bits). */
/* acc[0..Bk) = bias[0..Bk) + sum_s T[s][code(s, i)] for one block of Bk = qc_fc_block_for(Kp)
 * outputs and one sample */
static void BL_NAME(const BL_T *T, int64_t S, int64_t Kp, const uint8_t *codes, const BL_T *bias, BL_T *out) {
#if VL == 16
    __m512 a0 = _mm512_loadu_ps((const float *)(bias)), a1 = _mm512_loadu_ps((const float *)(bias + 16));
    __m512 a2 = _mm512_loadu_ps((const float *)(bias + 32)), a3 = _mm512_loadu_ps((const float *)(bias + 48));
#define IDX(i) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + 16 * (i))))
    if (Kp == 16) { /* packed: byte i < 32 = code(i) | code(i + 32) << 4; vpermps reads 4 index bits */
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * (B / 2);
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            __m512 t = _mm512_loadu_ps((const float *)(T + s * 16));
            __m512i i0 = IDX(0), i1 = IDX(1);
            a0 = ADD512(a0, _mm512_permutexvar_ps(i0, t));
            a1 = ADD512(a1, _mm512_permutexvar_ps(i1, t));
            a2 = ADD512(a2, _mm512_permutexvar_ps(_mm512_srli_epi32(i0, 4), t));
            a3 = ADD512(a3, _mm512_permutexvar_ps(_mm512_srli_epi32(i1, 4), t));
        }
    } else if (Kp == 32) { /* packed: 6 x 5-bit codes per word, 96 outputs (see the top) */
        __m512 a4 = _mm512_loadu_ps((const float *)(bias + 64)), a5 = _mm512_loadu_ps((const float *)(bias + 80));
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * 64;
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            __m512 lo = _mm512_loadu_ps((const float *)(T + s * 32)), hi = _mm512_loadu_ps((const float *)(T + s * 32 + 16));
            __m512i w = _mm512_loadu_si512((const void *)c);
            a0 = ADD512(a0, _mm512_permutex2var_ps(lo, w, hi));
            a1 = ADD512(a1, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 5), hi));
            a2 = ADD512(a2, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 10), hi));
            a3 = ADD512(a3, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 15), hi));
            a4 = ADD512(a4, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 20), hi));
            a5 = ADD512(a5, _mm512_permutex2var_ps(lo, _mm512_srli_epi32(w, 25), hi));
        }
        _mm512_storeu_ps((float *)(out + 64), a4);
        _mm512_storeu_ps((float *)(out + 80), a5);
    } else {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            _mm_prefetch((const char *)(c + QC_FC_PREFETCH), _MM_HINT_T0);
            const BL_T *t = T + s * Kp;
            a0 = ADD512(a0, _mm512_i32gather_ps(IDX(0), (const float *)t, 4));
            a1 = ADD512(a1, _mm512_i32gather_ps(IDX(1), (const float *)t, 4));
            a2 = ADD512(a2, _mm512_i32gather_ps(IDX(2), (const float *)t, 4));
            a3 = ADD512(a3, _mm512_i32gather_ps(IDX(3), (const float *)t, 4));
        }
    }
#undef IDX
    _mm512_storeu_ps((float *)(out), a0);
    _mm512_storeu_ps((float *)(out + 16), a1);
    _mm512_storeu_ps((float *)(out + 32), a2);
    _mm512_storeu_ps((float *)(out + 48), a3);
#elif VL == 8
    __m256 a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm256_loadu_ps((const float *)(bias + 8 * i));
#define IDX(i) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + 8 * (i))))
    if (Kp == 8) {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            __m256 t = _mm256_loadu_ps((const float *)(T + s * 8));
            for (int i = 0; i < 8; ++i) a[i] = ADD256(a[i], _mm256_permutevar8x32_ps(t, IDX(i)));
        }
    } else {
        for (int64_t s = 0; s < S; ++s) {
            const uint8_t *c = codes + s * B;
            const BL_T *t = T + s * Kp;
            for (int i = 0; i < 8; ++i) a[i] = ADD256(a[i], _mm256_i32gather_ps((const float *)t, IDX(i), 4));
        }
    }
#undef IDX
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps((float *)(out + 8 * i), a[i]);
#else
    BL_T a[B];
    memcpy(a, bias, sizeof a);
    for (int64_t s = 0; s < S; ++s) {
        const uint8_t *c = codes + s * B;
        const BL_T *t = T + s * Kp;
        for (int i = 0; i < B; ++i) a[i] += t[c[i]];
    }
    memcpy(out, a, sizeof a);
#endif
}

