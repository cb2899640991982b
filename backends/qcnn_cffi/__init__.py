"""qcnn's ``cffi`` backend: C kernels (SIMD, OpenMP) and a real CBLAS, built with cffi at install time.

Importing this package is cheap; the compiled extension is loaded by :func:`qcnn_cffi.plugin.load`.

Layout of the package:

* ``csrc/``: the C99 kernels (``qcnn_kernels.h`` is the whole interface, and cffi's cdef). SIMD
  level is fixed at build time (``-march=native`` by default: AVX-512, else AVX2, else portable
  scalar code).
* ``_build.py``: the cffi (API mode) builder, run by ``setup.py``; BLAS is a system OpenBLAS found
  by pkg-config, else the pinned ``scipy-openblas32`` wheel (``scipy_`` symbol prefix).
* ``_ext.py``: loads the module (after ``scipy_openblas32``, which preloads its library).
* ``_checks.py``: every argument is validated in Python before C sees it.
* ``config.py``: :class:`~qcnn_cffi.config.CffiConfig`, the tuning choices (which fused schedule,
  rotated tiles, blocking), each default the measured winner; ``CffiBackend(config=...)`` or
  ``load(**fields)`` / ``qcnn.compile(..., options={...})``.
* ``backend.py``: ``CffiBackend``, an ``OpTable`` mapping ``layer.op`` to the prepare functions of
  ``float_ops.py``, ``qconv.py`` and ``qfc.py``. Quantized layers are ``StagedKernel(table,
  lookup)``; a quantized conv's call runs a fused schedule (``fused=``: table rows, or for narrow
  stride-1 layers per-subspace band tables, built right before their look-ups), one module each:
  ``_qconv_staged.py``, ``_qconv_rows.py``, ``_qconv_band.py`` (shared parts: ``_qconv_layout.py``).
* ``roofline.py``: ``python -m qcnn_cffi.roofline`` measures the look-up add rate of this machine
  and the floors it sets for each quantized conv (``qcnn bench --backend cffi --per-layer`` times
  the layers).

Build switches (environment variables, read by ``_build.py`` only): ``QCNN_CFFI_BLAS``
(auto/system/scipy), ``QCNN_CFFI_MARCH`` (native, x86-64-v3, x86-64, none), ``QCNN_CFFI_OPENMP`` (1/0).
"""

__all__: list[str] = []
