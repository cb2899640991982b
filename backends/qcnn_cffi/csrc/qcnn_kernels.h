/* qcnn C kernels: the public entry points the cffi module exposes (``_build.py`` hands this
 * header, without its preprocessor lines, to cffi's cdef: declarations here are the interface).
 *
 * Every function trusts its arguments: the Python layer (qcnn_cffi/_checks.py, float_ops.py,
 * qconv.py and its schedule modules, qfc.py) checks dtypes, contiguity, shapes and code ranges
 * before calling, and allocates every output and scratch buffer with the sizes documented here.
 * Arrays are row-major float32 (uint8 for codes, int32 for offsets); sizes are int64_t. The
 * quantized conv's schedules take a plan struct, filled once when a layer is prepared (the
 * arrays it points to live as long as the plan), plus the per-call arguments.
 */
#ifndef QCNN_KERNELS_H
#define QCNN_KERNELS_H

#include <stdint.h>

/* ---- build facts and threads ---- */
const char *qc_simd(void);          /* "avx512", "avx2" or "scalar": what the kernels were compiled for */
int qc_cpu_ok(void);                /* 1 if this CPU has the instructions the build uses */
const char *qc_blas_name(void);     /* "scipy-openblas32" or "openblas (pkg-config)" */
const char *qc_blas_config(void);   /* OpenBLAS config string (version, core) */
const char *qc_cflags(void);        /* compiler flags of the build */
int qc_openmp(void);                /* 1 if the kernels use OpenMP */
void qc_set_threads(int n);         /* C kernels and BLAS use n threads */
int qc_get_threads(void);

/* ---- float layers ---- */
/* x [N, C, H, W] -> y [N, O, Ho, Wo]; w [O, C/G, k, k]; b [O];
 * col scratch: (C/G) * k * k * Ho * Wo floats. */
void qc_conv(const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
             const float *w, const float *b, int64_t O, int64_t k, int64_t st, int64_t pad,
             int64_t G, int64_t Ho, int64_t Wo, float *col, float *y);
/* x [N, F], w [O, F], b [O] -> y [N, O] = x w^T + b */
void qc_fc(const float *x, int64_t N, int64_t F, const float *w, const float *b, int64_t O, float *y);
/* max pool, clipped windows: x [N*C, H, W] -> y [N*C, Ho, Wo]; scratch [nscratch >= 1, 2, W]
 * (at most nscratch threads run) */
void qc_max_pool(const float *x, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t st, int64_t pad,
                 int64_t Ho, int64_t Wo, float *scratch, int64_t nscratch, float *y);
void qc_relu(const float *x, int64_t n, float *y);
void qc_copy(const float *x, int64_t n, float *y);
/* LRN across channels: x [N, C, HW] -> y */
void qc_lrn(const float *x, int64_t N, int64_t C, int64_t HW, int64_t size, float alpha, float beta,
            float k, float *y);
/* softmax over rows: x [N, F] -> y [N, F] */
void qc_softmax(const float *x, int64_t N, int64_t F, float *y);

/* ---- quantized conv ---- */
/* Pad by p and split into st x st phases, row-major by phase row:
 * x [N, C, H, W] -> xq [N, C, Hq, st*st, Wq], xq[n,c,i,py*st+px,j] = xpad[n,c,i*st+py,j*st+px]
 * (0 outside the padded image). */
void qc_pad_phase(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t st,
                  int64_t Hq, int64_t Wq, float *xq);
/* The table geometry: xq [N, C, Hq, P, Wq] (P = st*st phases); cb [S, K, D]; cs >= P*Wq floats
 * per code in a table row (a code's row is P*Wq values, then cs - P*Wq zeros, so that codes need
 * not sit a multiple of 4 KB apart). */
typedef struct {
    int64_t C, G, P, Hq, Wq, cs;
    const float *cb;
    int64_t S, K, D;
} qc_qconv_table_plan;
/* Table T [N, G, S, Hq, K, cs]: for n, g, s and row i
 * T[n,g,s,i] [K, :P*Wq] = cb[s][:, :dv] [K, dv] x xq[n, g*Cg + s*D : +dv, i] [dv, P*Wq],
 * dv = min(D, Cg - s*D), by explicit SIMD FMAs. */
