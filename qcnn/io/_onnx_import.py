"""Import a float CNN from an ONNX graph into a qcnn :class:`~qcnn.Model` (for ``qcnn quantize``).

The graph must be a chain (each node takes the previous node's output) from one input
[N, C, H, W] (or [N, F], read as [F, 1, 1]) to one output. Weights come from the
initializers (or ``Constant`` nodes). Supported nodes and what they become:

==================  ==============================================================
Conv                conv: square kernel, equal strides, the same pad on all four sides,
                    dilations 1, any ``group``; weight [O, C/G, k, k], bias [O] (or 0)
Relu                relu
LRN                 lrn(size, alpha, beta, k=bias): ONNX divides alpha by size, as qcnn does
MaxPool             pool: square kernel, equal strides, begin pads equal; ``ceil_mode`` and
                    end pads are accepted when they give the same output size as qcnn's
                    Caffe rounding (ceil((H + 2p - k) / s) + 1)
Gemm                fc: transA = 0; y = alpha A B' + beta C with B' = B^T if transB, so
                    weight = (alpha B')^T [O, F], bias = beta C
MatMul (+ Add)      fc: weight = B^T; a following ``Add`` of a constant [O] is the bias
Flatten, Reshape    nothing (qcnn's fc flattens (C, H, W) in the same order); Flatten needs
                    axis 1, Reshape a target [0 | -1 | 1, F | -1]
Dropout, Identity   dropout (test-time identity)
Softmax             softmax over the flattened [N, O] input (axis 1 or -1)
==================  ==============================================================

Any other op type is an error that lists all of them at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..model._model import Model
from ..model._spec import Layer, NetSpec, output_shape, pool_out

__all__ = ["import_onnx", "onnx_to_model", "SUPPORTED_OPS"]

SUPPORTED_OPS = ("Conv", "Relu", "LRN", "MaxPool", "Gemm", "MatMul", "Add", "Flatten", "Reshape", "Dropout",
                 "Identity", "Softmax", "Constant")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise QcnnError('ONNX import needs the onnx package: pip install onnx (or "qcnn[test]")') from None
    return onnx


def import_onnx(path: str | os.PathLike[str]) -> Model:
    """Read an ONNX file and convert it (see the module doc); one-line QcnnError on any problem."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise QcnnError("no such ONNX file", path)
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf raises several types on garbage
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise QcnnError(f"not a valid ONNX model ({first})", path) from None
    return onnx_to_model(proto, str(path))


