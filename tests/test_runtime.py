"""Sessions: whole runs, slices, batches, timers and input checks."""

from __future__ import annotations

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError


@pytest.fixture(scope="module")
def session():
    return qcnn.compile(qcnn.model.synthetic("alexnet", seed=2), "reference")


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).standard_normal((3, 227, 227)).astype(np.float32) * 30


def test_call_single_and_batch(session, image):
    single = session(image)
    assert single.shape == (1, 1000)
    batch = session(np.stack([image, image * 0.5, -image]))
    assert batch.shape == (3, 1000)
    np.testing.assert_allclose(batch[0], single[0], rtol=1e-5, atol=1e-7)


def test_run_all_layers_and_times(session, image):
    out = session.run(image)
    assert list(out) == session.model.spec.names
    assert out["pool5"].shape == (1, 256, 6, 6) and out["fc6"].shape == (1, 4096)
    assert set(session.times) == set(out) and all(t >= 0 for t in session.times.values())


def test_run_slices_with_start(session, image):
    full = session.run(image)
    tail = session.run(full["relu6"], start="drop6", outputs=["fc8", "prob"])
    assert list(tail) == ["fc8", "prob"]
    np.testing.assert_array_equal(tail["prob"], full["prob"])
    middle = session.run(full["pool1"], start="conv2", stop="pool2")
    assert list(middle)[-1] == "pool2"
    np.testing.assert_array_equal(middle["pool2"], full["pool2"])


@pytest.mark.parametrize("x,message", [
    (np.zeros((3, 224, 224), np.float32), r"input for conv1 has shape \[3, 224, 224\]; expected \[N, 3, 227, 227\]"),
    (np.zeros((2, 1, 3, 227, 227), np.float32), "input for conv1 has shape"),
    (np.array(["a"]), "must be numeric"),
])
def test_wrong_inputs(session, x, message):
    with pytest.raises(QcnnError, match=message):
        session(x)


def test_unknown_layer_names(session, image):
    with pytest.raises(QcnnError, match="no layer named 'fc9'"):
        session.run(image, start="fc9")
    with pytest.raises(QcnnError, match="requested layer"):
        session.run(image, outputs=["conv1", "fc9"])


def test_threads_switch_gives_same_results(image):
    model = qcnn.model.synthetic("alexnet", seed=2)
    one = qcnn.compile(model, "reference", threads=1)(image)
    two = qcnn.compile(model, "reference", threads=2)(image)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-7)
    assert qcnn.plugin.get_threads() == 2
    qcnn.set_threads(1)
    with pytest.raises(QcnnError, match="threads must be a positive integer"):
        qcnn.set_threads(0)