void qc_qconv_table(const qc_qconv_table_plan *p, const float *xq, int64_t N, float *T);

/* The look-up, table-row-major, for tiles of R output channels (R = qc_conv_r()), output row i and
 * column j < Wo: y[n, o_r, i, j] = bias_t[tile, r] + sum_t T[n*tsize + group(tile)*gsize +
 * offs[tile, t, r] + (i + gdu[gr])*rowstride + j], the taps t summed group by group (taps
 * gstart[gr] .. gstart[gr+1]-1, in order; every tap of group gr has the tap-row offset gdu[gr] =
 * u / st, kr = max + 1), for r < rcount(tile). Each table row is read once while the output rows
 * in flight accumulate in a ring. T holds N*tsize floats plus zeroed slack covering reads up to
 * ceil(Wo / VL) * VL columns past each row start. tile_o0/tile_rc/tile_g [ntiles];
 * offs [ntiles, ntaps, R]; gstart [ngroups + 1]; gdu [ngroups]; bias_t [ntiles, R]. */
typedef struct {
    int64_t tsize, gsize, rowstride;
    int64_t ntiles;
    const int32_t *tile_o0, *tile_rc, *tile_g;
    const int32_t *offs;
    int64_t ntaps, ngroups;
    const int32_t *gstart, *gdu;
    int64_t kr;
    const float *bias_t;
    int64_t O, Ho, Wo;
} qc_qconv_lookup_plan;
/* acc scratch: qc_qconv_lookup_scratch(p) floats */
int64_t qc_qconv_lookup_scratch(const qc_qconv_lookup_plan *p);
void qc_qconv_lookup(const qc_qconv_lookup_plan *p, const float *T, int64_t N, float *acc, float *y);

/* Fused (the row-fused schedule): the sums of qc_qconv_table + qc_qconv_lookup (same order,
 * bit-identical with shifted tiles) with table row rho of every (group, subspace) built into a
 * per-thread row buffer right before the look-ups that read it. table: as for qc_qconv_table;
 * offs [ntiles, ntaps, R] relative to the row buffer [G, S, K, cs]: s*K*cs + code*cs + phase*Wq
 * + v/st; gstart/gdu/kr as for qc_qconv_lookup; tchunk channel tiles at a time per table row.
 * rowfl: floats of the row buffer, G*S*K*cs plus slack covering reads up to ceil(Wo/VL)*VL
 * columns past each offset.
 * gdv NULL: tiles of R = qc_conv_r() channels, offsets as above. gdv [ngroups] (only when
 * qc_conv_fused_rot_r() > 0, Wq a whole number of vectors and every gdv < VL): rotated tiles of
 * qc_conv_fused_rot_r() channels; all taps of group g share the column shift gdv[g] = v/st, which
 * the offsets then leave out (another summation order); rowfl's slack covers reads up to
 * (ceil(Wo/VL) + 1) * VL columns. */
typedef struct {
    qc_qconv_table_plan table;
    int64_t ntiles;
    const int32_t *tile_o0, *tile_rc, *tile_g;
    const int32_t *offs;
    int64_t ntaps, ngroups;
    const int32_t *gstart, *gdu, *gdv;
    int64_t kr;
    const float *bias_t;
    int64_t O, Ho, Wo, tchunk, rowfl;
} qc_qconv_fused_plan;
int qc_conv_fused_rot_r(void);
/* scratch: nscratch (>= 1; at most nscratch threads run) blocks of qc_qconv_fused_scratch(p) floats */
int64_t qc_qconv_fused_scratch(const qc_qconv_fused_plan *p);
void qc_qconv_fused(const qc_qconv_fused_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                    float *y);

