"""load_seed / save_seed: the published AlexNet, round trips, float mode, raw assignments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn.io import read_bin, read_cbn, write_raw_asmt

PREFIX = "bvlc_alexnet_aCaF"

#: seed-format.md section 1: layer -> (file index, ctrdLst [S, K, D], assignment dims, bits, bias size)
TABLE = {
    "conv1": ("01", (1, 128, 8), (96, 11, 11, 1), 7, 96),
    "conv2": ("05", (6, 128, 8), (256, 5, 5, 6), 7, 256),
    "conv3": ("09", (32, 128, 8), (384, 3, 3, 32), 7, 384),
    "conv4": ("11", (24, 128, 8), (384, 3, 3, 24), 7, 384),
    "conv5": ("13", (24, 128, 8), (256, 3, 3, 24), 7, 256),
    "fc6": ("16", (2304, 32, 4), (4096, 2304), 5, 4096),
    "fc7": ("19", (1024, 32, 4), (4096, 1024), 5, 4096),
    "fc8": ("22", (4096, 16, 1), (1000, 4096), 4, 1000),
}


def test_published_alexnet_matches_the_table(seed_model: qcnn.Model) -> None:
    spec = seed_model.spec
    assert spec.name == "alexnet" and len(spec.layers) == 23
    for name, (nn, ctrd, asmt, bits, nbias) in TABLE.items():
        layer = spec.layer(name)
        assert spec.index(name) + 1 == int(nn)
        s, k, d = ctrd
        assert layer.quant == qcnn.Quant(d, k) and layer.quant.bits == bits
        p = seed_model.params[name]
        assert p["codebook"].shape == ctrd and p["codebook"].dtype == np.float32
        assert p["codes"].shape == asmt and p["codes"].dtype == np.uint8
        assert p["bias"].shape == (nbias,)
    assert seed_model.mean.shape == (3, 256, 256)
    assert np.allclose(seed_model.mean.mean(axis=(1, 2)), [104.0, 116.7, 122.7], atol=0.05)
    # conv1: D = 8 but only 3 input channels; the 5 unused codeword components are exact zeros
    assert not seed_model.params["conv1"]["codebook"][:, :, 3:].any()


def test_tensors_are_the_file_contents(seed_model: qcnn.Model, seed_dir: Path) -> None:
    bdir = seed_dir / "Bin.Files"
    for name, (nn, *_rest) in TABLE.items():
        p = seed_model.params[name]
        assert np.array_equal(p["codebook"], read_bin(bdir / f"{PREFIX}.ctrdLst.{nn}.bin", np.float32))
        assert np.array_equal(p["bias"], read_bin(bdir / f"{PREFIX}.biasVec.{nn}.bin", np.float32))
        cbn = (seed_dir / "fc6-synthetic" if name == "fc6" else bdir) / f"{PREFIX}.asmtLst.{nn}.cbn"
        assert np.array_equal(p["codes"], read_cbn(cbn)[0])


def test_parent_directory_and_default_mean(seed_dir: Path, seed_model: qcnn.Model) -> None:
    """The parent of Bin.Files works too, and the mean image is found beside Bin.Files."""
    model = qcnn.load_seed(seed_dir, extra_dirs=[seed_dir / "fc6-synthetic"])
    assert model.spec == seed_model.spec
    assert np.array_equal(model.mean, seed_model.mean)


def test_save_then_load_round_trip(seed_model: qcnn.Model, seed_dir: Path, tmp_path: Path) -> None:
    qcnn.save_seed(seed_model, tmp_path)
    # every assignment file comes out byte for byte as published
    for name, (nn, *_rest) in TABLE.items():
        src = (seed_dir / "fc6-synthetic" if name == "fc6" else seed_dir / "Bin.Files") / f"{PREFIX}.asmtLst.{nn}.cbn"
        assert (tmp_path / src.name).read_bytes() == src.read_bytes(), src.name
        for kind in ("ctrdLst", "biasVec"):
            src = seed_dir / "Bin.Files" / f"{PREFIX}.{kind}.{nn}.bin"
            assert (tmp_path / src.name).read_bytes() == src.read_bytes(), src.name
    assert (tmp_path / "imagenet_mean.single.bin").read_bytes() == (seed_dir / "imagenet_mean.single.bin").read_bytes()
    back = qcnn.load_seed(tmp_path)
    _assert_models_equal(back, seed_model)


def _assert_models_equal(a: qcnn.Model, b: qcnn.Model) -> None:
    assert a.spec == b.spec
    assert set(a.params) == set(b.params)
    for lname in a.params:
        assert set(a.params[lname]) == set(b.params[lname])
        for tname, arr in a.params[lname].items():
            other = b.params[lname][tname]
            assert arr.dtype == other.dtype and np.array_equal(arr, other), f"{lname}.{tname}"


@pytest.mark.slow  # a few seconds: CI runs it too
def test_float_mode_round_trip(tmp_path: Path) -> None:
    model = qcnn.model.synthetic("alexnet", quantized=False, seed=3)
    qcnn.save_seed(model, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f"{PREFIX}.convKnl.01.bin" in names and f"{PREFIX}.fcntWei.22.bin" in names
    assert not any("ctrdLst" in n or "asmtLst" in n for n in names)
    assert read_bin(tmp_path / f"{PREFIX}.convKnl.05.bin", np.float32).shape == (256, 48, 5, 5)
    assert read_bin(tmp_path / f"{PREFIX}.fcntWei.16.bin", np.float32).shape == (4096, 9216)
    back = qcnn.load_seed(tmp_path, arch="alexnet")
    assert not back.quantized
    _assert_models_equal(back, model)


def test_mixed_float_and_quantized_layers(tmp_path: Path) -> None:
    model = qcnn.model.synthetic("alexnet", quantized=True, seed=4, layers={"conv2": None, "fc7": "2:64"})
    qcnn.save_seed(model, tmp_path)
    back = qcnn.load_seed(tmp_path)
    assert back.spec.layer("conv2").quant is None
    assert back.spec.layer("fc7").quant == qcnn.Quant(2, 64)
    _assert_models_equal(back, model)


def test_float_weights_never_hide_behind_a_codebook(tmp_path: Path) -> None:
    qcnn.save_seed(qcnn.model.synthetic("alexnet", seed=1), tmp_path)
    with pytest.raises(QcnnError) as e:
        qcnn.save_seed(qcnn.model.synthetic("alexnet", quantized=False, seed=1), tmp_path)
    assert "ctrdLst.01.bin" in str(e.value) and "\n" not in str(e.value)


def test_raw_one_based_assignments_are_read(seed_model: qcnn.Model, tmp_path: Path) -> None:
    """Without a .cbn, the converter's raw uint8 asmtLst.NN.bin (1-based) is used."""
    qcnn.save_seed(seed_model, tmp_path)
    cbn = tmp_path / f"{PREFIX}.asmtLst.13.cbn"
    codes, _ = read_cbn(cbn)
    cbn.unlink()
    write_raw_asmt(tmp_path / f"{PREFIX}.asmtLst.13.bin", codes)
    back = qcnn.load_seed(tmp_path)
    assert np.array_equal(back.params["conv5"]["codes"], seed_model.params["conv5"]["codes"])


