"""What every backend must do, one property per function.

Each check takes a loaded backend's object and one :class:`~qcnn.testing.Case`, raises
``AssertionError`` when the property does not hold and ``unittest.SkipTest`` when it does
not apply (the backend declines the layer, so the runtime runs the reference kernel).
"""

from __future__ import annotations

import dataclasses
import os
import unittest
from collections.abc import Callable

import numpy as np

from .._errors import QcnnError
from .._runtime import compile
from ..model import Layer, Model, NetSpec
from ..plugin import Backend, Kernel, StagedKernel, get_threads, loaded_backends, reference_kernel, set_threads
from ._cases import INT_RTOL, Case, assert_close, case_data, prepare_layer

__all__ = ["PROPERTY_CHECKS", "check_agrees_with_reference", "check_int_tables_exact", "check_bad_input_is_clear", "check_batch_invariance",
           "check_declines_unknown_op", "check_input_unchanged", "check_output_fresh", "check_params_unchanged",
           "check_readonly_input", "check_stages_match_call", "check_thread_invariance"]


def _kernel(backend: Backend, case: Case, params: dict[str, np.ndarray]) -> Kernel:
    kernel = prepare_layer(backend, case.layer, params, case.in_shape)
    if kernel is None:
        raise unittest.SkipTest(f"the backend declines {case.layer.op}; the reference runs it")
    return kernel


def _out(kernel: Kernel, x: np.ndarray, case: Case) -> np.ndarray:
    """kernel(x), checked to be a float32 C-contiguous [N, *out_shape] array."""
    y = kernel(x)
    want = (x.shape[0], *case.out_shape)
    if not isinstance(y, np.ndarray) or y.shape != want:
        raise AssertionError(f"{case.id}: output {getattr(y, 'shape', type(y).__name__)}, expected {list(want)}")
    if y.dtype != np.float32 or not y.flags.c_contiguous:
        raise AssertionError(f"{case.id}: output is {y.dtype}, contiguous={y.flags.c_contiguous}; "
                             "the contract is C-contiguous float32")
    return y


def check_agrees_with_reference(backend: Backend, case: Case) -> None:
    """The kernel's output equals the reference kernel's within RTOL, and two runs on the
    same input give the same bits (determinism)."""
    params, x = case_data(case)
    kernel = _kernel(backend, case, params)
    want = reference_kernel(case.layer, params)(x)
    got = _out(kernel, x.copy(), case)
    assert_close(got, want, case.id)
    if not np.array_equal(got, _out(kernel, x.copy(), case)):
        raise AssertionError(f"{case.id}: two runs on the same input differ")


def check_int_tables_exact(backend: Backend, case: Case, precision: str) -> None:
    """With integer tables (``precision`` int16 or int8) the backend reproduces the reference's
    integer sums exactly: its output equals the reference's integer-table output up to the
    final float rescale (1e-6 relative), and two runs give the same bits."""
    if precision not in getattr(backend, "table_precisions", ("fp32",)):
        raise unittest.SkipTest(f"the backend has no {precision} tables; the runtime runs the reference kernel")
    assert case.layer.quant is not None
    layer = case.layer.with_quant(dataclasses.replace(case.layer.quant, tables=precision))
    params, x = case_data(case)
    kernel = prepare_layer(backend, layer, params, case.in_shape)
    if kernel is None:
        raise unittest.SkipTest(f"the backend declines {layer.op} with {precision} tables")
    got = _out(kernel, x, case)
    assert_close(got, reference_kernel(layer, params)(x), f"{case.id} {precision}", rtol=INT_RTOL)
    if not np.array_equal(got, _out(kernel, x, case)):
        raise AssertionError(f"{case.id} {precision}: two runs on the same input differ")


def check_input_unchanged(backend: Backend, case: Case) -> None:
    """Running a kernel never writes into its input."""
    params, x = case_data(case)
    kernel = _kernel(backend, case, params)
    before = x.copy()
    _out(kernel, x, case)
    if not np.array_equal(x, before):
        raise AssertionError(f"{case.id}: the kernel modified its input")


def check_params_unchanged(backend: Backend, case: Case) -> None:
    """Neither ``prepare`` nor running the kernel writes into the layer's tensors."""
    params, x = case_data(case)
    before = {k: v.copy() for k, v in params.items()}
    kernel = _kernel(backend, case, params)
    _out(kernel, x, case)
    changed = [k for k in params if not np.array_equal(params[k], before[k])]
    if changed:
        raise AssertionError(f"{case.id}: prepare or the kernel modified the tensor(s) {', '.join(changed)}")


def check_batch_invariance(backend: Backend, case: Case) -> None:
    """Row i of a batch of 3 equals the batch-of-1 result on row i (within RTOL: a BLAS
    may sum in another order for another batch size)."""
    params, x = case_data(case)
    x3 = np.ascontiguousarray(np.concatenate([x[:1], x[:1] * 0.5 + 0.25, x[:1][..., ::-1]]), np.float32)
    kernel = _kernel(backend, case, params)
    y3 = _out(kernel, x3, case)
    for i in range(3):
        assert_close(y3[i:i + 1], _out(kernel, np.ascontiguousarray(x3[i:i + 1]), case), f"{case.id} row {i}")


