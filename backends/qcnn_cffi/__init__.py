"""qcnn's ``cffi`` backend: C kernels (SIMD, OpenMP) and a real CBLAS, built with cffi at install time.

Importing this package is cheap; the compiled extension is loaded by :func:`qcnn_cffi.plugin.load`.
"""

__all__: list[str] = []