def test_other_architectures_and_prefixes(tmp_path: Path) -> None:
    model = qcnn.model.synthetic("vgg_cnn_s", seed=2)
    qcnn.save_seed(model, tmp_path)
    assert (tmp_path / "vgg_cnn_s_aCaF.ctrdLst.15.bin").exists()  # fc6 is layer 15 in VggCnnS
    assert read_bin(tmp_path / "imagenet_mean.single.bin", np.float32).shape == (3, 224, 224)
    _assert_models_equal(qcnn.load_seed(tmp_path, arch="vgg_cnn_s"), model)
    qcnn.save_seed(model, tmp_path / "p", prefix="mine")
    _assert_models_equal(qcnn.load_seed(tmp_path / "p", arch="vgg_cnn_s", prefix="mine"), model)
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(tmp_path / "p", arch="vgg_cnn_s")
    assert "vgg_cnn_s_aCaF.ctrdLst.01.bin" in str(e.value)


def test_wrong_architecture_names_the_file(seed_dir: Path, tmp_path: Path) -> None:
    """AlexNet files read as CaffeNet-FGD (fc8 with 200 outputs) fail on fc8's files."""
    root = tmp_path / "m"
    shutil.copytree(seed_dir / "Bin.Files", root)
    shutil.copy(seed_dir / "fc6-synthetic" / f"{PREFIX}.asmtLst.16.cbn", root)
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root, arch="caffenet_fgd", prefix=PREFIX, mean=seed_dir / "imagenet_mean.single.bin")
    msg = str(e.value)
    assert f"{PREFIX}.asmtLst.22.cbn" in msg and "[200, 4096]" in msg and "\n" not in msg


def test_bad_directory_arguments(tmp_path: Path, seed_dir: Path) -> None:
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(e.value)
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(seed_dir, extra_dirs=[tmp_path / "nope"])
    assert str(tmp_path / "nope") in str(e.value)
