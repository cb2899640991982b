"""The machine record stored with every benchmark result.

``machine_record()`` returns a JSON-ready dict: CPU model and SIMD features (from
``/proc/cpuinfo`` on Linux), core counts, the BLAS libraries threadpoolctl sees (with
version and thread count), the thread settings in force, the versions of python and of
the packages that decide speed, and the ``info()`` dict of every loaded backend.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_info

from ..plugin._registry import loaded_backends
from ..plugin._threads import get_threads

__all__ = ["machine_record", "cpu_info", "SIMD_FLAGS", "package_versions", "thread_settings", "short_summary"]

#: /proc/cpuinfo flags worth recording, from oldest to newest.
SIMD_FLAGS = (
    "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "neon", "asimd", "sve", "sve2",  # arm64
)

#: Packages whose version is recorded (missing ones are recorded as None).
PACKAGES = ("qcnn", "numpy", "numba", "llvmlite", "cffi", "threadpoolctl", "onnx", "onnxruntime", "openvino", "torch",
            "platformdirs", "matplotlib")

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def cpu_info(path: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model, SIMD flags and core counts.

    Returns ``{"model": str, "simd": [flags present, in SIMD_FLAGS order], "logical_cpus": int,
    "usable_cpus": int, "arch": str}``; ``model`` falls back to ``platform.processor()``
    where ``/proc/cpuinfo`` is absent.
    """
    model, flags = "", set()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "model": model or platform.processor() or "unknown",
        "arch": platform.machine(),
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "logical_cpus": os.cpu_count() or 1,
        "usable_cpus": usable,
    }


def package_versions() -> dict[str, str | None]:
    """Installed version of every package in :data:`PACKAGES`, None when not installed."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _blas() -> list[dict[str, Any]]:

    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture", "filepath")
    return [{k: info.get(k) for k in keep if k in info} for info in threadpool_info()]


def thread_settings() -> dict[str, Any]:
    """The thread counts in force: qcnn's setting, numba's (if imported), relevant env vars."""

    out: dict[str, Any] = {"qcnn": get_threads()}
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            out["numba"] = int(numba.get_num_threads())
        except Exception:  # numba without a threading layer
            out["numba"] = None
    out["env"] = {k: os.environ[k] for k in _THREAD_ENV if k in os.environ}
    return out


def _backends() -> dict[str, Any]:

    out: dict[str, Any] = {}
    for b in loaded_backends():
        try:
            info = dict(b.impl.info())
        except Exception as err:  # a backend's info() must not break a benchmark record
            info = {"error": f"{type(err).__name__}: {err}"}
        out[b.name] = {"version": b.spec.version, "plugin": b.spec.plugin, "info": info}
    return out


def machine_record() -> dict[str, Any]:
    """Everything that decides the speed of this run (see the module doc). JSON-ready."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "packages": package_versions(),
        "blas": _blas(),
        "threads": thread_settings(),
        "backends": _backends(),
        "clock": "time.perf_counter (wall clock)",
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def short_summary(record: dict[str, Any]) -> str:
    """One line for humans: CPU, SIMD level, BLAS and its version."""
    cpu = record["cpu"]
    simd = [f for f in cpu["simd"] if f.startswith(("avx", "amx", "sve", "neon", "asimd"))]
    top = simd[-1] if simd else (cpu["simd"][-1] if cpu["simd"] else "no SIMD flags")
    blas = [b for b in record["blas"] if b.get("user_api") == "blas"]
    blas_text = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} thr)" for b in blas) \
        or "no BLAS loaded"
    return f"{cpu['model']}, {cpu['usable_cpus']} cpus, up to {top}; BLAS: {blas_text}"
