"""Charts of a :class:`BenchResult` (matplotlib, the ``plot`` extra): ``qcnn bench --plot FILE.png``.

* :func:`plot_engines`: one bar per series (engine and net), the median ms per image, with
  the min-max of the runs as an error bar; the bar's label gives the precision.
* :func:`plot_layers` (``--per-layer``): per series, a stacked bar of every layer's mean
  time; quantized (staged) layers are split into table building (hatched) and look-up.

Both write a PNG of ``WIDTH`` x ``HEIGHT`` pixels (``DPI`` dots per inch), with the Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ._result import BenchResult

__all__ = ["plot_engines", "plot_layers", "WIDTH", "HEIGHT", "DPI"]

WIDTH, HEIGHT, DPI = 1000, 560, 100


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QcnnError('--plot needs matplotlib: pip install "qcnn[plot]"') from None
    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=DPI, format="png")
    except OSError as err:
        raise QcnnError(f"cannot write the plot: {err.strerror}", path) from None
    finally:
        plt.close(fig)
    return Path(path)


def _name(s: Any) -> str:
    return f"{s.engine} {s.net}" if s.kind == "backend" else f"{s.engine} ({s.precision})"


def plot_engines(result: BenchResult, path: str | os.PathLike[str]) -> Path:
    """Bars: median ms per image of every series, error bars from the min to the max run."""
    plt = _pyplot()
    series = result.series
    med = np.array([s.median_ms for s in series])
    lo = med - np.array([float(s.runs_ms.min()) for s in series])
    hi = np.array([float(s.runs_ms.max()) for s in series]) - med
    fig, ax = plt.subplots(figsize=(WIDTH / DPI, HEIGHT / DPI), layout="constrained")
    colors = ["tab:blue" if s.kind == "backend" and s.mode == "quantized" else
              "tab:gray" if s.kind == "backend" else "tab:orange" for s in series]
    y = np.arange(len(series))
    ax.barh(y, med, xerr=np.vstack([lo, hi]), color=colors, capsize=3)
    ax.set_yticks(y, [_name(s) for s in series])
    ax.invert_yaxis()
    for i, v in enumerate(med):
        ax.text(v, i, f" {v:.2f}", va="center", ha="left", fontsize=8)
    pr = result.protocol
    ax.set_xlabel(f"ms per image (median of {pr['repeat']} runs, bar: min-max), batch {pr['batch_size']}, "
                  f"{pr['threads']} thread(s)")
    ax.set_title(f"{result.model['name']}: forward time per engine")
    return _save(fig, path)


def plot_layers(result: BenchResult, path: str | os.PathLike[str]) -> Path:
    """Stacked per-layer bars (mean ms per image) of the series timed with ``per_layer``; staged
    layers split into table building and look-up."""
    plt = _pyplot()
    series = [s for s in result.series if s.layer_samples is not None]
    if not series:
        raise QcnnError("a per-layer plot needs a result of --per-layer")
    fig, ax = plt.subplots(figsize=(WIDTH / DPI, HEIGHT / DPI), layout="constrained")
    names = series[0].layer_names
    cmap = plt.get_cmap("tab20")
    x = np.arange(len(series))
    bottom = np.zeros(len(series))
    for i, name in enumerate(names):
        rows = [(s.layers() or [])[i] if i < len(s.layer_names) else None for s in series]
        color = cmap(i % 20)
        total = np.array([r["mean_ms"] if r else 0.0 for r in rows])
        table = np.array([r.get("table_ms", 0.0) if r else 0.0 for r in rows])
        lookup = np.array([r.get("lookup_ms", 0.0) if r else 0.0 for r in rows])
        staged = table + lookup > 0
        # staged: the layer's time split in the ratio of its separately timed stages
        share = np.where(staged, table / np.where(staged, table + lookup, 1.0), 0.0)
        t_part = total * share
        ax.bar(x, t_part, bottom=bottom, color=color, hatch="//", edgecolor="white", linewidth=0)
        ax.bar(x, total - t_part, bottom=bottom + t_part, color=color, label=name)
        bottom += total
    ax.set_xticks(x, [_name(s) for s in series], rotation=20, ha="right")
    ax.set_ylabel("ms per image (mean); hatched: table building")
    ax.set_title(f"{result.model['name']}: per-layer time")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)
