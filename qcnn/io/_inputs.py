"""Where network inputs come from: image directories, ``.npy`` blobs, the authors' dataset.

Shared by ``qcnn run``, ``qcnn bench`` and ``qcnn quantize``; every problem is a one-line
:class:`QcnnError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..model import ARCHS, Model, synthetic
from ._images import preprocess
from ._qcnn_file import load
from ._seed_files import read_bin

__all__ = ["load_model", "IMAGE_SUFFIXES", "DATASET_IMAGES", "DATASET_LABELS", "image_files", "read_images", "read_npy",
           "read_dataset",
           "Inputs", "random_inputs", "image_inputs", "dataset_inputs"]

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".tif", ".tiff", ".gif", ".webp")
DATASET_IMAGES = "dataMatTst.single.bin"  #: the authors' speed-test images, float32 [N, 3, H, W]
DATASET_LABELS = "lablVecTst.uint16.bin"  #: their 0-based labels, uint16 [1, 1, 1, N]
#: Random inputs: at most this many distinct images; batches cycle through them.
MAX_RANDOM_IMAGES = 100


def load_model(model: str | Path | Model | None = None) -> Model:
    """The models every command accepts: None (synthetic quantized AlexNet), a built-in
    architecture name (its synthetic quantized model), a ``.qcnn`` path, or a Model."""
    if model is None:
        return synthetic("alexnet")
    if isinstance(model, Model):
        return model
    text = str(model)
    if text.lower().replace("-", "_") in ARCHS and not Path(text).exists():
        return synthetic(text)
    if not Path(text).is_file():
        raise QcnnError(f"no such model file, and not a built-in architecture ({', '.join(ARCHS)})", text)
    return load(text)


def image_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The image files of ``directory``, sorted by name; an error when there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise QcnnError("not a directory of images", d)
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QcnnError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the directory", d)
    return files


def read_images(files: list[Path], model: Model) -> np.ndarray:
    """``files`` through the model's preprocessing: float32 [M, C, H, W]."""
    return np.ascontiguousarray(np.stack([preprocess(p, model) for p in files]), dtype=np.float32)


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """A numeric ``.npy`` array, loaded without pickle."""
    p = Path(path)
    try:
        x = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise QcnnError("no such file", p) from None
    except (ValueError, OSError, EOFError) as err:
        raise QcnnError(f"not a valid .npy array ({str(err).splitlines()[0]})", p) from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise QcnnError(f"holds dtype {getattr(x, 'dtype', type(x).__name__)}, expected numbers", p)
    return x


def read_dataset(directory: str | os.PathLike[str], model: Model,
                 count: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The authors' speed-test set: images float32 [N, C, H, W] (already preprocessed) and,
    when ``lablVecTst.uint16.bin`` is there, labels int64 [N]. ``count`` keeps the first ones."""
    d = Path(directory)
    data_path = d / DATASET_IMAGES
    if not data_path.is_file():
        raise QcnnError(f"not a dataset directory: it has no {DATASET_IMAGES}", d)
    data = read_bin(data_path, np.float32)
    want = tuple(model.spec.input)
    if data.ndim != 4 or tuple(data.shape[1:]) != want:
        raise QcnnError(f"holds {list(data.shape)}, the model takes [N, {', '.join(map(str, want))}]", data_path)
    labels = None
    label_path = d / DATASET_LABELS
    if label_path.is_file():
        raw = read_bin(label_path, np.uint16).ravel()
        if raw.size != data.shape[0]:
            raise QcnnError(f"has {raw.size} labels for {data.shape[0]} images in {DATASET_IMAGES}", label_path)
        labels = raw.astype(np.int64)
    keep = slice(None) if count is None else slice(max(1, count))
    return np.ascontiguousarray(data[keep]), None if labels is None else labels[keep]


@dataclass
class Inputs:
    """Images for the timed passes: ``images`` float32 [M, C, H, W] (preprocessed network
    inputs), ``labels`` int64 [M] (-1 = unknown) or None.

    Batch b of size B takes images b*B .. b*B+B-1; ``cycle`` wraps around past the last
    image (random inputs), otherwise the last image is reused (the authors' rule).
    """

    images: np.ndarray
    labels: np.ndarray | None
    kind: str
    source: str
    cycle: bool = False

    def indices(self, b: int, batch_size: int) -> np.ndarray:
        idx = np.arange(b * batch_size, (b + 1) * batch_size)
        m = len(self.images)
        return idx % m if self.cycle else np.minimum(idx, m - 1)

    def batch(self, b: int, batch_size: int) -> np.ndarray:
        """[B, C, H, W] float32 C-contiguous (a view when the images are consecutive)."""
        idx = self.indices(b, batch_size)
        if idx[-1] - idx[0] == batch_size - 1:
            return self.images[idx[0]:idx[-1] + 1]
        return np.ascontiguousarray(self.images[idx])

    def batch_labels(self, b: int, batch_size: int) -> np.ndarray | None:
        return None if self.labels is None else self.labels[self.indices(b, batch_size)]

    def describe(self) -> dict[str, Any]:
        labeled = 0 if self.labels is None else int((self.labels >= 0).sum())
        return {"kind": self.kind, "source": self.source, "count": int(len(self.images)), "labeled": labeled}


def random_inputs(shape: tuple[int, ...], count: int, seed: int = 0) -> Inputs:
    """``min(count, 100)`` seeded images, uniform in [-128, 128) like mean-subtracted pixels."""
    n = max(1, min(count, MAX_RANDOM_IMAGES))
    rng = np.random.default_rng(seed)
    images = rng.uniform(-128.0, 128.0, size=(n, *shape)).astype(np.float32)
    return Inputs(images, None, "random", f"uniform[-128, 128), seed {seed}", cycle=True)


def image_inputs(directory: str | os.PathLike[str], model: Model, count: int,
                 labels: Mapping[str, int] | None = None) -> Inputs:
    """The first ``count`` images of ``directory`` (sorted by name), preprocessed for ``model``.

    ``labels`` maps an image's base name without extension to its 0-based class id.
    """
    files = image_files(directory)[:max(1, count)]
    lab = None if labels is None else np.array([labels.get(p.stem, -1) for p in files], np.int64)
    return Inputs(read_images(files, model), lab, "images", str(directory))


def dataset_inputs(directory: str | os.PathLike[str], model: Model, count: int) -> Inputs:
    """The authors' speed-test set (:func:`qcnn.inputs.read_dataset`), first ``count`` images."""
    images, labels = read_dataset(directory, model, count)
    return Inputs(images, labels, "dataset", str(directory))
