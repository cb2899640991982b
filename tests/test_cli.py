"""The CLI end to end, on the real seed files, and its error behaviour."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qcnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]


def qcnn_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qcnn", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def converted(seed_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "alexnet.qcnn"
    assert main(["convert", str(seed_dir / "Bin.Files"), "--arch", "alexnet",
                 "--extra-dir", str(seed_dir / "fc6-synthetic"), "-o", str(out)]) == 0
    return out


def test_info_prints_the_papers_numbers(capsys):
    assert main(["info", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "724.4M -> 174.3M" in out and "4.156x theoretical speed-up" in out and "18.5x compression" in out
    assert main(["info", "alexnet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["totals"]["speedup"], 3) == 4.156 and len(data["layers"]) == 23


def test_converted_model_size_and_info(converted, capsys):
    assert converted.stat().st_size <= 14e6
    assert main(["info", str(converted)]) == 0
    assert "4.156x" in capsys.readouterr().out


@pytest.mark.parametrize("image", IMAGES)
def test_run_all_layers_reproduces_the_authors_dumps(converted, seed_dir, tmp_path, image):
    out = tmp_path / "layers.npz"
    assert main(["run", str(converted), str(seed_dir / "images" / f"{image}.BMP"), "--layers", "all", "-o", str(out)]) == 0
    got = np.load(out)
    want = np.load(seed_dir / "reference" / f"{image}.npz")
    for key in ("conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5", "pool5",
                "fc6", "fc7", "fc8", "prob"):
        err = np.abs(got[key] - want[key]).max() / np.abs(want[key]).max()
        assert err <= 1e-4, (key, err)
    # The probe: relu6 straight into fc8 and the softmax.
    relu6 = tmp_path / "relu6.npy"
    np.save(relu6, got["relu6"])
    probe = tmp_path / "probe.npz"
    assert main(["run", str(converted), str(relu6), "--start", "fc8", "--layers", "fc8,prob", "-o", str(probe)]) == 0
    p = np.load(probe)
    assert np.abs(p["fc8"] - want["probe_fc8"]).max() <= 1e-4 * np.abs(want["probe_fc8"]).max()
    assert np.argmax(p["prob"]) == np.argmax(want["probe_prob"])


def test_to_seed_round_trip_is_byte_identical(converted, seed_dir, tmp_path):
    assert main(["convert", str(converted), "--to-seed", str(tmp_path / "out")]) == 0
    for real in sorted((seed_dir / "Bin.Files").glob("*.cbn")) + [seed_dir / "fc6-synthetic" / "bvlc_alexnet_aCaF.asmtLst.16.cbn"]:
        assert (tmp_path / "out" / real.name).read_bytes() == real.read_bytes(), real.name


def test_classify_with_names_and_truth(converted, seed_dir, capsys):
    image = seed_dir / "images" / "ILSVRC2012_val_00000001.BMP"
    assert main(["classify", str(image), "--model", str(converted), "--labels", str(seed_dir / "labels" / "class_names.txt"),
                 "--truth", str(seed_dir / "labels" / "image_labels.txt"), "--top", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert len(result["top"]) == 3 and result["top"][0]["class"] == 788  # the fc6 stand-in's degenerate class
    assert result["top"][0]["name"].startswith("shoe shop")
    assert result["truth"] == {"class": 65, "name": "sea snake", "rank": result["truth"]["rank"]}


def test_backends_lists_reference(capsys):
    assert main(["backends", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)["backends"]}
    assert records["reference"]["available"] is True


@pytest.mark.parametrize("args,message", [
    (["info", "/nonexistent.qcnn"], "no such model file"),
    (["run", "alexnet", "/nonexistent.png", "-o", "{tmp}/o.npz"], "/nonexistent.png"),
    (["run", "alexnet", "{tmp}/notes.png", "-o", "{tmp}/o.npz"], "notes.png"),
    (["run", "alexnet", "{tmp}/wrong.npy", "-o", "{tmp}/o.npz"], "input for conv1 has shape [3, 5, 5]"),
    (["run", "alexnet", "{tmp}/wrong.npy", "--backend", "nope", "-o", "{tmp}/o.npz"], "unknown backend 'nope'"),
    (["convert", "{tmp}", "--arch", "alexnet", "-o", "{tmp}/x.qcnn"], "bvlc_alexnet_aCaF"),
    (["classify", "{tmp}/notes.png", "--model", "alexnet", "--top", "0"], "--top must be at least 1"),
])
def test_errors_are_one_line_with_nonzero_exit(tmp_path, args, message):
    (tmp_path / "notes.png").write_text("these are not pixels")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5, 5), np.float32))
    proc = qcnn_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "x.qcnn").exists()


@pytest.mark.slow  # a few seconds: CI runs it too
def test_help_everywhere():
    from qcnn.cli import COMMANDS

    for command in [[]] + [[name] for name in COMMANDS]:
        proc = qcnn_cli(*command, "--help")
        assert proc.returncode == 0 and "usage: qcnn" in proc.stdout


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"^python -m pip install -e .*$", ci, re.M).group(0)
    test = re.search(r"^python -m pytest.*$", ci, re.M).group(0)
    assert f"```sh\n{install}\n{test}\n```" in readme
    assert "```sh\nqcnn bench\n```" in readme
