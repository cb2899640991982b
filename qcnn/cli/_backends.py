"""``qcnn backends``: every registered backend, whether it loads, and its facts."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import QcnnError
from ..plugin._registry import backend_specs, load_backend, problems
from ._common import emit_json, print_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("backends", help="list backends with availability, version, BLAS, SIMD and threads",
                       description="List every backend found through the qcnn.backends entry points: availability "
                                   "(with the reason when unavailable), version, BLAS, SIMD level, threads and the look-up table precisions it implements (the reference runs the others).")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def describe_backends() -> list[dict[str, Any]]:
    """One record per registered backend; loading failures become ``available: False`` + reason."""
    out = []
    for name, spec in backend_specs().items():
        record: dict[str, Any] = {"name": name, "version": spec.version, "plugin": spec.plugin,
                                  "summary": spec.summary, "available": True, "reason": "", "info": {}}
        try:
            impl = load_backend(name).impl
            record["info"] = dict(impl.info())
            record["tables"] = list(getattr(impl, "table_precisions", ("fp32",)))
            record["tables_note"] = getattr(impl, "tables_note", "")
        except QcnnError as err:
            record.update(available=False, reason=str(err))
        except Exception as err:  # a plugin's info() must not break the listing
            record.update(available=False, reason=f"info() failed: {type(err).__name__}: {err}")
        out.append(record)
    for problem in problems():  # broken plugins are listed too, never fatal
        out.append({"name": problem.plugin, "version": "", "plugin": problem.plugin, "summary": "",
                    "available": False, "reason": problem.message, "info": {}})
    return out


def run(args: argparse.Namespace) -> int:
    records = describe_backends()
    if args.json:
        emit_json({"backends": records})
        return 0
    rows = []
    for r in records:
        info = r["info"]
        blas = " ".join(str(info[k]) for k in ("blas", "blas_version") if info.get(k)) or "-"
        rows.append([r["name"], "yes" if r["available"] else "no", r["version"] or "-", blas,
                     info.get("simd", "-"), info.get("threads", "-"), ",".join(r.get("tables", [])) or "-",
                     r["reason"] or r["summary"]])
    print_table(rows, ["backend", "available", "version", "BLAS", "SIMD", "threads", "tables", "notes"])
    for r in records:
        if r.get("tables_note"):
            print(f"{r['name']} tables: {r['tables_note']}")
    return 0
