"""The ``.qcnn`` file: one zip archive (stored, not compressed) holding

* ``qcnn.yaml``: ``{format: qcnn, version: 1, spec: {...}, tensors: {...}}``, where each
  tensor entry gives its member file, dtype, shape and, for codes, the bit width;
* one ``.npy`` member per tensor (``allow_pickle=False``); codes are stored bit-packed
  at their real width (7 bits for K = 128) as a flat uint8 stream.

Loading never runs code and never allocates more than the file holds. Saving is atomic.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .._errors import QcnnError
from ..model._model import Model
from ..model._spec import parse_spec, spec_to_dict
from ._bitpack import pack_codes, packed_size, unpack_codes

__all__ = ["load", "save", "FORMAT_VERSION", "atomic_write"]

FORMAT_VERSION = 1
_MANIFEST = "qcnn.yaml"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    A failure leaves no file at ``path`` (and no temporary file behind).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise QcnnError(f"cannot write: {err.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise QcnnError(f"cannot write: {err.strerror}", path) from None
        raise


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` as a ``.qcnn`` file, atomically."""
    tensors: dict[str, dict[str, Any]] = {}
    members: list[tuple[str, bytes]] = []
    for lname in sorted(model.params):
        for tname in sorted(model.params[lname]):
            arr = model.params[lname][tname]
            key = f"{lname}/{tname}"
            entry: dict[str, Any] = {"file": f"{key}.npy", "dtype": str(arr.dtype), "shape": list(arr.shape)}
            if tname == "codes":
                entry["bits"] = model.spec.layer(lname).quant.bits  # type: ignore[union-attr]
                arr = pack_codes(arr, entry["bits"])
            tensors[key] = entry
            members.append((entry["file"], _npy_bytes(arr)))
    manifest = {"format": "qcnn", "version": FORMAT_VERSION, "spec": spec_to_dict(model.spec), "tensors": tensors}
    text = yaml.safe_dump(manifest, sort_keys=False)

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(_MANIFEST, text)
            for name, data in members:
                z.writestr(name, data)

    atomic_write(path, write)


def _read_member(z: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise QcnnError(f"archive member {name} is missing", path) from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise QcnnError(f"archive member {name} is compressed; .qcnn members are stored", path)
    try:
        return z.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise QcnnError(f"archive member {name} is corrupt ({err})", path) from None


def _parse_npy(data: bytes, key: str, path: Path) -> np.ndarray:
    """Parse .npy bytes, checking the header's size claim against the bytes really there."""
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(buf)
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed")
        if prod(shape) * dtype.itemsize != len(data) - buf.tell():
            raise ValueError(f"header claims shape {list(shape)} of {dtype}, the member holds "
                             f"{len(data) - buf.tell()} data bytes")
        arr = np.frombuffer(data, dtype=dtype, offset=buf.tell()).reshape(shape, order="F" if fortran else "C")
    except (ValueError, OSError, EOFError) as err:
        raise QcnnError(f"tensor {key} is not a valid .npy array ({err})", path) from None
    return np.ascontiguousarray(arr)


def _read_tensor(z: zipfile.ZipFile, key: str, entry: Any, path: Path) -> np.ndarray:
    if not isinstance(entry, dict) or not {"file", "dtype", "shape"} <= set(entry):
        raise QcnnError(f"tensor {key} has a malformed entry in {_MANIFEST}", path)
    shape = entry["shape"]
    if not (isinstance(shape, list) and all(isinstance(s, int) and 0 <= s < 1 << 31 for s in shape)):
        raise QcnnError(f"tensor {key} has an invalid shape {shape!r}", path)
    data = _read_member(z, str(entry["file"]), path)
    arr = _parse_npy(data, key, path)
    if "bits" in entry:
        bits, count = entry["bits"], prod(shape)
        if not (isinstance(bits, int) and 1 <= bits <= 8):
            raise QcnnError(f"tensor {key} has bit width {bits!r}, outside 1..8", path)
        if arr.dtype != np.uint8 or arr.shape != (packed_size(count, bits),):
            raise QcnnError(f"tensor {key} holds {arr.size} packed bytes, {count} codes of {bits} bits need "
                            f"{packed_size(count, bits)}", path)
        arr = unpack_codes(arr, bits, count).reshape(shape)
    if str(arr.dtype) != entry["dtype"] or list(arr.shape) != shape:
        raise QcnnError(f"tensor {key} is {arr.dtype} {list(arr.shape)}, the manifest says "
                        f"{entry['dtype']} {shape}", path)
    return arr


def load(path: str | os.PathLike[str]) -> Model:
    """Read a ``.qcnn`` file; every problem is a one-line :class:`QcnnError` naming the file."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise QcnnError("no such file", path) from None
    except IsADirectoryError:
        raise QcnnError("is a directory, not a .qcnn file", path) from None
    except OSError as err:
        raise QcnnError(f"cannot read: {err.strerror}", path) from None
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise QcnnError("not a .qcnn file (not a valid zip archive, or truncated)", path) from None
    with z:
        try:
            manifest = yaml.safe_load(_read_member(z, _MANIFEST, path).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            raise QcnnError(f"{_MANIFEST} is not valid YAML", path) from None
        if not isinstance(manifest, dict) or manifest.get("format") != "qcnn":
            raise QcnnError("not a .qcnn file (no qcnn manifest)", path)
        if manifest.get("version") != FORMAT_VERSION:
            raise QcnnError(f"format version {manifest.get('version')!r} is not supported "
                            f"(this qcnn reads version {FORMAT_VERSION})", path)
        unknown = sorted(set(manifest) - {"format", "version", "spec", "tensors"})
        if unknown:
            raise QcnnError(f"unknown field(s) {', '.join(unknown)} in {_MANIFEST}", path)
        try:
            spec = parse_spec(manifest.get("spec"), str(path))
        except QcnnError as err:
            raise QcnnError(str(err)) from None
        entries = manifest.get("tensors") or {}
        if not isinstance(entries, dict):
            raise QcnnError(f"'tensors' in {_MANIFEST} must be a mapping", path)
        params: dict[str, dict[str, np.ndarray]] = {}
        for key, entry in entries.items():
            lname, _, tname = str(key).rpartition("/")
            if not lname or not tname:
                raise QcnnError(f"tensor key {key!r} is not LAYER/TENSOR", path)
            params.setdefault(lname, {})[tname] = _read_tensor(z, key, entry, path)
    return Model(spec, params, source=str(path))
