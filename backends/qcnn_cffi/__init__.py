"""qcnn's ``cffi`` backend: C kernels (SIMD, OpenMP) and a real CBLAS, built with cffi at install time.

Importing this package is cheap; the compiled extension is loaded by :func:`qcnn_cffi.plugin.load`.

Layout of the package:

* ``csrc/``: the C99 kernels (``qcnn_kernels.h`` is the whole interface). SIMD level is fixed at
  build time (``-march=native`` by default: AVX-512, else AVX2, else portable scalar code).
* ``_build.py``: the cffi (API mode) builder, run by ``setup.py``; BLAS is a system OpenBLAS found
  by pkg-config, else the pinned ``scipy-openblas32`` wheel (``scipy_`` symbol prefix).
* ``_ext.py``: loads the module (after ``scipy_openblas32``, which preloads its library).
* ``_checks.py``: every argument is validated in Python before C sees it.
* ``float_ops.py``, ``qconv.py``, ``qfc.py``: one prepare function per op; ``backend.py`` maps
  ``layer.op`` to them. Quantized layers are ``StagedKernel(table, lookup)``; a quantized conv's
  call fuses the two stages (``qconv.FusedQConv``: table rows, or for narrow stride-1 layers
  per-subspace band tables, built right before their look-ups).
* ``bench_layers.py``: ``python -m qcnn_cffi.bench_layers`` times float vs quantized AlexNet;
  ``roofline.py``: ``python -m qcnn_cffi.roofline`` measures the look-up add rate of this
  machine and the floors it sets for each quantized conv.

Build and tuning switches (environment variables): ``QCNN_CFFI_BLAS`` (auto/system/scipy),
``QCNN_CFFI_MARCH`` (native, x86-64-v3, x86-64, none), ``QCNN_CFFI_OPENMP`` (1/0) at build time;
``QCNN_CFFI_TABLE`` (simd/blas), ``QCNN_CFFI_LOOKUP_ORDER`` (table/output/auto),
``QCNN_CFFI_ROW_BLOCK``, ``QCNN_CFFI_ACC_BYTES``, ``QCNN_CFFI_FUSED`` (1/0),
``QCNN_CFFI_FUSED_MIN_TAPS``, ``QCNN_CFFI_FUSED_ACC_BYTES``, ``QCNN_CFFI_BAND`` (1/0),
``QCNN_CFFI_BAND_ROTATE`` (1/0), ``QCNN_CFFI_FUSED_ROTATE`` (1/0), ``QCNN_CFFI_PAD_WIDTH`` (1/0)
when a layer is prepared.
"""

__all__: list[str] = []
