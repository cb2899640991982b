"""Public conformance checks: the single statement of what a backend must do.

For a third-party backend author, the whole suite is two lines of pytest::

    from qcnn.testing import parametrize_with_checks

    @parametrize_with_checks(["mybackend"])
    def test_conformance(backend, check):
        check(backend)

or, outside pytest, ``qcnn.testing.check_backend("mybackend")``.

Every check is one test id:

* agreement with the reference kernel on randomised layer cases (groups 1-4, stride 1-4,
  padding 0-3, kernel 1-11, D that does not divide C, K from 2 to 256, batch 1 and 3,
  non-square inputs), plus determinism; agreement means max |y - y_ref| / max |y_ref| <=
  :data:`RTOL` (float32 summation order);
* the named properties of ``_checks.py`` on one case per op (``check_input_unchanged``,
  ``check_params_unchanged``, ``check_batch_invariance``, ``check_thread_invariance``,
  ``check_output_fresh``, ``check_stages_match_call``, ``check_readonly_input``,
  ``check_declines_unknown_op``, ``check_bad_input_is_clear``);
* integer tables (``tables="int16"``/``"int8"``): on every quantized case, a backend that
  lists the precision in ``table_precisions`` reproduces the reference's integer sums
  (:data:`INT_RTOL`: only the final float rescale may differ);
* every layer of the published quantized AlexNet on a real image (they need
  ``shared/seed-alexnet``; pass ``seed_dir``).

A layer the backend declines is skipped, since the runtime runs the reference kernel for
it. ``expected_failed_checks={id or property: reason}`` marks known failures.
"""

from __future__ import annotations

from ._cases import (ALEXNET_LAYERS, INT_RTOL, RTOL, Case, alexnet_activations, assert_close, case_data, layer_cases,
                     prepare_layer, relative_error)
from ._checks import (PROPERTY_CHECKS, check_agrees_with_reference, check_bad_input_is_clear,
                      check_int_tables_exact, check_batch_invariance,
                      check_declines_unknown_op, check_input_unchanged, check_output_fresh, check_params_unchanged,
                      check_readonly_input, check_stages_match_call, check_thread_invariance)
from ._suite import Check, backend_checks, check_backend, parametrize_with_checks, property_cases

__all__ = [
    "ALEXNET_LAYERS", "INT_RTOL", "PROPERTY_CHECKS", "RTOL", "Case", "Check", "alexnet_activations", "assert_close",
    "backend_checks", "case_data", "check_agrees_with_reference", "check_backend", "check_bad_input_is_clear",
    "check_batch_invariance", "check_declines_unknown_op", "check_input_unchanged", "check_int_tables_exact", "check_output_fresh",
    "check_params_unchanged", "check_readonly_input", "check_stages_match_call", "check_thread_invariance",
    "layer_cases", "parametrize_with_checks", "prepare_layer", "property_cases", "relative_error",
]
