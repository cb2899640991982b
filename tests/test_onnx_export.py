"""ONNX export: the exported graph computes the float twin layer by layer.

Run with onnx's own reference evaluator (``onnx`` is in the test extra), and with ONNX
Runtime when it is installed (the ``peers`` extra).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import qcnn
from qcnn import reference as ref
from qcnn.bench._protocol import float_twin
from qcnn.model import parse_spec

onnx = pytest.importorskip("onnx", reason="onnx is in the test extra: pip install -e '.[test]'")

from qcnn.io import INPUT_NAME, build_onnx, export_onnx  # noqa: E402

# LRN with a large alpha, so that alpha vs alpha/size matters far beyond 1e-4; both pools
# round up where floor would differ (pool1 12 -> 6, not 5; pool2, padded, 6 -> 4, not 3).
TINY = {
    "name": "tiny",
    "input": [4, 23, 23],
    "layers": [
        {"name": "conv1", "type": "conv", "out": 8, "kernel": 3, "stride": 2, "pad": 1},
        {"name": "relu1", "type": "relu"},
        {"name": "norm1", "type": "lrn", "size": 5, "alpha": 0.5, "beta": 0.75, "k": 2.0},
        {"name": "pool1", "type": "pool", "kernel": 3, "stride": 2},
        {"name": "conv2", "type": "conv", "out": 6, "kernel": 3, "pad": 1, "groups": 2},
        {"name": "relu2", "type": "relu"},
        {"name": "pool2", "type": "pool", "kernel": 3, "stride": 2, "pad": 1},
        {"name": "fc1", "type": "fc", "out": 12},
        {"name": "relu3", "type": "relu"},
        {"name": "drop1", "type": "dropout"},
        {"name": "fc2", "type": "fc", "out": 5},
        {"name": "prob", "type": "softmax"},
    ],
}


def tiny_spec():
    return parse_spec(TINY, "tiny test spec")


def tiny_model(quantized: bool):
    return qcnn.model.synthetic(tiny_spec(), quantized=quantized, seed=3, conv="2:4", fc="4:8", last_fc="3:4")


def _inputs(n: int = 2) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 4, 23, 23)).astype(np.float32)


def _evaluator(proto):
    """onnx's reference evaluator, with LRN written from the ONNX operator spec: onnx's own
    ``op_lrn.LRN`` loops its channel index over the batch axis (``range(x.shape[0])``), so it
    leaves the square sums of channels >= N at zero."""
    import math

    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops.op_lrn import LRN as _OnnxLRN

    class LRN(_OnnxLRN):
        def _run(self, x, alpha=None, beta=None, bias=None, size=None):
            lo, hi = math.floor((size - 1) / 2), math.ceil((size - 1) / 2)
            square_sum = np.zeros_like(x)
            for c in range(x.shape[1]):
                square_sum[:, c] = (x[:, max(0, c - lo):min(x.shape[1], c + hi + 1)] ** 2).sum(axis=1)
            return ((x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype),)

    return ReferenceEvaluator(proto, new_ops=[LRN])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _qcnn_outputs(model: qcnn.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    return qcnn.compile(float_twin(model), "reference").run(x)


def test_shapes_cover_the_cases():
    spec = tiny_spec()
    shapes = dict(zip(spec.names, spec.shapes()[1:]))
    assert shapes["conv1"] == (8, 12, 12) and shapes["pool1"] == (8, 6, 6)  # ceil(9 / 2) + 1
    assert shapes["conv2"] == (6, 6, 6) and shapes["pool2"] == (6, 4, 4)  # ceil((6 + 2 - 3) / 2) + 1


@pytest.mark.parametrize("quantized", [False, True])
def test_graph_matches_float_twin_layer_by_layer(quantized):
    model = tiny_model(quantized)
    names = tuple(model.spec.names)
    proto = build_onnx(model, extra_outputs=names)
    x = _inputs()
    got = dict(zip(names, _evaluator(proto).run(list(names), {INPUT_NAME: x})))
    want = _qcnn_outputs(model, x)
    for name in names:
        assert got[name].shape == want[name].shape, name
        assert _rel(got[name], want[name]) <= 1e-4, name


def test_lrn_convention_is_alpha_over_size():
    """ONNX LRN scales alpha by 1/size like Caffe; the check is sensitive to the difference."""
    model = tiny_model(False)
    proto = build_onnx(model, extra_outputs=("relu1", "norm1"))
    x = _inputs()
    relu1, norm1 = _evaluator(proto).run(["relu1", "norm1"], {INPUT_NAME: x})
    right = ref.lrn(relu1, 5, 0.5, 0.75, 2.0)
    wrong = ref.lrn(relu1, 5, 0.5 * 5, 0.75, 2.0)  # what alpha without the 1/size would give
    assert _rel(norm1, right) <= 1e-5
    assert _rel(norm1, wrong) > 1e-2


def test_onnxruntime_agrees():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the peers extra")
    model = tiny_model(True)
    names = tuple(model.spec.names)
    sess = ort.InferenceSession(build_onnx(model, extra_outputs=names).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    x = _inputs(3)
    got = dict(zip(names, sess.run(list(names), {INPUT_NAME: x})))
    want = _qcnn_outputs(model, x)
    for name in names:
        assert _rel(got[name], want[name]) <= 1e-4, name


def test_quantized_export_uses_decoded_weights():
    model = tiny_model(True)
    proto = build_onnx(model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    p = model.params["conv2"]
    np.testing.assert_array_equal(inits["conv2.weight"], ref.decode_conv_weight(p["codebook"], p["codes"], 4))
    p = model.params["fc1"]
    np.testing.assert_array_equal(inits["fc1.weight"], ref.decode_fc_weight(p["codebook"], p["codes"], 6 * 4 * 4))
    ops = [n.op_type for n in proto.graph.node]
    assert "Dropout" not in ops and ops.count("Gemm") == 2 and ops.count("LRN") == 1
    pools = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    ceil = {n.name: next(a.i for a in n.attribute if a.name == "ceil_mode") for n in pools}
    assert ceil == {"pool1": 1, "pool2": 0}


def test_export_writes_a_loadable_file(tmp_path):
    path = export_onnx(tiny_model(True), tmp_path / "tiny.onnx")
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    assert [o.name for o in loaded.graph.output] == ["prob"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]


def test_unknown_extra_output_is_a_qcnn_error():
    with pytest.raises(qcnn.QcnnError, match="no layer 'nope'"):
        build_onnx(tiny_model(False), extra_outputs=("nope",))


def test_missing_onnx_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(qcnn.QcnnError, match=r'pip install "qcnn\[peers\]"'):
        build_onnx(tiny_model(False))
