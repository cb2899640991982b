"""Peers that run qcnn's ONNX export: ONNX Runtime (fp32 and int8) and OpenVINO (its
default precision, forced f32, and int8).

* The float graph is :func:`qcnn.io.build_onnx` with the check layers as extra outputs,
  in two variants when the network has LRN: the ``LRN`` op (``op``) and its
  elementwise decomposition (``decomposed``). Each engine gets both and keeps the faster,
  timed at set-up (:func:`pick_fastest`); the report records the choice and both times.
* int8: static QDQ made by ``onnxruntime.quantization.quantize_static`` from that graph
  (per-channel int8 weights, uint8 activations, MinMax calibration on the calibration
  inputs, the final softmax left in float); the same QDQ file runs on ONNX Runtime and on
  OpenVINO.
* ONNX Runtime: ``intra_op_num_threads`` = threads, ``inter_op_num_threads`` = 1,
  sequential execution, every graph optimisation.
* OpenVINO: the CPU plugin with ``INFERENCE_NUM_THREADS`` = threads, ``NUM_STREAMS`` = 1,
  ``PERFORMANCE_HINT`` = ``LATENCY``, the input shape fixed to the batch size, compiled
  blobs cached in the cache folder (``CACHE_DIR``). Its default precision is bf16 on
  CPUs with AVX512_BF16; the reported precision is the compiled model's
  ``INFERENCE_PRECISION_HINT``. ``openvino-f32`` sets that hint to f32.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..io import INPUT_NAME, build_onnx
from ._peer_base import Peer, PeerContext, array_key, check_layers, pick_fastest

__all__ = ["onnxruntime_peer", "openvino_peer", "INSTALL", "CALIB_MAX"]

INSTALL = 'pip install "qcnn[peers]"'
#: At most this many calibration images feed the int8 quantization (the first ones).
CALIB_MAX = 100


def _import_ort(peer: str) -> Any:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise QcnnError(f"--compare {peer} needs onnx and onnxruntime: {INSTALL}") from None
    return onnxruntime


def _import_ov(peer: str) -> Any:
    try:
        import openvino
    except ImportError:
        raise QcnnError(f"--compare {peer} needs openvino: {INSTALL}") from None
    return openvino


def _variants(ctx: PeerContext) -> tuple[str, ...]:
    return ("op", "decomposed") if ctx.has_lrn else ("op",)


def float_onnx(ctx: PeerContext, variant: str) -> tuple[Path, float, bool]:
    """The fp32 ONNX file of ``ctx.model`` (check layers as extra outputs), cached."""
    checked = check_layers(ctx.model)
    return ctx.write_bytes(f"float-{variant}.onnx",
                           lambda: build_onnx(ctx.model, extra_outputs=checked, lrn=variant).SerializeToString())


def _calibration(ctx: PeerContext) -> np.ndarray:
    x = ctx.calib if ctx.calib is not None else ctx.sample
    assert x is not None
    x = np.ascontiguousarray(np.asarray(x, np.float32)[:CALIB_MAX])
    want = tuple(ctx.model.spec.input)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise QcnnError(f"--calib inputs must be [N, {', '.join(map(str, want))}], got {list(x.shape)}")
    return x


def qdq_onnx(ctx: PeerContext, variant: str) -> tuple[Path, float, float, bool, int]:
    """The int8 QDQ file of the ``variant`` float graph, calibrated on ctx's calibration inputs,
    cached. Returns (path, export s, quantize s, cached, calibration images)."""
    _import_ort("onnxruntime-int8")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = _calibration(ctx)
    src, t_export, _ = float_onnx(ctx, variant)
    final = ctx.model.spec.layers[-1]
    exclude = [final.name] if final.type == "softmax" else []

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(calib):
                return None
            self.i += 1
            return {INPUT_NAME: calib[self.i - 1:self.i]}

    def build(tmp: Path) -> None:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_static logs advice on the root logger
        try:
            quantize_static(str(src), str(tmp.with_suffix(".onnx")), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
        except Exception as err:
            raise QcnnError(f"onnxruntime cannot quantize the exported {ctx.model.spec.name}: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        finally:
            root.setLevel(level)
        tmp.with_suffix(".onnx").replace(tmp)

    path, t_quant, cached = ctx.cached(f"int8-{variant}-{array_key(calib)[:16]}.onnx", build)
    return path, t_export, t_quant, cached, len(calib)


def _model_file(ctx: PeerContext, variant: str, int8: bool) -> tuple[Path, dict[str, Any]]:
    if int8:
        path, t_exp, t_quant, cached, n = qdq_onnx(ctx, variant)
        return path, {"export_s": t_exp, "quantize_s": t_quant, "cached": cached, "calibration_images": n}
    path, t_exp, cached = float_onnx(ctx, variant)
    return path, {"export_s": t_exp, "cached": cached}


def _choose(ctx: PeerContext, name: str, load: Callable[[Path], tuple[Callable[..., Any], Any]], int8: bool
            ) -> tuple[str, Path, Any, dict[str, Any]]:
    """Load every graph variant, time them (:func:`pick_fastest`), keep the faster."""
    loaded: dict[str, tuple[Path, Callable[..., Any], Any]] = {}
    setup = {"export_s": 0.0, "quantize_s": 0.0, "compile_s": 0.0, "select_s": 0.0}
    cached = True
    extra: dict[str, Any] = {}
    for v in _variants(ctx):
        path, made = _model_file(ctx, v, int8)
        setup["export_s"] += made["export_s"]
        setup["quantize_s"] += made.get("quantize_s", 0.0)
        cached = cached and made["cached"]
        if "calibration_images" in made:
            extra["calibration_images"] = made["calibration_images"]
        t0 = time.perf_counter()
        run, handle = load(path)
        setup["compile_s"] += time.perf_counter() - t0
        loaded[v] = (path, run, handle)
    t0 = time.perf_counter()
    if len(loaded) > 1:
        chosen, times = pick_fastest({v: r for v, (_, r, _) in loaded.items()}, ctx.sample)  # type: ignore[arg-type]
    else:
        chosen, times = next(iter(loaded)), {}
    setup["select_s"] = time.perf_counter() - t0
    if not int8:
        setup.pop("quantize_s")
    setup["total_s"] = sum(setup.values())
    path, _, handle = loaded[chosen]
    info = {"graph": chosen, "graph_ms": times or None, "graph_rule": "faster median of a timed trial at set-up"
            if times else "only one variant (no LRN)", "setup": {**setup, "cached": cached}, "model_file": str(path),
            **extra}
    return chosen, path, handle, info


def onnxruntime_peer(ctx: PeerContext, int8: bool = False) -> Peer:
    """ONNX Runtime on the fp32 graph, or (int8) on the QDQ graph."""
    name = "onnxruntime-int8" if int8 else "onnxruntime"
    ort = _import_ort(name)
    threads = ctx.threads
    checked = list(check_layers(ctx.model))
    final = ctx.model.spec.layers[-1].name

    def load(path: Path) -> tuple[Callable[..., Any], Any]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise QcnnError(f"onnxruntime cannot load the exported {ctx.model.spec.name}: "
                            f"{str(err).splitlines()[0]}", path) from None
        return (lambda x: sess.run([final], {INPUT_NAME: x})[0]), sess

    _, path, sess, info = _choose(ctx, name, load, int8)

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run([final], {INPUT_NAME: x})[0]

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(checked, sess.run(checked, {INPUT_NAME: x})))

    info.update({"providers": sess.get_providers(), "intra_op_num_threads": threads, "inter_op_num_threads": 1,
                 "threads": {"intra_op_num_threads": threads, "inter_op_num_threads": 1,
                             "execution_mode": "ORT_SEQUENTIAL"},
                 "graph_optimization": "ORT_ENABLE_ALL",
                 "quantization": "static QDQ, per-channel int8 weights, uint8 activations, MinMax" if int8 else None})
    return Peer(name, ort.__version__, run, probe, info, precision="int8" if int8 else "fp32",
                model_bytes=path.stat().st_size)


def _type_name(value: Any) -> str:
    get = getattr(value, "get_type_name", None)
    return str(get() if get is not None else value)


def openvino_peer(ctx: PeerContext, precision: str = "default") -> Peer:
    """OpenVINO CPU on the fp32 graph (precision ``default`` or ``f32``) or on the QDQ graph (``int8``)."""
    name = {"default": "openvino", "f32": "openvino-f32", "int8": "openvino-int8"}[precision]
    ov = _import_ov(name)
    int8 = precision == "int8"
    if int8:
        _import_ort(name)  # the QDQ model is made by onnxruntime.quantization
    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": ctx.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                              "CACHE_DIR": str(ctx.directory / "openvino")}
    if precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    checked = check_layers(ctx.model)
    final = ctx.model.spec.layers[-1].name
    shape = [ctx.batch_size, *ctx.model.spec.input]

    def load(path: Path) -> tuple[Callable[..., Any], Any]:
        try:
            m = core.read_model(str(path))
            m.reshape({INPUT_NAME: shape})
            compiled = core.compile_model(m, "CPU", config)
        except Exception as err:
            raise QcnnError(f"openvino cannot compile the exported {ctx.model.spec.name}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
                            path) from None
        names = [o.get_any_name() for o in compiled.outputs]
        req = compiled.create_infer_request()
        port = names.index(final)

        def run(x: np.ndarray) -> np.ndarray:
            req.infer({0: x}, share_inputs=True, share_outputs=True)
            return req.get_output_tensor(port).data.copy()

        return run, (compiled, req, names)

    _, path, (compiled, req, names), info = _choose(ctx, name, load, int8)
    port = names.index(final)
    ports = {n: names.index(n) for n in checked}

    def run(x: np.ndarray) -> np.ndarray:
        req.infer({0: x}, share_inputs=True, share_outputs=True)
        return req.get_output_tensor(port).data.copy()

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        req.infer({0: np.ascontiguousarray(x)})
        return {n: req.get_output_tensor(i).data.copy() for n, i in ports.items()}

    hint = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    props = {k: str(compiled.get_property(k)) for k in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT")}
    info.update({"device": "CPU", "inference_precision_hint": hint, "threads": props,
                 "config": {k: str(v) for k, v in config.items()},
                 "quantization": "static QDQ (onnxruntime.quantization), the onnxruntime-int8 model" if int8 else None})
    used = "int8" if int8 else ("fp32" if hint in ("f32", "float32") else hint)
    return Peer(name, ov.__version__, run, probe, info, precision=used, model_bytes=path.stat().st_size)
