"""qcnn.onnx_import: op coverage against the reference kernels, unsupported ops listed in one
error, bad graphs, the CLI, and the round trip through qcnn.onnx_export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qcnn
from qcnn import reference as ref
from qcnn.cli import main
from qcnn.model import Layer, NetSpec

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qcnn.io import import_onnx, onnx_to_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS_MODEL = ROOT / "examples" / "digits" / "lenet_digits.qcnn"


def _graph(nodes, inits, in_shape, out_name, out_shape, opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", *out_shape])],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _every_op():
    """Conv(group 2, stride 2, pad 1) Relu LRN MaxPool(ceil) Reshape MatMul Add Relu Dropout Gemm Flatten Softmax."""
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    w = {"cw": f(6, 2, 3, 3), "cb": f(6), "mw": f(6 * 3 * 3, 7), "mb": f(7), "gw": f(7, 5), "gc": f(1, 5)}
    shape = numpy_helper.from_array(np.array([0, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", group=2, strides=[2, 2], pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("LRN", ["r"], ["n"], name="norm", size=3, alpha=2e-3, beta=0.6, bias=1.5),
        helper.make_node("MaxPool", ["n"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("Constant", [], ["shape"], value=shape),
        helper.make_node("Reshape", ["p", "shape"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "mw"], ["m"], name="fc1"),
        helper.make_node("Add", ["m", "mb"], ["mbias"], name="fc1_bias"),
        helper.make_node("Relu", ["mbias"], ["r2"], name="relu2"),
        helper.make_node("Dropout", ["r2"], ["d"], name="drop"),
        helper.make_node("Gemm", ["d", "gw", "gc"], ["g"], name="fc2", alpha=0.5, beta=2.0),
        helper.make_node("Flatten", ["g"], ["gf"], name="flat2", axis=1),
        helper.make_node("Softmax", ["gf"], ["prob"], name="prob", axis=1),
    ]
    # x [4, 11, 11] -> conv [6, 6, 6] -> pool ceil((6 - 3) / 2) + 1 = 3 -> 54 -> 7 -> 5
    return _graph(nodes, w, (4, 11, 11), "prob", (5,)), w


def test_every_supported_op_matches_reference():
    proto, w = _every_op()
    onnx.checker.check_model(proto)
    model = onnx_to_model(proto, "every_op.onnx")
    assert [(layer.name, layer.type) for layer in model.spec.layers] == [
        ("conv", "conv"), ("relu", "relu"), ("norm", "lrn"), ("pool", "pool"), ("fc1", "fc"), ("relu2", "relu"),
        ("drop", "dropout"), ("fc2", "fc"), ("prob", "softmax")]
    conv = model.spec.layer("conv")
    assert (conv.groups, conv.stride, conv.pad, conv.kernel) == (2, 2, 1, 3)
    norm = model.spec.layer("norm")
    assert (norm.size, norm.alpha, norm.beta, norm.k) == (3, 0.002, 0.6, 1.5)
    x = np.random.default_rng(1).standard_normal((3, 4, 11, 11)).astype(np.float32)
    h = ref.relu(ref.conv(x, w["cw"], w["cb"], 2, 1, 2))
    h = ref.max_pool(ref.lrn(h, 3, 2e-3, 0.6, 1.5), 3, 2)
    h = ref.relu(h.reshape(3, -1) @ w["mw"] + w["mb"])
    want = ref.softmax(0.5 * h @ w["gw"] + 2.0 * w["gc"])
    got = qcnn.compile(model)(x)
    assert _rel(got, want) < 1e-5
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert _rel(got, sess.run(None, {"x": x})[0]) < 1e-5


def test_unsupported_ops_listed_in_one_error():
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"], name="sig"),
             helper.make_node("AveragePool", ["a"], ["b"], name="ap1", kernel_shape=[2, 2]),
             helper.make_node("AveragePool", ["b"], ["c"], name="ap2", kernel_shape=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"], name="ok")]
    with pytest.raises(qcnn.QcnnError) as excinfo:
        onnx_to_model(_graph(nodes, {}, (1, 8, 8), "y", (1, 6, 6)), "net.onnx")
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.startswith("net.onnx: unsupported ONNX op(s)")
    assert "AveragePool (2x: ap1, ap2)" in msg and "Sigmoid (1x: sig)" in msg and "Relu (" not in msg


def _conv_graph(**attrs):
    w = {"w": np.ones((2, 1, 3, 3), np.float32)}
    return _graph([helper.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)], w, (1, 8, 8), "y", (2, 6, 6))


@pytest.mark.parametrize("proto, needle", [
    (_conv_graph(pads=[1, 1, 0, 0]), "pads [1, 1, 0, 0] are not the same on all four sides"),
    (_conv_graph(strides=[1, 2]), "strides [1, 2] differ"),
    (_conv_graph(dilations=[2, 2]), "dilations"),
    (_graph([helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[3, 3], strides=[2, 2])], {},
            (1, 8, 8), "y", (1, 3, 3)), "output size 3 (pads [0, 0, 0, 0], ceil_mode 0) differs"),
    (_graph([helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Add", ["x", "a"], ["y"], name="res")],
            {}, (1, 8, 8), "y", (1, 8, 8)), "does not continue the chain"),
    (_graph([helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Softmax", ["a"], ["y"], name="s")],
            {}, (3, 4, 4), "y", (3, 4, 4)), "needs a flattened [N, O] input"),
    (_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="m")], {"w": np.ones((5, 3), np.float32)},
            (7,), "y", (3,)), "weight [O, F] = [3, 5] does not fit the 7 flattened inputs"),
    (_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], {"w": np.ones((2, 3, 3, 3), np.float32)},
            (1, 8, 8), "y", (2, 6, 6)), "does not fit 1 input channels"),
])
def test_bad_graphs_one_line(proto, needle):
    with pytest.raises(qcnn.QcnnError) as excinfo:
        onnx_to_model(proto, "bad.onnx")
    msg = str(excinfo.value)
    assert "\n" not in msg and needle in msg, msg


def test_cli_import_and_garbage(tmp_path, capsys):
    proto, _ = _every_op()
    src = tmp_path / "net.onnx"
    src.write_bytes(proto.SerializeToString())
    out = tmp_path / "net.qcnn"
    assert main(["import", str(src), "-o", str(out), "--name", "every"]) == 0
    assert "wrote" in capsys.readouterr().out
    model = qcnn.load(out)
    assert model.name == "every" and not model.quantized and model.spec.input == (4, 11, 11)
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 10)
    assert main(["import", str(tmp_path / "junk.onnx"), "-o", str(tmp_path / "j.qcnn")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a valid ONNX model" in err and not (tmp_path / "j.qcnn").exists()


# ---------------------------------------------------------------- round trip
@pytest.mark.parametrize("which", ["digits", "grouped"])
def test_round_trip_through_export(tmp_path, which):
    from qcnn.io import export_onnx

    if which == "digits":
        model = qcnn.load(DIGITS_MODEL)
    else:  # groups, LRN, padded Caffe-rounded pooling, dropout, fc on a feature map
        spec = NetSpec("grouped", (4, 13, 13), (
            Layer("c1", "conv", out=8, kernel=3, stride=2, pad=1, groups=2), Layer("r1", "relu"),
            Layer("n1", "lrn", size=5, alpha=1e-3, beta=0.75, k=2.0), Layer("p1", "pool", kernel=3, stride=2, pad=1),
            Layer("f1", "fc", out=9), Layer("d1", "dropout"), Layer("f2", "fc", out=4), Layer("s", "softmax")))
        model = qcnn.model.synthetic(spec, quantized=False, seed=2)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    back = import_onnx(path)
    assert back.spec.layers == model.spec.layers and back.spec.input == model.spec.input
    x = np.random.default_rng(0).standard_normal((5, *model.spec.input)).astype(np.float32)
    a = qcnn.compile(model).run(x)
    b = qcnn.compile(back).run(x)
    for name in model.spec.names:
        assert _rel(b[name], a[name]) <= 1e-5, name
