"""The backend contract, stated and checked here: everything a backend may use.

A backend package (built in or third party) imports only from this module::

    from qcnn.plugin import BackendSpec, Layer, OpTable, QcnnError, StagedKernel, hookimpl

registers a :class:`BackendSpec` from ``qcnn_register_backends``, and is found through the
``qcnn.backends`` entry-point group. ``qcnn.testing`` checks that it keeps the contract.
"""

from __future__ import annotations

from .._errors import QcnnError
from ..model import Layer, Quant
from ._contract import Backend, BackendSpec, Kernel, OpTable, Prepare, StagedKernel
from ._hookspec import hookimpl, hookspec
from ._reference import ReferenceBackend, reference_kernel
from ._registry import (ENTRY_POINT_GROUP, LoadedBackend, Problem, backend_specs, configured_backend, load_backend,
                        loaded_backends, preferred_backends, problems, set_threads)
from ._threads import blas_info, check_threads, get_threads

__all__ = [
    "ENTRY_POINT_GROUP", "Backend", "BackendSpec", "Kernel", "Layer", "LoadedBackend", "OpTable", "Prepare",
    "Problem", "QcnnError", "Quant", "ReferenceBackend", "StagedKernel", "backend_specs", "blas_info",
    "check_threads", "configured_backend", "get_threads", "hookimpl", "hookspec", "load_backend", "loaded_backends", "preferred_backends",
    "problems", "reference_kernel", "set_threads",
]
