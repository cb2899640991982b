"""The compiled module ``_qcnn_cffi`` (``ffi``, ``lib``), loaded once, with a clear error if missing;
its kernels start with one thread per core (``os.cpu_count()``) until a count is set.

``scipy_openblas32`` is imported first: it loads its OpenBLAS with RTLD_GLOBAL, so the extension
finds the library even when the rpath recorded at build time no longer exists (e.g. the
isolated build environment of ``pip install .``).
"""

from __future__ import annotations

import os
from typing import Any

from qcnn.plugin import QcnnError

__all__ = ["ffi", "lib"]


def _load() -> tuple[Any, Any]:
    try:
        import scipy_openblas32  # noqa: F401  (preloads libscipy_openblas)
    except ImportError:
        pass  # built against a system OpenBLAS, or the import below says what is missing
    try:
        from ._qcnn_cffi import ffi, lib  # type: ignore[import-not-found]
    except ImportError as err:
        raise QcnnError(f"the cffi backend's C extension is not built or cannot load ({err}); "
                        "reinstall qcnn (pip install -e .) with a C compiler available") from None
    if not lib.qc_cpu_ok():
        simd = ffi.string(lib.qc_simd()).decode()
        raise QcnnError(f"the cffi backend was built for {simd} but this CPU lacks it; rebuild with "
                        "QCNN_CFFI_MARCH=x86-64 (portable) or QCNN_CFFI_MARCH=native")
    # the default until the registry applies a thread count: every core, C kernels and BLAS alike
    lib.qc_set_threads(os.cpu_count() or 1)
    return ffi, lib


ffi, lib = _load()
