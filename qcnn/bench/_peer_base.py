"""What every peer engine shares: :class:`Peer` (the loaded engine), :class:`PeerContext`
(what a peer is built from: the float network, threads, batch size, calibration inputs,
the cache), the model cache and the measured choice of graph variant.

The cache holds the exported and converted peer models under the user cache directory
(``platformdirs.user_cache_dir("qcnn")``, else ``~/.cache/qcnn``; ``cache_dir=`` overrides
it), in ``peers/<model key>/``: the key is a hash of the float network (spec and every
weight array) and of the export's version, and a QDQ model's file name adds a hash of its
calibration inputs. A second run finds the files and starts at once.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..io import atomic_write
from ..model import Model

__all__ = ["Peer", "PeerContext", "check_layers", "pick_fastest", "default_cache_dir", "model_key", "array_key"]

#: Bump when the exporter or the quantization recipe changes what a cached file holds.
EXPORT_TAG = "qcnn-peers/1"


@dataclass
class Peer:
    """One peer engine with the network loaded: ``peer(x [N, C, H, W]) -> y [N, *out_shape]``.

    ``probe(x)``: ``{layer name: output}`` for the layers of :func:`check_layers`.
    ``precision``: ``fp32``, ``bf16`` or ``int8`` (what the engine computes in); only fp32
    peers are held to the 1e-4 agreement, the others report their difference and top-1
    agreement. ``details`` go to the JSON's ``info`` (graph variant, threads, set-up times,
    model bytes, ...).
    """

    name: str
    version: str
    run: Callable[[np.ndarray], np.ndarray]
    probe: Callable[[np.ndarray], dict[str, np.ndarray]]
    details: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    model_bytes: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    @property
    def exact(self) -> bool:
        """True for fp32 peers (held to the agreement tolerance)."""
        return self.precision == "fp32"

    def info(self) -> dict[str, Any]:
        return {"version": self.version, "precision": self.precision, "model_bytes": self.model_bytes,
                **self.details}


def check_layers(model: Model) -> tuple[str, ...]:
    """Layers whose outputs the agreement checks compare: the last conv/fc layer (the logits,
    which a saturated softmax would hide) and the final layer."""
    layers = model.spec.layers
    weighted = [layer.name for layer in layers if layer.has_weights]
    return tuple(dict.fromkeys([*weighted[-1:], layers[-1].name]))


def default_cache_dir() -> Path:
    """The user cache directory of qcnn (platformdirs when installed, else ``~/.cache/qcnn``)."""
    try:
        platformdirs = importlib.import_module("platformdirs")  # a soft dependency (the peers extra)
    except ImportError:
        return Path.home() / ".cache" / "qcnn"
    return Path(platformdirs.user_cache_dir("qcnn", appauthor=False))


def model_key(model: Model) -> str:
    """Hex digest of a float network: the spec, every weight array (name, dtype, shape, bytes), the export tag."""
    h = hashlib.sha256(EXPORT_TAG.encode())
    h.update(repr(model.spec).encode())
    for name in sorted(model.params):
        for key in sorted(model.params[name]):
            arr = np.ascontiguousarray(model.params[name][key])
            h.update(f"{name}.{key}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def array_key(x: np.ndarray) -> str:
    """Hex digest of an array (dtype, shape, bytes): the calibration inputs of a QDQ model."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(f"{x.dtype.str}:{x.shape}".encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()


@dataclass
class PeerContext:
    """What the peers of one run are built from.

    model: the float network. sample: one input batch [batch_size, C, H, W] (for the timed
    choice of graph variant). calib: calibration inputs [N, C, H, W] of the int8 peers.
    cache_dir: the cache root (None: :func:`default_cache_dir`).
    """

    model: Model
    threads: int = 1
    batch_size: int = 1
    sample: np.ndarray | None = None
    calib: np.ndarray | None = None
    cache_dir: str | os.PathLike[str] | None = None
    _key: str | None = None
    #: files written by this context (the tests count re-exports with it)
    written: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sample is None:
            rng = np.random.default_rng(0)
            self.sample = rng.uniform(-128, 128, (self.batch_size, *self.model.spec.input)).astype(np.float32)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = model_key(self.model)
        return self._key

    @property
    def directory(self) -> Path:
        """This model's cache folder, created on first use."""
        root = Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()
        path = root / "peers" / self.key[:20]
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise QcnnError(f"cannot create the peer model cache: {err.strerror}", path) from None
        return path

    @property
    def has_lrn(self) -> bool:
        return any(layer.type == "lrn" for layer in self.model.spec.layers)

    def cached(self, name: str, build: Callable[[Path], None]) -> tuple[Path, float, bool]:
        """The cache file ``name``: built by ``build(tmp_path)`` when missing (then moved in place
        atomically). Returns (path, seconds spent building, True if it was cached)."""
        path = self.directory / name
        if path.is_file():
            return path, 0.0, True
        t0 = time.perf_counter()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            build(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.written.append(str(path))
        return path, time.perf_counter() - t0, False

    def write_bytes(self, name: str, make: Callable[[], bytes]) -> tuple[Path, float, bool]:
        """Like :meth:`cached` for a file whose content ``make()`` returns."""
        return self.cached(name, lambda tmp: atomic_write(tmp, lambda f: f.write(make())))


def pick_fastest(runs: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, budget_s: float = 0.5,
                 passes: int = 15) -> tuple[str, dict[str, float]]:
    """The measured rule for a graph variant: time each candidate on batch x (2 untimed
    passes, then up to ``passes`` timed ones or ``budget_s`` seconds, at least 3) and keep
    the one with the lowest median. Returns (chosen name, {name: median ms per batch})."""
    times: dict[str, float] = {}
    for name, run in runs.items():
        run(x)
        run(x)
        samples: list[float] = []
        start = time.perf_counter()
        while len(samples) < passes and (len(samples) < 3 or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            run(x)
            samples.append(time.perf_counter() - t0)
        times[name] = float(np.median(samples) * 1e3)
    return min(times, key=times.__getitem__), times
