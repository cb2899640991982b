"""The suite: every check as a named :class:`Check`, for pytest or for a plain call."""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..plugin import load_backend
from ._cases import ALEXNET_LAYERS, Case, alexnet_activations, assert_close, layer_cases, prepare_layer
from ._checks import PROPERTY_CHECKS, check_agrees_with_reference, check_int_tables_exact

__all__ = ["Check", "backend_checks", "check_backend", "parametrize_with_checks", "property_cases"]


@dataclass(frozen=True)
class Check:
    """One conformance check: ``check(backend_name)`` raises AssertionError on a mismatch
    and ``unittest.SkipTest`` when it does not apply."""

    id: str
    run: Callable[[str], None]

    def __call__(self, backend: str) -> None:
        self.run(backend)

    def __repr__(self) -> str:
        return self.id


def _on_case(check: Callable[..., None], case: Case, backend: str, **kw: Any) -> None:
    check(load_backend(backend).impl, case, **kw)


def _alexnet_layer(name: str, seed_dir: Path | None, backend: str) -> None:
    if seed_dir is None or not Path(seed_dir).is_dir():
        raise unittest.SkipTest(f"AlexNet checks need shared/seed-alexnet; seed_dir={seed_dir}")
    model, acts = alexnet_activations(str(Path(seed_dir).resolve()))
    names = model.spec.names
    i = names.index(name)
    layer = model.spec.layers[i]
    kernel = prepare_layer(load_backend(backend).impl, layer, model.layer_params(name), model.spec.shapes()[i])
    if kernel is None:
        raise unittest.SkipTest(f"backend {backend} declines {layer.op}; the reference runs it")
    x = acts[names[i - 1]] if i else acts[""]
    assert_close(np.asarray(kernel(np.ascontiguousarray(x))), acts[name], f"alexnet {name}")


def property_cases() -> list[Case]:
    """The cases the property checks run on: the first batch-of-3 case of every op (the
    first case when an op has none)."""
    by_op: dict[str, Case] = {}
    for case in layer_cases():
        best = by_op.get(case.layer.op)
        if best is None or (best.batch == 1 and case.batch == 3):
            by_op[case.layer.op] = case
    return list(by_op.values())


def _applies(name: str, case: Case) -> bool:
    """Stages exist on quantized layers only; sessions take [C, H, W] inputs."""
    if name == "check_stages_match_call":
        return case.layer.quant is not None
    if name == "check_bad_input_is_clear":
        return len(case.in_shape) == 3
    return True


def backend_checks(seed_dir: str | Path | None = None) -> list[Check]:
    """All checks: agreement with the reference on every randomised layer case, every
    property check on one case per op (``check_input_unchanged-qconv``, ...), integer-table
    exactness on every quantized case and precision (``qconv-...-int16``), then every
    layer of the real AlexNet."""
    checks = [Check(case.id, functools.partial(_on_case, check_agrees_with_reference, case))
              for case in layer_cases()]
    checks += [Check(f"{name}-{case.layer.op}", functools.partial(_on_case, fn, case))
               for name, fn in PROPERTY_CHECKS.items() for case in property_cases() if _applies(name, case)]
    checks += [Check(f"{case.id}-{precision}", functools.partial(_on_case, check_int_tables_exact, case,
                                                                  precision=precision))
               for case in layer_cases() if case.layer.quant is not None for precision in ("int16", "int8")]
    root = Path(seed_dir) if seed_dir is not None else None
    checks += [Check(f"alexnet-{name}", functools.partial(_alexnet_layer, name, root)) for name in ALEXNET_LAYERS]
    return checks


def _expected(check_id: str, expected_failed_checks: Mapping[str, str] | None) -> str | None:
    """The reason a check is expected to fail: keyed by its id or by the property's name."""
    if not expected_failed_checks:
        return None
    return expected_failed_checks.get(check_id) or expected_failed_checks.get(check_id.rsplit("-", 1)[0])


def parametrize_with_checks(backends: Sequence[str], seed_dir: str | Path | None = None,
                            expected_failed_checks: Mapping[str, str] | None = None) -> Any:
    """A ``pytest.mark.parametrize`` over (backend, check): one test id per pair.

    ``expected_failed_checks`` maps a check id (``check_thread_invariance-qconv``) or a
    property name (``check_thread_invariance``) to the reason it fails; those checks are
    marked ``xfail(strict=True)``, so a fix is noticed too.
    """
    import pytest  # optional: only this helper needs pytest

    checks = backend_checks(seed_dir)
    params = []
    for backend in backends:
        for check in checks:
            reason = _expected(check.id, expected_failed_checks)
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)] if reason else []
            params.append(pytest.param(backend, check, id=f"{backend}-{check.id}", marks=marks))
    return pytest.mark.parametrize("backend, check", params)


def check_backend(name: str, seed_dir: str | Path | None = None,
                  expected_failed_checks: Mapping[str, str] | None = None,
                  raise_on_failure: bool = True) -> dict[str, str]:
    """Run every check on backend ``name`` outside pytest.

    Returns ``{check id: "passed" | "skipped: why" | "failed: why" | "xfail: why"}``; with
    ``raise_on_failure`` an ``AssertionError`` lists the failures (and any expected failure
    that passed).
    """
    results: dict[str, str] = {}
    for check in backend_checks(seed_dir):
        reason = _expected(check.id, expected_failed_checks)
        try:
            check(name)
        except unittest.SkipTest as skip:
            results[check.id] = f"skipped: {skip}"
        except AssertionError as err:
            results[check.id] = f"xfail: {reason}" if reason else f"failed: {err}"
        else:
            results[check.id] = f"failed: expected to fail ({reason}) but passed" if reason else "passed"
    failed = {k: v for k, v in results.items() if v.startswith("failed")}
    if failed and raise_on_failure:
        lines = [f"{k}: {v}" for k, v in failed.items()]
        raise AssertionError(f"backend {name}: {len(failed)} check(s) failed:\n" + "\n".join(lines))
    return results
