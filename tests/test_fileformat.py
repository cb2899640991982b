"""The .qcnn file: round trips, bit-packed size, atomic saves, and corrupt files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import yaml

import qcnn
from qcnn import QcnnError
from qcnn.io import pack_codes, unpack_codes
from qcnn.model import Quant


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    model = qcnn.model.synthetic("alexnet", seed=3)
    path = tmp_path_factory.mktemp("m") / "alexnet.qcnn"
    qcnn.save(model, path)
    return model, path


def test_round_trip_is_exact(alexnet_file):
    model, path = alexnet_file
    loaded = qcnn.load(path)
    assert loaded.spec == model.spec
    for lname, tensors in model.params.items():
        for tname, arr in tensors.items():
            assert np.array_equal(loaded.params[lname][tname], arr), (lname, tname)


def test_quantized_alexnet_file_size(alexnet_file):
    _, path = alexnet_file
    assert path.stat().st_size <= 14e6  # codes bit-packed at 7/5/4 bits; a float AlexNet is ~244 MB


def test_mixed_float_and_quantized_layers(tmp_path):
    model = qcnn.model.synthetic("caffenet", seed=1, layers={"conv1": None, "fc8": None, "conv3": "4:16"})
    qcnn.save(model, tmp_path / "m.qcnn")
    loaded = qcnn.load(tmp_path / "m.qcnn")
    ops = {layer.name: layer.op for layer in loaded.spec.layers}
    assert ops["conv1"] == "conv" and ops["fc8"] == "fc" and ops["conv2"] == "qconv"
    assert loaded.spec.layer("conv3").quant == Quant(4, 16)


@pytest.mark.parametrize("bits", range(1, 9))
def test_bitpack_round_trip(bits):
    codes = np.random.default_rng(bits).integers(0, 2 ** bits, size=1001, dtype=np.uint8)
    packed = pack_codes(codes, bits)
    assert packed.size == -(-1001 * bits // 8)
    assert np.array_equal(unpack_codes(packed, bits, 1001), codes)


def test_bitpack_is_msb_first():
    assert pack_codes(np.array([3, 17, 0, 31], np.uint8), 5).tobytes() == bytes([0x1C, 0x41, 0xF0])


def test_save_is_atomic(tmp_path, monkeypatch):
    model = qcnn.model.synthetic("alexnet")
    path = tmp_path / "m.qcnn"
    path.write_bytes(b"previous contents")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(RuntimeError):
        qcnn.save(model, path)
    assert path.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["m.qcnn"]  # no temporary file left behind


def _rewrite(src, dst, edit_manifest=None, edit_member=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "qcnn.yaml" and edit_manifest:
                manifest = yaml.safe_load(data)
                edit_manifest(manifest)
                data = yaml.safe_dump(manifest).encode()
            elif edit_member and info.filename in edit_member:
                data = edit_member[info.filename](data)
            zout.writestr(info.filename, data)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _set(path, value):
    def edit(m):
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


@pytest.mark.parametrize("case,message", [
    ("truncated", "not a .qcnn file"),
    ("not_zip", "not a .qcnn file"),
    ("version", "format version 99 is not supported"),
    ("bits", "bit width 12, outside 1..8"),
    ("unknown_layer_type", "unknown type 'attention'"),
    ("unknown_field", "unknown field(s) extra"),
    ("codes_out_of_range", "conv1.codes has code 200, out of range for K=128"),
    ("nan", "fc8.bias contains NaN or Inf"),
    ("shape", "fc7.bias has shape [4095], the architecture needs [4096]"),
    ("absurd_npy_header", "header claims shape"),
    ("missing_member", "archive member fc6/bias.npy is missing"),
    ("packed_size", "tensor fc6/codes holds 10 packed bytes"),
])
def test_corrupt_files_give_one_line_errors(alexnet_file, tmp_path, case, message):
    _, good = alexnet_file
    bad = tmp_path / f"{case}.qcnn"
    blob = good.read_bytes()
    if case == "truncated":
        bad.write_bytes(blob[: len(blob) // 2])
    elif case == "not_zip":
        bad.write_bytes(b"GIF89a" + bytes(100))
    elif case == "version":
        _rewrite(good, bad, _set(["version"], 99))
    elif case == "bits":
        _rewrite(good, bad, _set(["tensors", "fc6/codes", "bits"], 12))
    elif case == "unknown_layer_type":
        _rewrite(good, bad, lambda m: m["spec"]["layers"][1].update(type="attention"))
    elif case == "unknown_field":
        _rewrite(good, bad, _set(["extra"], 1))
    elif case == "codes_out_of_range":
        shape = [96, 11, 11, 1]
        codes = np.full(shape, 200, np.uint8)
        _rewrite(good, bad, _set(["tensors", "conv1/codes", "bits"], 8),
                 {"conv1/codes.npy": lambda d: _npy(pack_codes(codes, 8))})
    elif case == "nan":
        _rewrite(good, bad, None, {"fc8/bias.npy": lambda d: _npy(np.full(1000, np.nan, np.float32))})
    elif case == "shape":
        _rewrite(good, bad, _set(["tensors", "fc7/bias", "shape"], [4095]),
                 {"fc7/bias.npy": lambda d: _npy(np.zeros(4095, np.float32))})
    elif case == "absurd_npy_header":
        huge = b"\x93NUMPY\x01\x00" + b"v\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647), }".ljust(118) + b"\n"
        _rewrite(good, bad, None, {"fc6/codebook.npy": lambda d: huge})
    elif case == "missing_member":
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
            for info in zin.infolist():
                if info.filename != "fc6/bias.npy":
                    zout.writestr(info.filename, zin.read(info))
    elif case == "packed_size":
        _rewrite(good, bad, None, {"fc6/codes.npy": lambda d: _npy(np.zeros(10, np.uint8))})
    with pytest.raises(QcnnError) as err:
        qcnn.load(bad)
    text = str(err.value)
    assert message in text and str(bad) in text and "\n" not in text


def test_missing_file():
    with pytest.raises(QcnnError, match="no such file"):
        qcnn.load("/nonexistent/model.qcnn")
