"""The paper's speed test, across backends and peer engines: :func:`run_bench`.

Protocol (the authors' README): forward time per image at batch size 1, averaged over
100 batches, the whole experiment repeated 5 times; each run, the mean, and the speed-up
of Q-CNN (quantized) over CNN (float) are reported. Here:

* Every (engine, mode) *series* is timed in the same process. The runs are interleaved:
  run r times every series once, in an order rotated by r, so that slow drifts of the
  machine spread over all series alike.
* One timed pass is ``session.forward(x)`` on one batch, timed with
  ``time.perf_counter`` (wall clock); the batch is cut out before the timer starts.
  ``samples[r, b]`` is the time of batch b in run r, in seconds; a run's figure is the
  mean over its batches divided by the batch size (ms per image).
* Before timing, each series runs ``warmup`` untimed passes (JIT compilation, caches).
* Threads are set in code (:func:`qcnn.set_threads`: BLAS through threadpoolctl and every
  backend's own pool; peers get the same count).
* ``per_layer``: the timed passes run layer by layer with a timer around each kernel (the
  pass time is then the sum of the layer times); each quantized (staged) kernel is then
  run a second time as its two stages, ``table`` and ``lookup``, each timed. That second
  run is not part of the pass time, so a backend that fuses the stages in its kernel
  call is timed fused, and its table/look-up split shows the unfused stages.
* Inputs: seeded random images, a directory of images (preprocessed with the model's
  pipeline), or the authors' dataset (``dataMatTst.single.bin`` [N, 3, H, W] +
  ``lablVecTst.uint16.bin``). Batch b uses images b*B .. b*B+B-1; past the last image
  the last one is reused, as in the original. With labels, top-1..top-5 accuracy is
  accumulated over the first run's passes.
* Outputs are checked once on the first batch: every backend against the reference
  backend (same mode), every peer against the first backend's float output; the record
  holds max|diff| / max|ref| and whether it is within 1e-4. Reduced-precision peers
  (bf16, int8) are not held to 1e-4: their record has ``ok: null`` and the difference.
  Every peer's ``top1_agreement`` is the fraction of the first min(32, batches x batch
  size) benchmark images on which its top-1 class equals qcnn's float one.
* Peers are set up before timing (export, quantization, compilation, the timed choice of
  graph variant: :mod:`qcnn.bench._peers`); that cost is in each peer's ``info.setup``,
  apart from the forward times. Every series records its model's bytes (``.qcnn`` file of
  the float twin or the quantized model, ONNX fp32, QDQ int8).

The float network of a quantized model is its *float twin*: the same layers with the
dense weights decoded from codebooks and codes (:func:`float_twin`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from .._errors import QcnnError
from .._runtime import compile as qcompile
from ..io import dataset_inputs, image_inputs, load_model, random_inputs, save
from ..model import TABLE_PRECISIONS, Model, float_twin, is_quantized, layer_costs, totals
from ..plugin import StagedKernel, backend_specs, load_backend, preferred_backends, problems, set_threads
from ._machine import machine_record
from ._peers import PEERS, PeerContext, check_layers, install_command, make_peer, missing_packages, parse_peers
from ._result import SCHEMA, BenchResult, Series

__all__ = [
    "CLOCKS", "SCHEMA", "MODES", "TOLERANCE", "default_backend", "Series", "BenchResult", "run_bench",
]

MODES = ("float", "quantized")
#: The reduced table precision ``qcnn bench`` times beside exact tables by default: the faster of
#: the two here (cffi, AlexNet, 1 thread: int8 12.0 ms, int16 18.8 ms; docs/kernels.md).
FASTEST_TABLES = "int8"
#: Agreement tolerance: max|y - y_ref| / max|y_ref|.
TOLERANCE = 1e-4
#: Images on which each peer's top-1 agreement with qcnn's float output is counted.
TOP1_IMAGES = 32


# --------------------------------------------------------------------------- backends
def default_backend() -> str:
    """The most preferred backend that loads here (``BackendSpec.preference``)."""
    for name in preferred_backends():
        try:
            load_backend(name)
            return name
        except QcnnError:
            continue
    return "reference"


def _resolve_backends(backends: str | Sequence[str] | None) -> tuple[list[str], list[dict[str, str]]]:
    """Backend names to run, and the ones skipped (``all`` only) with the reason."""
    if backends is None:
        return [default_backend()], []
    names = [b.strip() for b in backends.split(",")] if isinstance(backends, str) else [str(b) for b in backends]
    names = [n for n in names if n]
    if not names:
        raise QcnnError("no backend given")
    if "all" in names:
        if len(names) > 1:
            raise QcnnError("backend 'all' cannot be combined with other names")
        run, skipped = [], []
        for name in backend_specs():
            try:
                load_backend(name)
                run.append(name)
            except QcnnError as err:
                skipped.append({"backend": name, "reason": str(err)})
        for problem in problems():  # plugins that could not even register (e.g. a missing import)
            skipped.append({"backend": str(getattr(problem, "plugin", "")),
                            "reason": str(getattr(problem, "message", problem))})
        return run, skipped
    for name in names:
        load_backend(name)  # QcnnError: unknown or unavailable
    return list(dict.fromkeys(names)), []


# --------------------------------------------------------------------------- timing
#: ``clock=``: wall time (``time.perf_counter``) or the calling thread's CPU time
#: (``time.thread_time``: blind to time spent waiting and to other processes, so steadier on a
#: busy machine at 1 thread, but it misses the work of other threads).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


class _Runner:
    """One series being timed: a forward function plus its sample arrays."""

    def __init__(self, series: Series, forward: Callable[[np.ndarray], np.ndarray],
                 layers: list[Any] | None, session: Any = None, peer: Any = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.series = series
        self.clock = clock
        self.forward = forward
        self.layers = layers  # PreparedLayers when timing per layer
        self.session = session  # backends
        self.peer = peer  # peers

    def step(self, x: np.ndarray, r: int, b: int) -> np.ndarray:
        """One timed pass on batch x, recorded as samples[r, b] (and layer_samples[r, b])."""
        if self.layers is None:
            t0 = self.clock()
            y = self.forward(x)
            self.series.samples[r, b] = self.clock() - t0
            return y
        acc = self.series.layer_samples[r, b]  # type: ignore[index]
        y = self._layer_pass(x, acc)
        self.series.samples[r, b] = acc[:, 0].sum()
        return y

    def warm(self, x: np.ndarray) -> None:
        """One untimed pass through exactly the code the timed passes run."""
        if self.layers is None:
            self.forward(x)
        else:
            self._layer_pass(x, np.zeros((len(self.layers), 3)))

    def _layer_pass(self, x: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Run layer by layer: acc[i, 0] = time of kernel i as the session runs it (a backend may
        fuse the stages of a StagedKernel in its call); for staged kernels, acc[i, 1] and
        acc[i, 2] time ``table`` and ``lookup`` in a second, separate call of the two stages."""
        clock = self.clock
        for i, p in enumerate(self.layers):  # type: ignore[arg-type]
            k = p.kernel
            ta = clock()
            y = k(x)
            acc[i, 0] = clock() - ta
            if isinstance(k, StagedKernel):
                tb = clock()
                table = k.table(x)
                tc = clock()
                k.lookup(table)
                acc[i, 1], acc[i, 2] = tc - tb, clock() - tc
            x = y
        return x


