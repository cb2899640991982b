/* Build facts (SIMD level, BLAS, flags) and the thread setting. */
#include "qc_internal.h"

#ifndef QC_BLAS_NAME
#define QC_BLAS_NAME "unknown"
#endif
#ifndef QC_CFLAGS
#define QC_CFLAGS ""
#endif

int qc_nthreads = 1;

const char *qc_simd(void) { return QC_SIMD_NAME; }

int qc_cpu_ok(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
#if defined(__AVX512F__)
    if (!__builtin_cpu_supports("avx512f")) return 0;
#endif
#if defined(__AVX512BW__)
    if (!__builtin_cpu_supports("avx512bw")) return 0;
#endif
#if defined(__AVX2__)
    if (!__builtin_cpu_supports("avx2")) return 0;
#endif
#if defined(__FMA__)
    if (!__builtin_cpu_supports("fma")) return 0;
#endif
#endif
    return 1;
}

const char *qc_blas_name(void) { return QC_BLAS_NAME; }
const char *qc_blas_config(void) { return QC_BLAS_GET_CONFIG(); }
const char *qc_cflags(void) { return QC_CFLAGS; }

int qc_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void qc_set_threads(int n) {
    if (n < 1) n = 1;
    qc_nthreads = n;
    QC_BLAS_SET_THREADS(n);
}

int qc_get_threads(void) { return qc_nthreads; }
