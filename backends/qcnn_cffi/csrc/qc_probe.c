/* Roofline probe of the look-up (python -m qcnn_cffi.roofline): the band path's shifted register
 * tile alone, timed from Python over tables of chosen size and offsets of chosen alignment. */
#include "qc_tiles.h"
/* The band path's register tile (RB channels x V vectors, one
 * offset per channel and tap, vectors rowstride floats apart) run reps times over every tile of
 * nch channels. acc [nch / RB, RB, V, VL] accumulates (start it at zero); offs [nch / RB, ntaps,
 * RB]; every offset + (V - 1) * rowstride + VL stays inside T. One thread: a probe of one core. */
void qc_probe_lookup(const float *T, const int32_t *offs, int64_t nch, int64_t ntaps, int64_t V,
                     int64_t rowstride, int64_t reps, float *acc) {
    int64_t ntiles = nch / RB, astride = V * VL, vo[VMAX];
    float *accp[VMAX];
    if (V < 1 || V > VMAX) return;
    for (int64_t v = 0; v < V; ++v) vo[v] = v * rowstride;
    for (int64_t rep = 0; rep < reps; ++rep)
        for (int64_t tl = 0; tl < ntiles; ++tl) {
            for (int64_t v = 0; v < V; ++v) accp[v] = acc + tl * RB * astride + v * VL;
            TILESB[V](T, vo, offs + tl * ntaps * RB, ntaps, accp, astride);
        }
}