def _rel_diff(y: np.ndarray, ref: np.ndarray) -> float:
    """max|y - ref| / max|ref| (max|y - ref| when ref is all zeros)."""
    y = np.asarray(y, np.float64).reshape(ref.shape)
    ref = np.asarray(ref, np.float64)
    scale = float(np.abs(ref).max())
    diff = float(np.abs(y - ref).max())
    return diff / scale if scale > 0 else diff


def _agreement(outs: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray], against: str,
               exact: bool = True) -> dict[str, Any]:
    """Compare the checked layers' outputs: ``{"against", "layers": {name: rel diff}, "max_rel_diff", "ok"}``.

    ``exact=False`` (a bf16 or int8 peer): ``tolerance`` and ``ok`` are None (reported, not judged)."""
    diffs: dict[str, float | None] = {}
    problems = []
    for name, ref in refs.items():
        y = outs.get(name)
        if y is None or np.size(y) != np.size(ref):
            diffs[name] = None
            problems.append(f"{name}: output {None if y is None else list(np.shape(y))} vs {list(np.shape(ref))}")
        else:
            diffs[name] = _rel_diff(y, ref)
    worst = max((d for d in diffs.values() if d is not None), default=None)
    ok: bool | None = bool(not problems and worst is not None and worst <= TOLERANCE)
    if not exact and not problems:
        ok = None
    out: dict[str, Any] = {"against": against, "layers": diffs, "max_rel_diff": worst,
                           "tolerance": TOLERANCE if exact else None, "ok": ok}
    if problems:
        out["problem"] = "; ".join(problems)
    return out