class _Builder:
    """Walks the node chain and collects qcnn layers and tensors."""

    def __init__(self, proto: Any, source: str) -> None:
        from onnx import numpy_helper

        self.to_array = numpy_helper.to_array
        self.source = source
        self.graph = proto.graph
        self.consts: dict[str, np.ndarray] = {t.name: self.to_array(t) for t in self.graph.initializer}
        self.layers: list[Layer] = []
        self.params: dict[str, dict[str, np.ndarray]] = {}
        self.names: set[str] = set()
        self.shape: tuple[int, ...] = ()
        self.flat = False
        self.cur = ""
        self.pending_matmul: str | None = None  # fc layer waiting for an Add bias

    # ------------------------------------------------------------- helpers
    def fail(self, message: str) -> QcnnError:
        return QcnnError(message, self.source)

    def attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node: Any, i: int, what: str, required: bool = True) -> np.ndarray | None:
        if len(node.input) <= i or not node.input[i]:
            if required:
                raise self.fail(f"node {self.label(node)} ({node.op_type}) has no {what} input")
            return None
        name = node.input[i]
        if name not in self.consts:
            raise self.fail(f"node {self.label(node)} ({node.op_type}): {what} {name!r} must be an initializer or Constant")
        arr = self.consts[name]
        if arr.dtype.kind not in "fiu":
            raise self.fail(f"node {self.label(node)} ({node.op_type}): {what} has dtype {arr.dtype}")
        return arr

    @staticmethod
    def f32(value: Any) -> float:
        """An ONNX float attribute (stored as float32) as its shortest decimal: 1e-4, not 9.99999974e-05."""
        return float(str(np.float32(value)))

    @staticmethod
    def label(node: Any) -> str:
        return node.name or (node.output[0] if node.output else "?")

    def layer_name(self, node: Any) -> str:
        base = node.name or (node.output[0] if node.output else node.op_type.lower())
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def add(self, node: Any, layer: Layer, params: dict[str, np.ndarray] | None = None) -> None:
        self.layers.append(layer)
        if params is not None:
            self.params[layer.name] = {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}

        try:
            self.shape = output_shape(layer, self.shape)
        except QcnnError as err:
            raise self.fail(f"node {self.label(node)}: {err}") from None
        self.flat = layer.type in ("fc", "softmax") or (self.flat and layer.type in ("relu", "dropout"))

    # ------------------------------------------------------------- ops
    def conv(self, node: Any, a: Mapping[str, Any]) -> None:
        w = self.const(node, 1, "weight")
        b = self.const(node, 2, "bias", required=False)
        where = f"node {self.label(node)} (Conv)"
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise self.fail(f"{where}: needs a square 2-D kernel [O, C/G, k, k], got {list(w.shape)}")
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(set(strides)) != 1:
            raise self.fail(f"{where}: strides {strides} differ between height and width")
        if len(set(pads)) != 1:
            raise self.fail(f"{where}: pads {pads} are not the same on all four sides")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(f"{where}: dilations {list(a['dilations'])} are not supported")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise self.fail(f"{where}: auto_pad {a['auto_pad']!r} is not supported (give explicit pads)")
        if "kernel_shape" in a and list(a["kernel_shape"]) != [w.shape[2], w.shape[3]]:
            raise self.fail(f"{where}: kernel_shape {list(a['kernel_shape'])} disagrees with the weight {list(w.shape)}")
        o = w.shape[0]
        bias = np.zeros(o, np.float32) if b is None else b.reshape(-1)
        if bias.shape != (o,):
            raise self.fail(f"{where}: bias has shape {list(b.shape)}, expected [{o}]")
        groups = int(a.get("group", 1))
        if len(self.shape) != 3 or self.flat:
            raise self.fail(f"{where}: needs a [C, H, W] input, got {list(self.shape)}")
        if w.shape[1] * groups != self.shape[0]:
            raise self.fail(f"{where}: weight {list(w.shape)} with group {groups} does not fit {self.shape[0]} input channels")
        layer = Layer(self.layer_name(node), "conv", out=o, kernel=int(w.shape[2]), stride=int(strides[0]),
                      pad=int(pads[0]), groups=groups)
        self.add(node, layer, {"weight": w, "bias": bias})

    def maxpool(self, node: Any, a: Mapping[str, Any]) -> None:
        where = f"node {self.label(node)} (MaxPool)"
        k = list(a.get("kernel_shape", []))
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(k) != 2 or k[0] != k[1]:
            raise self.fail(f"{where}: needs a square 2-D kernel_shape, got {k}")
        if len(set(strides)) != 1:
            raise self.fail(f"{where}: strides {strides} differ between height and width")
        if len(pads) != 4 or pads[0] != pads[1]:
            raise self.fail(f"{where}: begin pads {pads[:2]} differ between height and width")
        if any(d != 1 for d in a.get("dilations", [1, 1])) or int(a.get("storage_order", 0)) != 0:
            raise self.fail(f"{where}: dilations / storage_order are not supported")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise self.fail(f"{where}: auto_pad {a['auto_pad']!r} is not supported (give explicit pads)")
        if len([o for o in node.output if o]) > 1:
            raise self.fail(f"{where}: the Indices output is not supported")
        if len(self.shape) != 3 or self.flat:
            raise self.fail(f"{where}: needs a [C, H, W] input, got {list(self.shape)}")
        kk, st, p = int(k[0]), int(strides[0]), int(pads[0])
        ceil = bool(a.get("ceil_mode", 0))
        for size, begin, end in ((self.shape[1], pads[0], pads[2]), (self.shape[2], pads[1], pads[3])):
            span = size + begin + end - kk
            theirs = (-(-span // st) if ceil else span // st) + 1
            if theirs != pool_out(size, kk, st, p):
                raise self.fail(f"{where}: output size {theirs} (pads {pads}, ceil_mode {int(ceil)}) differs from "
                                f"Caffe-rounded max pooling's {pool_out(size, kk, st, p)} for input size {size}")
        self.add(node, Layer(self.layer_name(node), "pool", kernel=kk, stride=st, pad=p))

    def fc(self, node: Any, weight: np.ndarray, bias: np.ndarray) -> None:
        where = f"node {self.label(node)} ({node.op_type})"
        f = prod(self.shape)
        if weight.ndim != 2 or weight.shape[1] != f:
            raise self.fail(f"{where}: weight [O, F] = {list(weight.shape)} does not fit the {f} flattened inputs")
        o = weight.shape[0]
        bias = np.asarray(bias, np.float64).reshape(-1)
        if bias.size == 1:
            bias = np.full(o, bias[0])
        elif bias.size != o:
            raise self.fail(f"{where}: bias of {bias.size} values does not broadcast to [{o}]")
        self.add(node, Layer(self.layer_name(node), "fc", out=o), {"weight": weight, "bias": bias})

    def gemm(self, node: Any, a: Mapping[str, Any]) -> None:
        if int(a.get("transA", 0)):
            raise self.fail(f"node {self.label(node)} (Gemm): transA=1 is not supported")
        b = self.const(node, 1, "B").astype(np.float64)
        c = self.const(node, 2, "C", required=False)
        if b.ndim != 2:
            raise self.fail(f"node {self.label(node)} (Gemm): B must be 2-D, got {list(b.shape)}")
        w = (b if int(a.get("transB", 0)) else b.T) * float(a.get("alpha", 1.0))
        bias = np.zeros(1) if c is None else c.astype(np.float64) * float(a.get("beta", 1.0))
        self.fc(node, w, bias)

    def matmul(self, node: Any) -> None:
        b = self.const(node, 1, "B")
        if b.ndim != 2:
            raise self.fail(f"node {self.label(node)} (MatMul): B must be 2-D, got {list(b.shape)}")
        self.fc(node, b.T, np.zeros(1))
        self.pending_matmul = self.layers[-1].name

    def add_bias(self, node: Any) -> None:
        where = f"node {self.label(node)} (Add)"
        if self.pending_matmul is None:
            raise self.fail(f"{where}: Add is supported only as the bias right after a MatMul")
        other = [i for i in node.input if i != self.cur]
        if len(other) != 1 or other[0] not in self.consts:
            raise self.fail(f"{where}: the bias must be an initializer or Constant")
        bias = self.consts[other[0]]
        o = self.layers[-1].out
        if np.size(bias) not in (1, o) or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
            raise self.fail(f"{where}: bias shape {list(bias.shape)} does not broadcast to [{o}]")
        self.params[self.pending_matmul]["bias"] = np.ascontiguousarray(
            np.broadcast_to(bias.reshape(-1) if np.size(bias) == o else bias.reshape(()), (o,)), np.float32)
        self.pending_matmul = None

    def reshape(self, node: Any, a: Mapping[str, Any]) -> None:
        where = f"node {self.label(node)} ({node.op_type})"
        f = prod(self.shape)
        if node.op_type == "Flatten":
            if int(a.get("axis", 1)) != 1:
                raise self.fail(f"{where}: only axis=1 (flatten each sample) is supported")
        else:
            target = [int(v) for v in self.const(node, 1, "shape").reshape(-1)]
            if len(target) != 2 or target[0] not in (0, -1, 1) or target[1] not in (f, -1) or target == [-1, -1]:
                raise self.fail(f"{where}: only flattening reshapes [N, {f}] are supported, got target {target}")
        self.flat = True

    def softmax(self, node: Any, a: Mapping[str, Any]) -> None:
        if len(self.shape) != 1 and not self.flat:
            raise self.fail(f"node {self.label(node)} (Softmax): needs a flattened [N, O] input, got {list(self.shape)}")
        if int(a.get("axis", -1)) not in (1, -1):
            raise self.fail(f"node {self.label(node)} (Softmax): axis {a['axis']} is not supported (1 or -1)")
        self.add(node, Layer(self.layer_name(node), "softmax"))
        self.shape = (prod(self.shape),)

    # ------------------------------------------------------------- driver
    def build(self, name: str) -> Model:
        g = self.graph
        nodes = list(g.node)
        unsupported: dict[str, list[str]] = {}
        for node in nodes:
            if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
                unsupported.setdefault(f"{node.domain + '.' if node.domain else ''}{node.op_type}", []).append(self.label(node))
        if unsupported:
            listed = "; ".join(f"{op} ({len(n)}x: {', '.join(n[:3])}{', ...' if len(n) > 3 else ''})"
                               for op, n in sorted(unsupported.items()))
            raise self.fail(f"unsupported ONNX op(s): {listed} (supported: {', '.join(SUPPORTED_OPS)})")
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise self.fail(f"the graph must have exactly one data input, it has {len(inputs)}")
        dims = self.input_dims(inputs[0])
        self.shape = dims
        self.cur = inputs[0].name
        for node in nodes:
            a = self.attrs(node)
            op = node.op_type
            if op == "Constant":
                if "value" not in a:
                    raise self.fail(f"node {self.label(node)} (Constant): only the 'value' attribute is supported")
                self.consts[node.output[0]] = self.to_array(a["value"])
                continue
            data = [i for i in node.input if i and i not in self.consts]
            if data != [self.cur]:
                raise self.fail(f"node {self.label(node)} ({op}) does not continue the chain from {self.cur!r} "
                                f"(inputs {list(node.input)}); only single-path graphs are supported")
            if op != "Add":
                self.pending_matmul = None
            if op == "Conv":
                self.conv(node, a)
            elif op == "Relu":
                self.add(node, Layer(self.layer_name(node), "relu"))
            elif op == "LRN":
                if "size" not in a:
                    raise self.fail(f"node {self.label(node)} (LRN): needs 'size'")
                self.add(node, Layer(self.layer_name(node), "lrn", size=int(a["size"]), alpha=self.f32(a.get("alpha", 1e-4)),
                                     beta=self.f32(a.get("beta", 0.75)), k=self.f32(a.get("bias", 1.0))))
            elif op == "MaxPool":
                self.maxpool(node, a)
            elif op == "Gemm":
                self.gemm(node, a)
            elif op == "MatMul":
                self.matmul(node)
            elif op == "Add":
                self.add_bias(node)
            elif op in ("Flatten", "Reshape"):
                self.reshape(node, a)
            elif op in ("Dropout", "Identity"):
                self.add(node, Layer(self.layer_name(node), "dropout", ratio=self.f32(a.get("ratio", 0.5))))
            elif op == "Softmax":
                self.softmax(node, a)
            self.cur = node.output[0]
        outs = [o.name for o in g.output]
        if outs != [self.cur]:
            raise self.fail(f"the graph output(s) {outs} must be exactly the last node's output {self.cur!r}")
        if not self.layers:
            raise self.fail("the graph has no layers")
        try:
            spec = NetSpec(name=name, input=dims if len(dims) == 3 else (dims[0], 1, 1), layers=tuple(self.layers))
            return Model(spec, self.params, source=self.source)
        except QcnnError as err:
            raise QcnnError(str(err) if self.source in str(err) else f"{self.source}: {err}") from None

    def input_dims(self, value: Any) -> tuple[int, ...]:
        t = value.type.tensor_type
        if t.elem_type != 1:  # FLOAT
            raise self.fail(f"graph input {value.name!r} must be float32 (elem_type {t.elem_type})")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if len(dims) not in (2, 4) or any(d is None or d < 1 for d in dims[1:]):
            raise self.fail(f"graph input {value.name!r} must be [N, C, H, W] or [N, F] with fixed sizes, "
                            f"got {[d if d is not None else '?' for d in dims]}")
        return tuple(int(d) for d in dims[1:])


def onnx_to_model(proto: Any, source: str = "onnx model", name: str | None = None) -> Model:
    """Convert an ``onnx.ModelProto`` (see the module doc); ``source`` names it in errors."""
    _onnx()
    graph_name = name or proto.graph.name or Path(source).stem or "imported"
    return _Builder(proto, source).build(graph_name)