/* Narrow stride-1 layers (Wo <= VL): x is xq [N, C, Hq, 1, Wq]; output rows Bo at a time, per
 * (group, subspace) a band table [K, BR = Bo + k - 1, WP] (WP = Wq rounded up to whole vectors)
 * built into a per-thread buffer, then every channel's k*k taps of that subspace added with one
 * offset per V <= Bo rows. Tiles of R channels, R = qc_conv_band_r(); offs [G, S, ntiles / G,
 * tps = k*k, R] (tiles group-major, ntiles / G per group; read in this order):
 * code*BR*WP + u*WP + v, taps row-major. Bo <= VMAX (qc_conv_width() / VL).
 * rot = 1 (only when qc_conv_band_rot_r() > 0, Wq <= VL and Bo <= 3): rotated tiles of
 * R = qc_conv_band_rot_r() channels, aligned loads, the column shift applied to each shift's partial
 * sum; offs then hold code*BR*WP + u*WP with taps v-major (v outer, u inner). */
typedef struct {
    int64_t C, G, Hq, Wq;
    const float *cb;
    int64_t S, K, D;
    int64_t ntiles;
    const int32_t *tile_o0, *tile_rc, *tile_g;
    const int32_t *offs;
    int64_t tps;
    const float *bias_t;
    int64_t O, Ho, Wo, Bo, BR, WP, k;
    int rot;
} qc_qconv_band_plan;
int qc_conv_band_r(void);     /* RB: output channels per register tile of the band path */
int qc_conv_band_rot_r(void); /* channels per rotated tile; 0: none in this build (scalar) */
/* scratch: nscratch (>= 1) blocks of qc_qconv_band_scratch(p) floats */
int64_t qc_qconv_band_scratch(const qc_qconv_band_plan *p);
void qc_qconv_band(const qc_qconv_band_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                   float *y);
/* Roofline probe (python -m qcnn_cffi.roofline): the band path's register tile over offsets into T,
 * reps times, one thread. acc [nch / RB, RB, V, VL] += sum over taps t of
 * T[offs[tile, t, r] + v * rowstride + lane]; offs [nch / RB, ntaps, RB]; 1 <= V <= qc_conv_width() / VL. */
void qc_probe_lookup(const float *T, const int32_t *offs, int64_t nch, int64_t ntaps, int64_t V,
                     int64_t rowstride, int64_t reps, float *acc);
int qc_conv_r(void);     /* R: output channels per register tile */
int qc_conv_chunk(void); /* VL: floats per vector */
int qc_conv_width(void); /* columns per register tile (row segments are at most this wide) */

/* ---- quantized conv with integer tables (qc_qint.c; qcnn.reference.qconv_int_table/lookup) ----
 * x is xq [N, C, Hq, P, Wq] as above; cb [S, K, D]; cmax = qcnn.reference.codebook_norm(cb);
 * entries in [-qmax, qmax]; lim > 0: sums in int16 lanes widened to int32 before lim terms
 * (lim * qmax <= 32767), lim = 0: int32 sums. Units (subspace unit_s[u], phase unit_ph[u]),
 * u < nunits, each with taps ustart[u] .. ustart[u + 1] - 1 of every channel (ntaps in all);
 * offs [ntiles, ntaps, R] (R = qc_int_tile_r(), tiles group-major, ntiles / G per group, a short
 * tile repeating its last channel): code * CS + (u / st) * Wq + v / st, CS >= BR * Wq + one
 * vector (a code's table, then slack). Bands of Bo output rows, BR = Bo + kr - 1 table rows, LP >= Bo * Wq lanes, a multiple of qc_int_lanes().
 * bias [O]; relu: max(y, 0) after the rescale. */
typedef struct {
    int64_t C, G, P, Hq, Wq;
    const float *cb;
    int64_t S, K, D;
    float cmax;
    int32_t qmax, lim;
    int64_t nunits;
    const int32_t *unit_s, *unit_ph, *ustart;
    int64_t ntiles;
    const int32_t *tile_o0, *tile_rc;
    const int32_t *offs;
    int64_t ntaps;
    const float *bias;
    int64_t O, Ho, Wo, Bo, BR, LP, CS;
    int relu;
} qc_qconv_int_plan;
int qc_int_lanes(void);  /* int16 lanes per vector */
/* Roofline probe: the int16-lane tile (R = qc_int_tile_r() channels x V <= qc_int_tile_v() vectors)
 * over offs [nch / R, ntaps, R], reps times: acc [nch / R, R, V, lanes] += T[offs + v * lanes ..] */
