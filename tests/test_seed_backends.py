"""Every backend on all 10 real seed images: each layer against the reference (which
reproduces the authors' program), and against the authors' own dumps where they exist."""

from __future__ import annotations

import os

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn.plugin import backend_specs, load_backend
from qcnn.testing import assert_close

IMAGES = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 11)]
DUMPED = ("conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8", "prob")
BACKENDS = [name for name in ("numpy", "numba", "cffi", "example") if name in backend_specs()]


@pytest.fixture(scope="module")
def batch(seed_dir, seed_model):
    """The 10 seed images preprocessed, [10, 3, 227, 227], and the reference's every layer."""
    x = np.stack([qcnn.preprocess(seed_dir / "images" / f"{name}.BMP", seed_model) for name in IMAGES])
    return x, qcnn.compile(seed_model, "reference").run(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow  # a few seconds: CI runs it too
def test_backend_on_all_seed_images(backend, batch, seed_dir, seed_model):
    try:
        load_backend(backend)
    except QcnnError as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))
    x, ref = batch
    out = qcnn.compile(seed_model, backend).run(x)
    for i, name in enumerate(IMAGES):
        for layer in seed_model.spec.names:
            assert_close(out[layer][i], ref[layer][i], f"{backend} {name} {layer}")
        dump = seed_dir / "reference" / f"{name}.npz"
        if dump.exists():
            want = np.load(dump)
            for layer in DUMPED:
                assert_close(out[layer][i], want[layer], f"{backend} {name} {layer} vs the authors' dump")