def _parse_tables(tables: str | Sequence[str] | None) -> tuple[str, ...]:
    """The asked table precisions, checked; () for the default."""
    if tables is None:
        return ()
    asked = [t.strip() for t in (tables.split(",") if isinstance(tables, str) else tables)]
    bad = [t for t in asked if t not in TABLE_PRECISIONS]
    if bad or not asked:
        raise QcnnError(f"tables must be a comma-separated list of {', '.join(TABLE_PRECISIONS)}, got {tables!r}")
    return tuple(dict.fromkeys(asked))


def _native_tables(backend: str, precision: str) -> bool:
    """Whether ``backend`` implements table ``precision`` itself."""
    return precision in getattr(load_backend(backend).impl, "table_precisions", ("fp32",))


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise QcnnError(f"{name} must be {what}, got {value!r}")
    return int(value)


def run_bench(model: Model | str | os.PathLike[str] | None = None,
              backends: str | Sequence[str] | None = None,
              mode: str = "both", batches: int = 100, repeat: int = 5, batch_size: int = 1, threads: int = 1,
              warmup: int = 2, images: str | os.PathLike[str] | None = None,
              dataset: str | os.PathLike[str] | None = None, labels: Mapping[str, int] | None = None,
              per_layer: bool = False, compare: str | Sequence[str] = (), check: bool = True,
              progress: bool = True, seed: int = 0, command: str | None = None, clock: str = "wall",
              options: Mapping[str, Mapping[str, Any]] | None = None, calib: np.ndarray | None = None,
              cache_dir: str | os.PathLike[str] | None = None,
              tables: str | Sequence[str] | None = None) -> BenchResult:
    """Run the speed test (see the module doc) and return the measurements.

    model: a :class:`Model`, a ``.qcnn`` path, an architecture name (synthetic quantized
    weights) or None (synthetic quantized AlexNet). backends: a name, a list, ``"all"``
    (every backend that loads; the others are listed in ``result.skipped``) or None (the
    fastest available). mode: ``float``, ``quantized`` or ``both``. images / dataset:
    input directory (see :func:`image_inputs`, :func:`dataset_inputs`), else random
    images; labels: for ``images``, base name -> class id. compare: peer engines
    (``"onnxruntime,torch"``), timed on the float network. check: compare outputs on the
    first batch (adds untimed passes). progress: a tqdm bar on stderr when it is a TTY.
    clock: ``wall`` or ``cpu`` (see :data:`CLOCKS`). options: per backend name, the
    options its sessions are compiled with (``qcnn.compile(..., options=...)``). calib:
    calibration inputs [N, C, H, W] of the int8 peers (default: the benchmark's inputs).
    cache_dir: where the peers' converted models are cached (default: the user cache dir).
    tables: the table precisions of the quantized mode (``"fp32,int8"`` or a list); each is one
    series per backend, its precision in ``Series.precision``. None: exact tables on every
    backend, plus :data:`FASTEST_TABLES` on the backends that implement it natively (not the
    reference). A backend without a precision it was asked for is left out with a note (the
    reference would run its layers).
    """
    batches = _check_count("batches", batches, 1)
    repeat = _check_count("repeat", repeat, 1)
    batch_size = _check_count("batch size", batch_size, 1)
    threads = _check_count("threads", threads, 1)
    warmup = _check_count("warmup", warmup, 0)
    if clock not in CLOCKS:
        raise QcnnError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if mode not in (*MODES, "both"):
        raise QcnnError(f"mode must be float, quantized or both, got {mode!r}")
    if images is not None and dataset is not None:
        raise QcnnError("give either images or a dataset, not both")
    peers = parse_peers(compare) if compare else ()
    precisions = _parse_tables(tables)
    notes: list[str] = []
    asked = compare.split(",") if isinstance(compare, str) else list(compare)
    if any(n.strip().lower() == "all" for n in asked):
        for name in PEERS:
            if name not in peers:
                missing = ", ".join(missing_packages(name))
                notes.append(f"peer {name} not installed ({missing}): {install_command(name)}")

    qmodel = load_model(model)
    modes = list(MODES) if mode == "both" else [mode]
    if not is_quantized(qmodel):
        if mode == "quantized":
            raise QcnnError(f"{qmodel.spec.name} has no quantized layers, so there is no quantized mode to time",
                            qmodel.source)
        if "quantized" in modes:
            notes.append(f"{qmodel.spec.name} has no quantized layers: float mode only")
            modes = ["float"]
    names, skipped = _resolve_backends(backends)
    if not names:
        raise QcnnError("no backend is available")
    set_threads(threads)

    needed = batches * batch_size
    if dataset is not None:
        inputs = dataset_inputs(dataset, qmodel, needed)
    elif images is not None:
        inputs = image_inputs(images, qmodel, needed, labels)
    else:
        inputs = random_inputs(tuple(qmodel.spec.input), needed, seed)
    if len(inputs.images) < needed and not inputs.cycle:
        notes.append(f"{len(inputs.images)} input image(s) for {needed} per run: the last one is reused")

    fmodel = float_twin(qmodel) if ("float" in modes or peers) else None
    models = {"float": fmodel, "quantized": qmodel}

    runners: list[_Runner] = []
    sizes: dict[str, int] = {}
    for name in names:
        for m, prec in [(m, p) for m in modes for p in (precisions or ("fp32", FASTEST_TABLES))
                        if m == "quantized" or p == "fp32"]:
            # a reduced precision: only where native, and by default not on the reference itself
            if prec != "fp32" and (not _native_tables(name, prec) or (not precisions and name == "reference")):
                if precisions:
                    notes.append(f"backend {name} has no {prec} tables: not timed (the reference would run them)")
                continue
            session = qcompile(models[m], name, options=(options or {}).get(name), tables=prec)  # type: ignore[arg-type]
            lay = session.layers
            s = Series(name, "backend", m, batch_size, np.zeros((repeat, batches)), precision=prec,
                       layer_names=[p.layer.name for p in lay], layer_ops=[p.layer.op for p in lay],
                       layer_providers=[p.provider for p in lay], staged=[p.staged for p in lay],
                       fallbacks=session.fallbacks)
            if per_layer:
                s.layer_samples = np.zeros((repeat, batches, len(lay), 3))
            s.model_bytes = sizes.setdefault(m, _qcnn_bytes(models[m]))  # type: ignore[arg-type]
            runners.append(_Runner(s, session.forward, lay if per_layer else None, session=session,
                                   clock=CLOCKS[clock]))
    if peers:
        ctx = PeerContext(fmodel, threads=threads, batch_size=batch_size, sample=inputs.batch(0, batch_size),  # type: ignore[arg-type]
                          calib=calib if calib is not None else inputs.images[:needed], cache_dir=cache_dir)
    for peer_name in peers:
        peer = make_peer(peer_name, ctx)  # the float twin, decoded and hashed once
        s = Series(peer_name, "peer", "float", batch_size, np.zeros((repeat, batches)), info=peer.info(),
                   model_bytes=peer.model_bytes, precision=peer.precision)
        runners.append(_Runner(s, peer.run, None, peer=peer, clock=CLOCKS[clock]))

    if check:
        k = min(batches, max(1, -(-TOP1_IMAGES // batch_size)))
        _check_outputs(runners, models, [inputs.batch(b, batch_size) for b in range(k)], modes, threads)

    total = repeat * len(runners) * batches + warmup * len(runners)
    bar = _progress(total, progress)
    try:
        for run in runners:  # untimed warm-up passes: JIT compilation, first-touch allocations
            x = inputs.batch(0, batch_size)
            for _ in range(warmup):
                run.warm(x)
                bar.update(1)
        for r in range(repeat):
            k = r % len(runners)
            for run in runners[k:] + runners[:k]:
                bar.set_description(f"run {r + 1}/{repeat} {run.series.engine} {run.series.mode}", refresh=False)
                for b in range(batches):
                    x = inputs.batch(b, batch_size)
                    y = run.step(x, r, b)
                    if r == 0 and inputs.labels is not None:
                        _count_hits(run.series, y, inputs.batch_labels(b, batch_size))
                    bar.update(1)
    finally:
        bar.close()

    machine = machine_record()
    for run in runners:
        if run.series.kind == "backend":
            run.series.info = machine["backends"].get(run.series.engine, {})
    tot = totals(layer_costs(qmodel))
    theory = {k: tot[k] for k in ("float_macs", "quant_macs", "table_macs", "lookup_macs", "float_bytes",
                                  "quant_bytes", "speedup", "compression")}
    return BenchResult(
        model={"name": qmodel.spec.name, "source": qmodel.source, "input": list(qmodel.spec.input),
               "quantized_layers": [layer.name for layer in qmodel.spec.layers if layer.quant is not None]},
        protocol={"modes": modes, "backends": names, "peers": list(peers),
                  "calibration": None if not peers else "given" if calib is not None else "the benchmark inputs",
                  "tables": list(precisions or ("fp32", FASTEST_TABLES)),
                  "batches": batches, "repeat": repeat,
                  "batch_size": batch_size, "threads": threads, "warmup": warmup, "per_layer": per_layer,
                  "clock": clock, "interleaved": True, "checked": check, "timer": CLOCKS[clock].__name__,
                  "unit": "ms per image"},
        inputs=inputs.describe(), theory=theory, machine=machine, series=[r.series for r in runners],
        skipped=skipped, notes=notes, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command)


def _count_hits(series: Series, y: np.ndarray, labels: np.ndarray | None) -> None:
    if labels is None:
        return
    y = np.asarray(y).reshape(len(labels), -1)
    known = labels >= 0
    if not known.any():
        return
    if series.hits is None:
        series.hits = np.zeros(5, np.int64)
    k = min(5, y.shape[1])
    top = np.argsort(-y[known], axis=1, kind="stable")[:, :k]
    found = top == labels[known][:, None]
    for j in range(5):
        series.hits[j] += int(found[:, :min(j + 1, k)].any(axis=1).sum())
    series.labeled += int(known.sum())


def _qcnn_bytes(model: Model) -> int:
    """Bytes of ``model`` as a ``.qcnn`` file (written to a temporary file and measured)."""
    with tempfile.TemporaryDirectory(prefix="qcnn-bench-") as tmp:
        path = os.path.join(tmp, "model.qcnn")
        save(model, path)
        return os.path.getsize(path)


def _top1(y: np.ndarray) -> np.ndarray:
    """[N, ...] -> [N] index of the largest output."""
    y = np.asarray(y)
    return y.reshape(len(y), -1).argmax(axis=1)


def _check_outputs(runners: list[_Runner], models: dict[str, Model | None], xs: list[np.ndarray],
                   modes: list[str], threads: int) -> None:
    """Record each series' agreement on batch xs[0] (the layers of :func:`qcnn.peers.check_layers`):
    backends against the reference backend in the same mode, peers against the first
    backend's float outputs; and each peer's top-1 agreement with it over all batches xs."""
    x = xs[0]

    def probe(session: Any, model: Model) -> dict[str, np.ndarray]:
        return session.run(x, outputs=list(check_layers(model)))

    refs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for run in runners:
        s = run.series
        key = (s.mode, s.precision)
        if s.kind == "backend" and s.engine != "reference" and key not in refs:
            ref = qcompile(models[s.mode], "reference", tables=s.precision)  # type: ignore[arg-type]
            refs[key] = probe(ref, models[s.mode]) if s.precision == "fp32" else ref.run(x)  # type: ignore[arg-type]

    def probe_layers(session: Any, model: Model, ref: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Integer tables turn a last-bit difference of an input into a whole table step, so
        each checked layer is fed the reference's input of it (exact sums: equal up to the
        rescale), as the conformance suite does."""
        names = model.spec.names
        out = {}
        for name in check_layers(model):
            i = names.index(name)
            out[name] = session.run(ref[names[i - 1]] if i else x, start=name, stop=name)[name]
        return out
    float_out: tuple[str, dict[str, np.ndarray]] | None = None
    float_session: Any = None
    for run in runners:
        s = run.series
        if s.kind != "backend":
            continue
        key = (s.mode, s.precision)
        if s.precision == "fp32":
            outs = probe(run.session, models[s.mode])  # type: ignore[arg-type]
        else:
            outs = probe_layers(run.session, models[s.mode], refs[key]) if key in refs else {}  # type: ignore[arg-type]
        if key in refs:
            tag = s.mode if s.precision == "fp32" else f"{s.mode} {s.precision} tables, each layer fed its input"
            want = {name: refs[key][name] for name in check_layers(models[s.mode])}  # type: ignore[arg-type]
            s.agreement = _agreement(outs, want, f"reference {tag}")
        if s.mode == "float" and float_out is None and s.precision == "fp32":
            float_out, float_session = (s.engine, outs), run.session
    peers = [r for r in runners if r.series.kind == "peer"]
    if peers and float_out is None:
        first = next(r.series.engine for r in runners if r.series.kind == "backend")
        fmodel = models["float"]
        float_session = qcompile(fmodel, first)  # type: ignore[arg-type]
        float_out = (first, probe(float_session, fmodel))  # type: ignore[arg-type]
    if not peers:
        return
    assert float_out is not None
    ref_top1 = np.concatenate([_top1(float_session.forward(b)) for b in xs])
    for run in peers:
        peer = run.peer
        a = _agreement(peer.probe(x), float_out[1], f"qcnn {float_out[0]} float", exact=peer.exact)
        top1 = np.concatenate([_top1(peer.run(b)) for b in xs])
        a["precision"] = peer.precision
        a["top1_agreement"] = float((top1 == ref_top1).mean())
        a["top1_images"] = int(len(ref_top1))
        run.series.agreement = a


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    return tqdm(total=total, file=sys.stderr, unit="pass", leave=False, dynamic_ncols=True)
