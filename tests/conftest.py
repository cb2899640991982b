"""Shared fixtures. Real data lives in ``../shared`` (override with QCNN_SHARED=path).

Without it, tests that need it skip with the reason, except under CI=true, where a
missing ``shared`` directory fails them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("QCNN_SHARED", ROOT.parent / "shared"))
SEED = SHARED / "seed-alexnet"


def _need(path: Path) -> Path:
    if path.exists():
        return path
    message = f"{path} not found: set QCNN_SHARED to the directory holding seed-alexnet/"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """``shared/seed-alexnet``: the authors' AlexNet, images, labels and reference dumps."""
    return _need(SEED)


@pytest.fixture(scope="session")
def seed_model(seed_dir: Path):
    """The published quantized AlexNet with the fc6 stand-in, as a Model."""
    import qcnn

    return qcnn.load_seed(seed_dir / "Bin.Files", arch="alexnet", extra_dirs=[seed_dir / "fc6-synthetic"],
                          mean=seed_dir / "imagenet_mean.single.bin")
