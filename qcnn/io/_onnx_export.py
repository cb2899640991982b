"""Export a model's FLOAT network as an ONNX graph (for ONNX Runtime as a benchmark peer).

A quantized model is exported through its decoded dense weights
(:func:`qcnn.model.float_twin`), so the graph computes exactly what the float twin
computes. Layer by layer:

==========  ==================================================================
conv        ``Conv`` (group, strides, symmetric pads), weight [O, C/G, k, k], bias [O]
relu        ``Relu``
lrn         ``LRN(size, alpha, beta, bias=k)``; ONNX divides alpha by size, as Caffe
            and :func:`qcnn.reference.lrn` do: y = x (k + alpha/size sum x^2)^-beta.
            With ``lrn="decomposed"``: elementwise ops instead, ``Mul(x, x)`` ->
            ``Unsqueeze`` [N, 1, C, H, W] -> ``AveragePool`` over [size, 1, 1] with zero
            pads (count_include_pad: the window sum / size) -> ``Squeeze`` -> k + alpha *
            mean -> ``Pow(-beta)`` -> ``Mul(x, .)``: the same math, which some engines run
            faster than their LRN kernel (``qcnn bench --compare`` measures which)
pool        ``MaxPool`` with ``ceil_mode=1`` (Caffe rounding) when pad == 0; with
            padding, explicit end pads and ``ceil_mode=0`` reproduce the spec's size
fc          ``Flatten`` (when the input is a feature map; (C, H, W) order) + ``Gemm``
            with ``transB=1``: y = x W^T + b
dropout     ``Identity`` (test time)
softmax     ``Softmax`` over axis 1 of [N, O]
==========  ==================================================================

Every layer's output tensor carries the layer's name; the graph input is ``data``
[N, C, H, W] with a symbolic batch size ``N``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from .._version import __version__
from ..model import Model, float_twin
from ._qcnn_file import atomic_write

__all__ = ["build_onnx", "export_onnx", "OPSET", "INPUT_NAME", "LRN_VARIANTS"]

OPSET = 17
INPUT_NAME = "data"
#: How an ``lrn`` layer is written: the ONNX ``LRN`` op, or its decomposition into elementwise ops.
LRN_VARIANTS = ("op", "decomposed")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise QcnnError('ONNX export needs the onnx package: pip install "qcnn[peers]"') from None
    return onnx


def build_onnx(model: Model, extra_outputs: tuple[str, ...] = (), lrn: str = "op") -> Any:
    """The float network of ``model`` as an ``onnx.ModelProto`` (checked with ``onnx.checker``).

    The graph output is the last layer's; ``extra_outputs`` names more layers whose
    outputs become graph outputs too (for checks against qcnn's own layer outputs).
    ``lrn``: ``"op"`` (the ``LRN`` op) or ``"decomposed"`` (elementwise ops, see the module doc).
    """
    if lrn not in LRN_VARIANTS:
        raise QcnnError(f"lrn must be one of {', '.join(LRN_VARIANTS)}, got {lrn!r}")
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    fmodel = float_twin(model)
    spec = fmodel.spec
    shapes = spec.shapes()
    nodes, inits = [], []
    prev = INPUT_NAME
    for layer, in_shape, out_shape in zip(spec.layers, shapes, shapes[1:]):
        name, t = layer.name, layer.type
        if t == "conv":
            p = fmodel.params[name]
            inits += [numpy_helper.from_array(np.ascontiguousarray(p["weight"], np.float32), f"{name}.weight"),
                      numpy_helper.from_array(np.ascontiguousarray(p["bias"], np.float32), f"{name}.bias")]
            nodes.append(helper.make_node("Conv", [prev, f"{name}.weight", f"{name}.bias"], [name], name=name,
                                          kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2,
                                          pads=[layer.pad] * 4, group=layer.groups))
        elif t == "fc":
            p = fmodel.params[name]
            inits += [numpy_helper.from_array(np.ascontiguousarray(p["weight"], np.float32), f"{name}.weight"),
                      numpy_helper.from_array(np.ascontiguousarray(p["bias"], np.float32), f"{name}.bias")]
            src = prev
            if len(in_shape) > 1:
                src = f"{name}.flat"
                nodes.append(helper.make_node("Flatten", [prev], [src], name=src, axis=1))
            nodes.append(helper.make_node("Gemm", [src, f"{name}.weight", f"{name}.bias"], [name], name=name,
                                          transB=1))
        elif t == "relu":
            nodes.append(helper.make_node("Relu", [prev], [name], name=name))
        elif t == "lrn" and lrn == "decomposed":
            n, i = _lrn_decomposed(helper, numpy_helper, layer, prev)
            nodes += n
            inits += i
        elif t == "lrn":
            nodes.append(helper.make_node("LRN", [prev], [name], name=name, size=layer.size,
                                          alpha=float(layer.alpha), beta=float(layer.beta), bias=float(layer.k)))
        elif t == "pool":
            nodes.append(_maxpool(helper, layer, in_shape, out_shape, prev))
        elif t == "dropout":
            nodes.append(helper.make_node("Identity", [prev], [name], name=name))
        elif t == "softmax":
            src = prev
            if len(in_shape) > 1:
                src = f"{name}.flat"
                nodes.append(helper.make_node("Flatten", [prev], [src], name=src, axis=1))
            nodes.append(helper.make_node("Softmax", [src], [name], name=name, axis=1))
        else:  # unreachable: specs are validated
            raise QcnnError(f"cannot export layer {name} of type {t!r} to ONNX")
        prev = name
    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *spec.input])
    index = {layer.name: i for i, layer in enumerate(spec.layers)}
    unknown = [n for n in extra_outputs if n not in index]
    if unknown:
        raise QcnnError(f"{spec.name} has no layer {unknown[0]!r} to export as an output")
    outs = [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", *shapes[-1]])]
    outs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *shapes[index[n] + 1]])
             for n in dict.fromkeys(extra_outputs) if n != prev]
    graph = helper.make_graph(nodes, spec.name, [inp], outs, initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="qcnn", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes too
    onnx.checker.check_model(proto)
    return proto


def _lrn_decomposed(helper: Any, numpy_helper: Any, layer: Any, prev: str) -> tuple[list[Any], list[Any]]:
    """LRN as elementwise ops on x [N, C, H, W]; the last node's output is the layer's name."""
    name, size = layer.name, layer.size
    r = (size - 1) // 2
    c = {key: numpy_helper.from_array(np.asarray(val, dtype), f"{name}.{key}") for key, val, dtype in (
        ("axes", [1], np.int64), ("alpha", layer.alpha, np.float32), ("k", layer.k, np.float32),
        ("exponent", -layer.beta, np.float32))}
    node = helper.make_node
    nodes = [
        node("Mul", [prev, prev], [f"{name}.sq"], name=f"{name}.sq"),
        node("Unsqueeze", [f"{name}.sq", f"{name}.axes"], [f"{name}.sq5"], name=f"{name}.sq5"),
        node("AveragePool", [f"{name}.sq5"], [f"{name}.mean5"], name=f"{name}.mean5", kernel_shape=[size, 1, 1],
             pads=[r, 0, 0, size - 1 - r, 0, 0], count_include_pad=1),
        node("Squeeze", [f"{name}.mean5", f"{name}.axes"], [f"{name}.mean"], name=f"{name}.mean"),
        node("Mul", [f"{name}.mean", f"{name}.alpha"], [f"{name}.amean"], name=f"{name}.amean"),
        node("Add", [f"{name}.amean", f"{name}.k"], [f"{name}.scale"], name=f"{name}.scale"),
        node("Pow", [f"{name}.scale", f"{name}.exponent"], [f"{name}.factor"], name=f"{name}.factor"),
        node("Mul", [prev, f"{name}.factor"], [name], name=name),
    ]
    return nodes, list(c.values())


def _maxpool(helper: Any, layer: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...], prev: str) -> Any:
    k, st, p = layer.kernel, layer.stride, layer.pad
    if p == 0:
        return helper.make_node("MaxPool", [prev], [layer.name], name=layer.name, kernel_shape=[k, k],
                                strides=[st, st], ceil_mode=1)
    # Caffe's ceil rounding with padding: pad the end so that floor mode gives the spec's size.
    ends = [max((o - 1) * st + k - size - p, 0) for o, size in zip(out_shape[1:], in_shape[1:])]
    return helper.make_node("MaxPool", [prev], [layer.name], name=layer.name, kernel_shape=[k, k],
                            strides=[st, st], pads=[p, p, ends[0], ends[1]], ceil_mode=0)


def export_onnx(model: Model, path: str | os.PathLike[str], lrn: str = "op") -> Path:
    """Write the float network of ``model`` (see :func:`build_onnx`) to ``path`` atomically."""
    proto = build_onnx(model, lrn=lrn)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return Path(path)
