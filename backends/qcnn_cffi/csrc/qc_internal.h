/* Internal to the qcnn C kernels: SIMD abstraction, BLAS prototypes, thread count. */
#ifndef QC_INTERNAL_H
#define QC_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "qcnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- BLAS: scipy-openblas32 carries a scipy_ prefix; a system OpenBLAS does not ---- */
#ifdef QC_BLAS_SCIPY
#define QC_SGEMM scipy_cblas_sgemm
#define QC_SGEMV scipy_cblas_sgemv
#define QC_BLAS_SET_THREADS scipy_openblas_set_num_threads
#define QC_BLAS_GET_CONFIG scipy_openblas_get_config
#else
#define QC_SGEMM cblas_sgemm
#define QC_SGEMV cblas_sgemv
#define QC_BLAS_SET_THREADS openblas_set_num_threads
#define QC_BLAS_GET_CONFIG openblas_get_config
#endif
enum { QC_ROW_MAJOR = 101, QC_NO_TRANS = 111, QC_TRANS = 112 };
void QC_SGEMM(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
void QC_SGEMV(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x,
              int incx, float beta, float *y, int incy);
void QC_BLAS_SET_THREADS(int n);
char *QC_BLAS_GET_CONFIG(void);

/* ---- threads of the C kernels (OpenMP); every parallel loop splits outputs, never a sum ---- */
extern int qc_nthreads;

/* ---- SIMD: one vector type vf of VL floats, chosen at build time ---- */
#if defined(__AVX512F__)
#include <immintrin.h>
#define QC_SIMD_NAME "avx512"
#define VL 16
typedef __m512 vf;
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps((p), (v))
#define vadd(a, b) _mm512_add_ps((a), (b))
#define vmul(a, b) _mm512_mul_ps((a), (b))
#define vfmadd(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define vmax(a, b) _mm512_max_ps((a), (b))
#define vset1(x) _mm512_set1_ps(x)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define QC_SIMD_NAME "avx2"
#define VL 8
typedef __m256 vf;
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps((p), (v))
#define vadd(a, b) _mm256_add_ps((a), (b))
#define vmul(a, b) _mm256_mul_ps((a), (b))
#define vfmadd(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define vmax(a, b) _mm256_max_ps((a), (b))
#define vset1(x) _mm256_set1_ps(x)
#else
#define QC_SIMD_NAME "scalar"
#define VL 1
typedef float vf;
#define vload(p) (*(p))
#define vstore(p, v) (*(p) = (v))
#define vadd(a, b) ((a) + (b))
#define vmul(a, b) ((a) * (b))
#define vfmadd(a, b, c) ((a) * (b) + (c))
#define vmax(a, b) ((a) > (b) ? (a) : (b))
#define vset1(x) (x)
#endif

/* y = float32(acc) * scale + bias (+ ReLU), in qc_qint.c (no fused multiply-add) */
void qc_rescale(const int32_t *acc, int64_t n, float scale, const float *bias, int relu, float *y);

static inline int64_t qc_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t qc_max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif
