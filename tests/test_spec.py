"""Network specs: parsing, shape inference, and one-line errors for bad specs."""

from __future__ import annotations

import pytest
import yaml

from qcnn import QcnnError
from qcnn import model as zoo
from qcnn.model import Quant, parse_spec, read_spec, spec_to_dict

ALEXNET_NAMES = ("conv1 relu1 norm1 pool1 conv2 relu2 norm2 pool2 conv3 relu3 conv4 relu4 conv5 relu5 pool5 "
                 "fc6 relu6 drop6 fc7 relu7 drop7 fc8 prob").split()


def test_alexnet_layer_names_and_map_sizes():
    spec = zoo.arch_spec("alexnet")
    assert spec.names == ALEXNET_NAMES
    shapes = dict(zip(spec.names, spec.shapes()[1:]))
    assert shapes["conv1"] == (96, 55, 55) and shapes["pool1"] == (96, 27, 27)
    assert shapes["pool2"] == (256, 13, 13) and shapes["pool5"] == (256, 6, 6)
    assert shapes["fc6"] == (4096,) and shapes["prob"] == (1000,)


@pytest.mark.parametrize("arch,layers,out", [("alexnet", 23, 1000), ("caffenet", 23, 1000), ("vgg_cnn_s", 22, 1000),
                                             ("vgg16", 39, 1000), ("caffenet_fgb", 23, 518), ("caffenet_fgd", 23, 200)])
def test_builtin_architectures(arch, layers, out):
    spec = zoo.arch_spec(arch)
    assert len(spec.layers) == layers and spec.shapes()[-1] == (out,)


def test_caffenet_pools_before_lrn_and_vgg_cnn_s_sizes():
    assert zoo.arch_spec("caffenet").names[2:4] == ["pool1", "norm1"]
    shapes = dict(zip(zoo.arch_spec("vgg_cnn_s").names, zoo.arch_spec("vgg_cnn_s").shapes()[1:]))
    assert shapes["conv1"] == (96, 109, 109) and shapes["pool1"] == (96, 37, 37)  # ceil rounding


def test_round_trip_through_yaml(tmp_path):
    spec = zoo.quantize_spec(zoo.arch_spec("alexnet"), {"conv2": Quant(4, 64)})
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(spec_to_dict(spec)))
    assert read_spec(path) == spec


def _alexnet_dict():
    return spec_to_dict(zoo.arch_spec("alexnet"))


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["layers"][0].update(type="deconv"), "unknown type 'deconv'"),
    (lambda d: d["layers"][0].update(dilation=2), "unknown field(s) dilation"),
    (lambda d: d.update(optimizer="sgd"), "unknown top-level field(s) optimizer"),
    (lambda d: d["layers"][0].update(kernel=-3), "field kernel must be an integer >= 1"),
    (lambda d: d["layers"][0].update(quant={"D": 8, "K": 300}), "K must be an integer in 2..256"),
    (lambda d: d["layers"][0].update(quant="0:16"), "D must be a positive integer"),
    (lambda d: d["layers"][4].update(groups=5), "do not split into 5 groups"),
    (lambda d: d.update(input=[3, -1, 227]), "'input' must be [C, H, W]"),
    (lambda d: d["layers"].append({"name": "prob", "type": "softmax"}), "duplicate layer name(s) prob"),
    (lambda d: d["layers"][2].update(alpha=float("nan")), "must be a finite number"),
])
def test_bad_specs_give_one_line_errors(mutate, message):
    raw = _alexnet_dict()
    mutate(raw)
    with pytest.raises(QcnnError) as err:
        parse_spec(raw, "net.yaml")
    assert message in str(err.value) and "net.yaml" in str(err.value) and "\n" not in str(err.value)


def test_unreadable_spec_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layers: [\n")
    with pytest.raises(QcnnError, match="bad.yaml: not a valid YAML spec"):
        read_spec(path)


def test_quant_bits():
    assert [Quant(8, k).bits for k in (2, 16, 32, 128, 256)] == [1, 4, 5, 7, 8]
    assert Quant(8, 128).subspaces(3) == 1 and Quant(8, 128).subspaces(48) == 6
