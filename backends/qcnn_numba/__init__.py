"""qcnn's ``numba`` backend: every layer, float and quantized, as numba-compiled kernels.

Importing this package is cheap: numba itself is imported only when the backend is
loaded (``qcnn_numba.plugin`` registers a lazy ``BackendSpec``).

* quantized conv: look-up tables kept as planes T[g, s, k] over the zero-padded,
  stride-phase-split input, and the look-up as contiguous 16-float vector window adds
  ``Y[o] += T[g, s, A[o, u, v, s]][shifted window]`` (no gathers). Calling the kernel
  builds the LUT tile by tile (subspace, phase, row band) right before the look-ups that
  read it, so it stays in L2; ``.table``/``.lookup`` run the same arithmetic as two
  stages with the whole LUT materialised (bit-identical results). Rows are padded to whole
  vectors so every table load is aligned; each column shift is applied once to the partial
  sum of its taps by a lane shuffle (``NumbaConfig(grid_rotate=False)``: shifted loads).
  Narrow stride-1 layers (a padded row in one vector) take a band path with the same trick
  (``band_rotate=False``: shifted loads; rotated, another summation order than the stages,
  within rounding).
* quantized fc: tables T[s, :] of <= 32 entries held in AVX-512 registers and looked up
  16 outputs at a time with ``vpermi2ps``/``vpermps`` on codes bit-packed 5 (or 4) bits
  each; a portable scalar loop otherwise.
* float conv: im2col in numba, then one SGEMM per group through numpy's BLAS; float fc:
  SGEMM + a numba bias add.
* pool, ReLU, LRN (rsqrt-based x s^-0.75 on AVX-512), dropout, softmax: parallel numba loops.

Parallel kernels split work over output channels (or output blocks) only, never inside
a sum, so results are bit-identical for any thread count. Kernels are compiled with
``cache=True`` and warmed up in ``prepare``; ``qcnn bench --backend numba --per-layer`` times them.

The tunables are the fields of :class:`qcnn_numba.config.NumbaConfig` (``band_rotate``,
``grid_rotate``, ``band_rows``): ``NumbaBackend(config=NumbaConfig(...))``, ``NumbaBackend(**fields)``
or ``qcnn.compile(model, "numba", options={...})``. No environment variable is read, except that
loading sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already (see ``qcnn_numba.plugin.load``).

numba's on-disk cache is keyed on the timestamp of the file that defines each kernel, not on
the intrinsics it calls: after editing ``simd.py`` alone, delete ``__pycache__/*.nbi``.
"""

__all__: list[str] = []