void qc_probe_lookup_int(const int16_t *T, const int32_t *offs, int64_t nch, int64_t ntaps, int64_t V, int64_t reps,
                         int16_t *acc);
int qc_int_tile_r(void); /* channels per register tile */
int qc_int_tile_v(void); /* vectors per register tile */
/* scratch: nscratch (>= 1) blocks of qc_qconv_int_scratch(p) floats, then 2 N floats */
int64_t qc_qconv_int_scratch(const qc_qconv_int_plan *p);
void qc_qconv_int(const qc_qconv_int_plan *p, const float *xq, int64_t N, float *scratch, int64_t nscratch,
                  float *y);
/* Staged (a plan with Bo = Ho): T [N, qc_qconv_int_table_size(p)] int16, the tables of every
 * (group, unit) [G, nunits, K, CS] then zeroed slack; scale [N]. */
int64_t qc_qconv_int_table_size(const qc_qconv_int_plan *p);
void qc_qconv_int_table(const qc_qconv_int_plan *p, const float *xq, int64_t N, int16_t *T, float *scale);
void qc_qconv_int_lookup(const qc_qconv_int_plan *p, const int16_t *T, const float *scale, int64_t N, float *scratch,
                         int64_t nscratch, float *y);

/* ---- quantized fc ---- */
/* Table: x [N, F], cbt [S, D, Kp] (codebook transposed, padded with zeros to Kp) ->
 * T [N, S, Kp], T[n,s,k] = sum_{d < D, sD+d < F} x[n, sD+d] cbt[s,d,k]. */
void qc_qfc_table(const float *x, int64_t N, int64_t F, const float *cbt, int64_t S, int64_t D, int64_t Kp,
                  float *T);
/* Look-up: codes blocked [Ob, S, qc_fc_code_bytes(Kp)] (Bk = qc_fc_block_for(Kp) outputs per
 * block, consecutive outputs contiguous), bias padded to [Ob * Bk]; y [N, O],
 * y[n, o] = bias[o] + sum_s T[n, s, codes(o, s)] for o < O. */
void qc_qfc_lookup(const float *T, int64_t N, int64_t S, int64_t Kp, const uint8_t *codes, int64_t Ob,
                   const float *bias, int64_t O, float *y);
/* Integer tables (qcnn.reference.qfc_int_table): tf [N, S, Kp] float scratch gets the float
 * table (x0 c0, then + xd cd, no FMA), T [N, S, Kp] int32 its entries rounded with
 * bound = max |T[n]|, scale [N] = bound / qmax. Look-up: exact int32 sums of the same permutes,
 * then y = float32(sum) * scale[n] + bias[o] (+ ReLU when relu). */
void qc_qfc_int_table(const float *x, int64_t N, int64_t F, const float *cbt, int64_t S, int64_t D, int64_t Kp,
                      int32_t qmax, float *tf, int32_t *T, float *scale);
void qc_qfc_int_lookup(const int32_t *T, int64_t N, int64_t S, int64_t Kp, const uint8_t *codes, int64_t Ob,
                       const float *scale, const float *bias, int64_t O, int relu, float *y);
int qc_fc_block(void);          /* B, the default block */
int qc_fc_block_for(int Kp);    /* Bk: 96 when Kp = 32 on AVX-512, else B */
int qc_fc_kpad(int K);          /* Kp: table row length for K codewords */
/* Bytes of codes per (block, subspace): Bk bytes; on AVX-512 packed: Kp = 16: B / 2, two 4-bit
 * codes per byte, byte i < B/2 = code(i) | code(i + B/2) << 4; Kp = 32: 64 bytes, sixteen
 * little-endian 32-bit words, word l = sum_q code(16 q + l) << 5 q, q < 6. */
int qc_fc_code_bytes(int Kp);

#endif
