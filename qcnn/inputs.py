"""Where network inputs come from: image directories, ``.npy`` blobs, the authors' dataset.

Shared by ``qcnn run``, ``qcnn bench`` and ``qcnn quantize``; every problem is a one-line
:class:`QcnnError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import QcnnError
from .model import Model

__all__ = ["IMAGE_SUFFIXES", "DATASET_IMAGES", "DATASET_LABELS", "image_files", "read_images", "read_npy",
           "read_dataset"]

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".tif", ".tiff", ".gif", ".webp")
DATASET_IMAGES = "dataMatTst.single.bin"  #: the authors' speed-test images, float32 [N, 3, H, W]
DATASET_LABELS = "lablVecTst.uint16.bin"  #: their 0-based labels, uint16 [1, 1, 1, N]


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
    from .preprocess import preprocess

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
    from .seedio import read_bin

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