def _two_cores() -> None:
    if (os.cpu_count() or 1) < 2:
        message = "thread invariance needs 2 cores; this machine has 1"
        if os.environ.get("CI", "").lower() == "true":
            raise AssertionError(message + " (under CI=true this fails rather than skips)")
        raise unittest.SkipTest(message)


def check_thread_invariance(backend: Backend, case: Case) -> None:
    """The same kernel gives the same result with 1 and with 2 threads (within RTOL)."""
    _two_cores()
    params, x = case_data(case)
    previous = get_threads() or 1
    try:
        set_threads(1)
        backend.set_threads(1)
        kernel = _kernel(backend, case, params)
        y1 = _out(kernel, x, case)
        set_threads(2)
        backend.set_threads(2)
        y2 = _out(kernel, x, case)
    finally:
        set_threads(previous)
        backend.set_threads(previous)
    assert_close(y2, y1, f"{case.id} 2 threads vs 1")


def check_output_fresh(backend: Backend, case: Case) -> None:
    """Each call returns a new array: a later call does not overwrite an earlier result."""
    params, x = case_data(case)
    kernel = _kernel(backend, case, params)
    y1 = _out(kernel, x, case)
    kept = y1.copy()
    y2 = _out(kernel, np.ascontiguousarray(x[..., ::-1]) * 2, case)
    if np.shares_memory(y1, y2) or not np.array_equal(y1, kept):
        raise AssertionError(f"{case.id}: a second call reused the first call's output array")


def check_stages_match_call(backend: Backend, case: Case) -> None:
    """A staged kernel's ``lookup(table(x))`` equals its call (the fused path, if any),
    within RTOL."""
    params, x = case_data(case)
    kernel = _kernel(backend, case, params)
    if not isinstance(kernel, StagedKernel):
        raise unittest.SkipTest(f"{case.layer.op} is not staged on this backend")
    y = _out(kernel, x, case)
    staged = kernel.lookup(kernel.table(x))
    assert_close(np.asarray(staged), y, f"{case.id} lookup(table(x)) vs the call")


def check_readonly_input(backend: Backend, case: Case) -> None:
    """A read-only input array runs, and gives the same result as a writable one."""
    params, x = case_data(case)
    kernel = _kernel(backend, case, params)
    want = _out(kernel, x.copy(), case)
    ro = x.copy()
    ro.setflags(write=False)
    if not np.array_equal(_out(kernel, ro, case), want):
        raise AssertionError(f"{case.id}: a read-only input gives another result")


def check_declines_unknown_op(backend: Backend, case: Case) -> None:
    """``prepare`` returns None for an op it does not know (here ``mystery``), so that the
    runtime can fall back; it never raises."""
    layer = Layer(name="mystery", type="mystery")
    try:
        kernel = backend.prepare(layer, {}, case.in_shape, case.in_shape)
    except Exception as err:
        raise AssertionError(f"prepare raised {type(err).__name__} for an unknown op instead of returning None: "
                             f"{err}") from None
    if kernel is not None:
        raise AssertionError(f"prepare returned {kernel!r} for an unknown op, not None")


def check_bad_input_is_clear(backend: Backend, case: Case) -> None:
    """Through a session on this backend, bad inputs (wrong shape, an empty batch, strings)
    are one-line :class:`QcnnError` s, and odd but valid ones (float64, Fortran order, a
    strided view) give the regular result."""
    if len(case.in_shape) != 3:
        raise unittest.SkipTest("sessions take [C, H, W] inputs; this case is a vector layer")
    params, x = case_data(case)
    _kernel(backend, case, params)  # skips when the backend declines the layer
    spec = NetSpec(name=f"check-{case.layer.name}", input=case.in_shape, layers=(case.layer,))  # type: ignore[arg-type]
    session = compile(Model(spec, {case.layer.name: params} if params else {}), backend=_name_of(backend))
    want = session(x)
    for bad, what in ((x[:, :-1], "a missing channel"), (x[:0], "an empty batch"), (x.astype(str), "strings")):
        try:
            session(bad)
        except QcnnError as err:
            if "\n" in str(err):
                raise AssertionError(f"{case.id}: the error for {what} spans lines: {err!r}") from None
        else:
            raise AssertionError(f"{case.id}: {what} was accepted")
    for odd in (x.astype(np.float64), np.asfortranarray(x), np.repeat(x, 2, axis=-1)[..., ::2]):
        assert_close(session(odd), want, f"{case.id} {odd.dtype} contiguous={odd.flags.c_contiguous}")


def _name_of(backend: Backend) -> str:
    """The registered name of a loaded backend object (sessions are compiled by name)."""
    for loaded in loaded_backends():
        if loaded.impl is backend:
            return loaded.name
    raise unittest.SkipTest("the backend object is not a loaded, registered backend")


#: Property checks by name; each runs on one case per op.
PROPERTY_CHECKS: dict[str, Callable[[Backend, Case], None]] = {
    f.__name__: f for f in (check_input_unchanged, check_params_unchanged, check_batch_invariance,
                            check_thread_invariance, check_output_fresh, check_stages_match_call,
                            check_readonly_input, check_declines_unknown_op, check_bad_input_is_clear)
}
