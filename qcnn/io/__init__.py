"""Files in and out: the ``.qcnn`` file, the authors' formats, ONNX, images and input sources.

* :func:`load` / :func:`save`: the versioned ``.qcnn`` file (atomic writes, bit-packed codes);
* :func:`load_seed` / :func:`save_seed`: the authors' ``Bin.Files`` (``.bin``, ``.cbn``);
  :func:`read_bin`, :func:`read_cbn`, :func:`write_bin`, :func:`write_cbn` for single files;
* :func:`import_onnx` / :func:`export_onnx`: float networks from and to ONNX;
* :func:`preprocess` / :func:`read_image`: an image through a model's pipeline;
* :func:`load_model` and the input sources of the commands (:class:`Inputs`, image
  directories, ``.npy`` blobs, the authors' dataset).

Everything read here is untrusted: every problem is a one-line :class:`~qcnn.QcnnError`
naming the file.
"""

from __future__ import annotations

from ._bitpack import pack_codes, packed_size, unpack_codes
from ._images import MAX_PIXELS, preprocess, read_image, resize_bilinear
from ._inputs import (DATASET_IMAGES, DATASET_LABELS, IMAGE_SUFFIXES, Inputs, dataset_inputs, image_files, image_inputs,
                      load_model, random_inputs, read_dataset, read_images, read_npy)
from ._onnx_export import INPUT_NAME, OPSET, build_onnx, export_onnx
from ._onnx_import import SUPPORTED_OPS, import_onnx, onnx_to_model
from ._qcnn_file import FORMAT_VERSION, atomic_write, load, save
from ._seed import MEAN_FILE, load_seed, save_seed, seed_file_name
from ._seed_files import cbn_size, read_bin, read_cbn, read_raw_asmt, write_bin, write_cbn, write_raw_asmt

__all__ = [
    "DATASET_IMAGES", "DATASET_LABELS", "FORMAT_VERSION", "IMAGE_SUFFIXES", "INPUT_NAME", "MAX_PIXELS", "MEAN_FILE", "OPSET",
    "SUPPORTED_OPS",
    "Inputs", "atomic_write", "build_onnx", "cbn_size", "dataset_inputs", "export_onnx", "image_files",
    "image_inputs", "import_onnx", "load", "load_model", "load_seed", "onnx_to_model", "pack_codes", "packed_size",
    "preprocess", "random_inputs", "read_bin", "read_cbn", "read_dataset", "read_image", "read_images", "read_npy",
    "read_raw_asmt", "resize_bilinear", "save", "save_seed", "seed_file_name", "unpack_codes", "write_bin",
    "write_cbn", "write_raw_asmt",
]
