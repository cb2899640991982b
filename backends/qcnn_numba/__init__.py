"""qcnn's ``numba`` backend: every layer, float and quantized, as numba-compiled kernels.

Importing this package is cheap: numba itself is imported only when the backend is
loaded (``qcnn_numba.plugin`` registers a lazy ``BackendSpec``).

* float conv: im2col in numba, then one SGEMM per group through numpy's BLAS;
* quantized conv: look-up tables kept as planes T[g, s, k] of the (padded,
  stride-phase-split) input, and the look-up as contiguous, vectorised window adds
  ``Y[o] += T[g, s, A[o, u, v, s]][shifted window]``;
* quantized fc: tables T[s, :] of <= 32 entries held in AVX-512 registers and looked up
  16 outputs at a time with ``vpermi2ps`` (a portable scalar loop otherwise);
* pool, ReLU, LRN, dropout, softmax: parallel numba loops.

Parallel kernels split work over output channels (or output blocks) only, never inside
a sum, so results are bit-identical for any thread count.
"""

__all__: list[str] = []
