"""What ``qcnn bench`` measured: one :class:`Series` per (engine, mode), gathered in a
:class:`BenchResult` that serialises to the documented JSON schema (``docs/bench.md``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__

__all__ = ["SCHEMA", "Series", "BenchResult"]

SCHEMA = "qcnn-bench/1"


@dataclass
class Series:
    """The timings of one engine (a backend or a peer) in one mode.

    ``samples`` [repeat, batches] seconds per batch forward pass; ``layer_samples``
    [repeat, batches, L, 3] seconds per (layer, total/table/lookup) with ``per_layer``.
    """

    engine: str
    kind: str  # "backend" | "peer"
    mode: str  # "float" | "quantized"
    batch_size: int
    samples: np.ndarray
    layer_names: list[str] = field(default_factory=list)
    layer_ops: list[str] = field(default_factory=list)
    layer_providers: list[str] = field(default_factory=list)
    layer_samples: np.ndarray | None = None
    staged: list[bool] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    hits: np.ndarray | None = None  # [5] cumulative top-k hits over labeled images of run 0
    labeled: int = 0
    agreement: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    model_bytes: int | None = None  # the engine's model file: .qcnn, ONNX fp32, QDQ int8, weights
    #: what the engine computes in: fp32, bf16, int8 for a peer; for qcnn the table precision of
    #: the quantized mode (fp32, int16, int8), fp32 in float mode
    precision: str = "fp32"

    @property
    def net(self) -> str:
        """The network's label: CNN, Q-CNN, or Q-CNN with its reduced table precision."""
        if self.mode == "float":
            return "CNN"
        return "Q-CNN" if self.precision == "fp32" else f"Q-CNN {self.precision}"

    @property
    def runs_ms(self) -> np.ndarray:
        """[repeat] ms per image of every run: mean over the run's batches / batch size."""
        return self.samples.mean(axis=1) * 1e3 / self.batch_size

    @property
    def mean_ms(self) -> float:
        return float(self.runs_ms.mean())

    @property
    def median_ms(self) -> float:
        return float(np.median(self.runs_ms))

    @property
    def passes(self) -> int:
        """Timed forward passes."""
        return int(self.samples.size)

    def accuracy(self) -> dict[str, Any] | None:
        if self.hits is None or self.labeled == 0:
            return None
        return {"images": self.labeled, **{f"top{k + 1}": float(self.hits[k] / self.labeled) for k in range(5)}}

    def layers(self) -> list[dict[str, Any]] | None:
        """Per-layer ms per image: the mean, median and min over all passes and the mean per
        run (``*_ms``, ``median_*``, ``min_*``); table/lookup for staged kernels."""
        if self.layer_samples is None:
            return None
        ms = self.layer_samples * 1e3 / self.batch_size  # [R, B, L, 3]
        per_run = ms.mean(axis=1)  # [R, L, 3]
        flat = ms.reshape(-1, *ms.shape[2:])  # [R B, L, 3]
        out = []
        for i, name in enumerate(self.layer_names):
            row: dict[str, Any] = {"name": name, "op": self.layer_ops[i], "provider": self.layer_providers[i],
                                   "mean_ms": float(per_run[:, i, 0].mean()),
                                   "median_ms": float(np.median(flat[:, i, 0])), "min_ms": float(flat[:, i, 0].min()),
                                   "runs_ms": [float(v) for v in per_run[:, i, 0]]}
            if self.staged[i]:
                for j, stage in ((1, "table"), (2, "lookup")):
                    row[f"{stage}_ms"] = float(per_run[:, i, j].mean())
                    row[f"median_{stage}_ms"] = float(np.median(flat[:, i, j]))
                    row[f"min_{stage}_ms"] = float(flat[:, i, j].min())
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        runs = self.runs_ms
        return {
            "engine": self.engine, "kind": self.kind, "mode": self.mode,
            "runs_ms": [float(v) for v in runs], "mean_ms": self.mean_ms, "median_ms": self.median_ms,
            "min_ms": float(runs.min()), "max_ms": float(runs.max()),
            "samples_ms": (self.samples * 1e3 / self.batch_size).round(6).tolist(),
            "passes": self.passes, "fallbacks": list(self.fallbacks), "accuracy": self.accuracy(),
            "agreement": self.agreement, "layers": self.layers(), "info": self.info,
            "model_bytes": self.model_bytes, "precision": self.precision,
        }


@dataclass
class BenchResult:
    """Everything one :func:`run_bench` measured, with the machine it ran on. See ``docs/bench.md``."""

    model: dict[str, Any]
    protocol: dict[str, Any]
    inputs: dict[str, Any]
    theory: dict[str, Any]
    machine: dict[str, Any]
    series: list[Series]
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str = ""
    command: str | None = None

    def get(self, engine: str, mode: str = "float", precision: str = "fp32") -> Series | None:
        for s in self.series:
            if s.engine == engine and s.mode == mode and (s.kind == "peer" or s.precision == precision):
                return s
        return None

    @property
    def engines(self) -> list[str]:
        return list(dict.fromkeys(s.engine for s in self.series))

    def speedups(self) -> list[dict[str, Any]]:
        """Per backend timed in both modes: float / quantized time (of the run means, and of the medians)."""
        out = []
        for engine in self.engines:
            f, q = self.get(engine, "float"), self.get(engine, "quantized")
            if f is not None and q is not None:
                out.append({"engine": engine, "mean": f.mean_ms / q.mean_ms, "median": f.median_ms / q.median_ms})
        return out

    def to_dict(self) -> dict[str, Any]:

        return {
            "schema": SCHEMA, "qcnn_version": __version__, "created": self.created, "command": self.command,
            "model": self.model, "protocol": self.protocol, "inputs": self.inputs, "theory": self.theory,
            "machine": self.machine, "skipped": self.skipped, "notes": self.notes,
            "series": [s.to_dict() for s in self.series], "speedups": self.speedups(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"
