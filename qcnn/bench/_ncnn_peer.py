"""The ncnn peer: qcnn's ONNX export (``LRN`` op; ncnn has the layer) converted by pnnx with
fp32 weights, run by ncnn's CPU path.

* Conversion: ``pnnx model.onnx inputshape=[1,C,H,W] fp16=0``, cached in the peer cache
  (``ncnn.param`` + ``ncnn.bin``), the conversion time reported as set-up.
* Precision: ncnn can keep activations and weights in fp16 (``use_fp16_storage``,
  ``use_fp16_packed``, ``use_fp16_arithmetic``) on CPUs that have it. Both settings are loaded
  and the faster kept by the same timed trial as the graph variants (:func:`pick_fastest`);
  the report gives the choice (``fp32`` or ``fp16``) and both times.
* Threads: ``opt.num_threads`` = threads. ncnn runs one image at a time: a batch is a loop.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..io import build_onnx
from ._peer_base import Peer, PeerContext, check_layers, pick_fastest

__all__ = ["INSTALL", "ncnn_peer"]

INSTALL = 'pip install "qcnn[ncnn]"'
#: seconds a pnnx conversion may take
CONVERT_TIMEOUT = 600


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise QcnnError(f"--compare ncnn needs ncnn and pnnx: {INSTALL}") from None


def _convert(ctx: PeerContext) -> tuple[Path, Path, float, bool]:
    """(param, bin, seconds, cached): the ncnn files of ``ctx.model``, converted once."""
    pnnx = _import("pnnx")
    shape = ",".join(str(d) for d in (1, *ctx.model.spec.input))
    bin_path = ctx.directory / "ncnn.bin"

    def build(target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="qcnn-ncnn-") as tmp:
            src = Path(tmp) / "model.onnx"
            src.write_bytes(build_onnx(ctx.model, lrn="op").SerializeToString())
            out = {k: str(Path(tmp) / f"model.{k}") for k in ("pnnxparam", "pnnxbin", "pnnxpy", "pnnxonnx",
                                                                 "ncnnparam", "ncnnbin", "ncnnpy")}
            cmd = [pnnx.EXEC_PATH, str(src), f"inputshape=[{shape}]", "fp16=0", *(f"{k}={v}" for k, v in out.items())]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT, cwd=tmp)
            except (OSError, subprocess.SubprocessError) as err:
                raise QcnnError(f"pnnx could not convert {ctx.model.spec.name}: {err}") from None
            if res.returncode != 0 or not Path(out["ncnnparam"]).exists():
                last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                raise QcnnError(f"pnnx could not convert {ctx.model.spec.name}: {last[0]}")
            os.replace(out["ncnnbin"], bin_path)  # the weights first: a param file implies its bin
            os.replace(out["ncnnparam"], target)

    if not bin_path.exists():  # a param without its bin (an interrupted conversion) is rebuilt
        (ctx.directory / "ncnn.param").unlink(missing_ok=True)
    param, seconds, cached = ctx.cached("ncnn.param", build)
    return param, bin_path, seconds, cached


def _blobs(param: Path, ctx: PeerContext) -> dict[str, str]:
    """qcnn layer name -> ncnn blob name, for the final layer (``out0``) and, when the network
    ends in softmax, the logits (the softmax layer's input blob)."""
    final = ctx.model.spec.layers[-1]
    out = {final.name: "out0"}
    weighted = [layer.name for layer in ctx.model.spec.layers if layer.has_weights]
    for line in param.read_text(encoding="utf-8", errors="replace").splitlines()[2:]:
        f = line.split()  # type name inputs outputs in... out... params
        if len(f) >= 6 and f[0] == "Softmax" and f[2:4] == ["1", "1"] and f[5] == "out0" and weighted:
            out[weighted[-1]] = f[4]
    return out


def ncnn_peer(ctx: PeerContext, precision: str | None = None) -> Peer:
    """ncnn on the pnnx conversion of the float network: ``precision`` fp32 or fp16 storage, or
    None for the faster of the two (timed)."""
    ncnn = _import("ncnn")
    param, bin_path, convert_s, cached = _convert(ctx)
    blobs = _blobs(param, ctx)
    final = ctx.model.spec.layers[-1].name
    nets: dict[str, Any] = {}

    def load(fp16: bool) -> Callable[[np.ndarray], np.ndarray]:
        net = ncnn.Net()
        opt = ncnn.Option()
        opt.num_threads = ctx.threads
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = fp16
        opt.use_bf16_storage = False
        net.opt = opt
        if net.load_param(str(param)) != 0 or net.load_model(str(bin_path)) != 0:
            raise QcnnError("ncnn cannot load the converted model", param)
        nets["fp16" if fp16 else "fp32"] = net
        return lambda x: _forward(ncnn, net, x, [blobs[final]])[0]

    t0 = time.perf_counter()
    runs = {p: load(p == "fp16") for p in ("fp32", "fp16") if precision in (None, p)}
    if not runs:
        raise QcnnError(f"ncnn precision must be fp32 or fp16, got {precision!r}")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chosen, times = pick_fastest(runs, ctx.sample) if len(runs) > 1 else (next(iter(runs)), {})  # type: ignore[arg-type]
    select_s = time.perf_counter() - t0
    net = nets[chosen]
    checked = [n for n in check_layers(ctx.model) if n in blobs]

    def run(x: np.ndarray) -> np.ndarray:
        return _forward(ncnn, net, x, [blobs[final]])[0]

    def probe(x: np.ndarray) -> dict[str, np.ndarray]:
        order = sorted(checked, key=lambda n: n == final)  # the logits before the final blob
        return dict(zip(order, _forward(ncnn, net, x, [blobs[n] for n in order])))

    setup = {"convert_s": convert_s, "compile_s": load_s, "select_s": select_s,
             "total_s": convert_s + load_s + select_s, "cached": cached}
    info = {"graph": "op", "precision_ms": times, "precision_rule": "faster median of a timed trial at set-up",
            "threads": {"num_threads": ctx.threads}, "setup": setup, "model_file": str(param),
            "conversion": "pnnx, fp32 weights (fp16=0)", "fp16_storage": chosen == "fp16"}
    size = param.stat().st_size + bin_path.stat().st_size
    return Peer("ncnn", str(getattr(ncnn, "__version__", "?")), run, probe, info, precision=chosen, model_bytes=size)


def _forward(ncnn: Any, net: Any, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """The blobs ``names`` (in that order) for every image of x [N, C, H, W], each [N, ...]."""
    outs: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(len(x)):
        with net.create_extractor() as ex:
            ex.input("in0", ncnn.Mat(np.ascontiguousarray(x[i:i + 1]), batch_index=0).clone())
            for j, name in enumerate(names):
                ret, mat = ex.extract(name)
                if ret != 0:
                    raise QcnnError(f"ncnn could not compute blob {name!r}")
                outs[j].append(np.array(mat.numpy(batch_index=0), np.float32).reshape(-1))
    return [np.stack(o) for o in outs]

