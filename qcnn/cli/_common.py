"""Helpers shared by the subcommands: model arguments, tables, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write, preprocess, read_npy
from ..model import TABLE_PRECISIONS, Model

__all__ = ["print_table", "emit_json", "human", "load_input", "add_backend_args", "add_tables_arg"]


def add_tables_arg(parser: Any) -> None:
    parser.add_argument("--tables", choices=TABLE_PRECISIONS, default="fp32",
                        help="look-up table precision of the quantized layers: fp32 (exact, default) or the integer "
                             "tables int16 / int8 (see docs/quantize.md for their accuracy)")


def add_backend_args(parser: Any) -> None:
    parser.add_argument("--backend", default="reference", metavar="B", help="backend to run on (default: reference; see `qcnn backends`)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="threads for BLAS and the backend's kernels")


def load_input(path: str, model: Model) -> tuple[np.ndarray, bool]:
    """An image file (preprocessed with the model's pipeline) or a ``.npy`` blob.

    Returns (x, batched): x is [N, C, H, W] or [C, H, W] as given; batched tells which.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        x = read_npy(p)
        return x, x.ndim == len(model.spec.input) + 1
    return preprocess(p, model), False


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.4g}{suffix}{unit}"
    return f"{n:.4g}{unit}"


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], file: Any = None) -> None:
    """A plain aligned text table; numbers right-aligned."""
    out = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        print(line.rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _is_num(text: str) -> bool:
    t = text.rstrip("xMkGB%").replace(",", "").replace("->", "")
    try:
        float(t)
        return True
    except ValueError:
        return text in ("", "-")


def emit_json(data: Any, target: str | None = None) -> None:
    """JSON to stdout (target None or '-') or atomically to a file."""
    text = json.dumps(data, indent=2, default=_jsonable) + "\n"
    if target in (None, "-"):
        sys.stdout.write(text)
        return

    atomic_write(target, lambda f: f.write(text.encode()))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
