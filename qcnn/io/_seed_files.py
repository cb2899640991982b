"""The authors' low-level file formats (``seed-format.md`` sections 2 and 3).

``.bin`` (a dense array)::

    int32 ndim (1..4) | int32 dims[ndim] | elem data[prod(dims)]   little-endian, C order

The element type comes from the file kind, never from the file (float32 for ``ctrdLst``,
``biasVec``, ``convKnl``, ``fcntWei`` and ``*.single.bin``; uint8 for raw ``asmtLst``;
uint16 for label vectors), so the reader is told the dtype. File size must be exactly
4 + 4 ndim + prod(dims) itemsize.

``.cbn`` (bit-packed codeword assignments)::

    int32 ndim | int32 dims[ndim] | int32 bits | uint8 blocks[nblocks][4096]

N = prod(dims) codes, E = floor(32768 / bits) codes per 4096-byte block,
nblocks = ceil(N / E). Inside a block the codes form one MSB-first bit stream (code i at
stream bits [i bits, (i + 1) bits)); the tail of every block is zero padding. The stored
field is the 0-based codeword index.

Every reader checks the header's size claim against the real file size before it
allocates anything, and every problem is a one-line :class:`QcnnError` naming the file.
Every writer is atomic.
"""

from __future__ import annotations

import os
from math import gcd, prod
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._errors import QcnnError
from ._qcnn_file import atomic_write

__all__ = [
    "BLOCK_BYTES", "codes_per_block", "cbn_size", "read_bin", "write_bin", "read_cbn", "write_cbn",
    "read_raw_asmt", "write_raw_asmt",
]

BLOCK_BYTES = 4096  #: bytes per .cbn block
_BLOCK_BITS = BLOCK_BYTES * 8
_MAX_DIM = (1 << 31) - 1  # dims are int32
#: element types a .bin file may hold (the file kind decides which)
_BIN_DTYPES = {np.dtype(np.float32): "<f4", np.dtype(np.uint8): "u1", np.dtype(np.uint16): "<u2",
               np.dtype(np.int32): "<i4"}

PathLike = str | os.PathLike[str]


def codes_per_block(bits: int) -> int:
    """E = floor(32768 / bits): codes in one 4096-byte block (a code never crosses blocks)."""
    return _BLOCK_BITS // bits


def cbn_size(dims: tuple[int, ...], bits: int) -> int:
    """Exact size in bytes of a .cbn file with these dims and bit width."""
    blocks = -(-prod(dims) // codes_per_block(bits))
    return 4 + 4 * len(dims) + 4 + blocks * BLOCK_BYTES


# ------------------------------------------------------------------ reading helpers
def _open(path: Path) -> IO[bytes]:
    if path.is_dir():
        raise QcnnError("is a directory, not a file", path)
    if path.exists() and not path.is_file():
        raise QcnnError("is not a regular file", path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise QcnnError("no such file", path) from None
    except OSError as err:
        raise QcnnError(f"cannot read: {err.strerror}", path) from None


def _read_exact(f: IO[bytes], count: int, path: Path, what: str) -> bytes:
    try:
        data = f.read(count)
    except OSError as err:
        raise QcnnError(f"cannot read: {err.strerror}", path) from None
    if len(data) != count:
        raise QcnnError(f"truncated: file ends inside the {what}", path)
    return data


def _read_into(f: IO[bytes], arr: np.ndarray, path: Path) -> None:
    """Fill ``arr`` with the next ``arr.nbytes`` bytes of ``f`` (no intermediate copy)."""
    view = memoryview(arr).cast("B")
    done = 0
    try:
        while done < arr.nbytes:
            n = f.readinto(view[done:])
            if not n:
                raise QcnnError("truncated: file ends inside the data", path)
            done += n
    except OSError as err:
        raise QcnnError(f"cannot read: {err.strerror}", path) from None


def _read_int32(f: IO[bytes], path: Path, what: str) -> int:
    return int(np.frombuffer(_read_exact(f, 4, path, what), "<i4")[0])


def _read_dims(f: IO[bytes], path: Path, max_dims: int) -> tuple[int, ...]:
    """Read ``int32 ndim, int32 dims[ndim]`` and check 1 <= ndim <= max_dims, dims >= 1."""
    ndim = _read_int32(f, path, "header")
    if not 1 <= ndim <= max_dims:
        raise QcnnError(f"header claims {ndim} dimensions; expected 1..{max_dims} (corrupt or not this kind of file)",
                        path)
    dims = tuple(int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, path, "header"), "<i4"))
    if any(d < 1 for d in dims):
        raise QcnnError(f"header claims dimensions {list(dims)}; every dimension must be >= 1", path)
    return dims


def _file_size(f: IO[bytes], path: Path) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except OSError as err:
        raise QcnnError(f"cannot read: {err.strerror}", path) from None


def _check_size(actual: int, expected: int, path: Path, claim: str) -> None:
    if actual < expected:
        raise QcnnError(f"truncated: header claims {claim} ({expected} bytes in all), the file has {actual} bytes", path)
    if actual > expected:
        raise QcnnError(f"{actual - expected} trailing bytes after the data ({claim} needs {expected} bytes)", path)


def _dtype_of(dtype: Any, path: Path) -> tuple[np.dtype, str]:
    dt = np.dtype(dtype)
    if dt not in _BIN_DTYPES:
        raise QcnnError(f".bin element type {dt} is not supported (use float32, uint8, uint16 or int32)", path)
    return dt, _BIN_DTYPES[dt]


# ------------------------------------------------------------------ .bin
def read_bin(path: PathLike, dtype: Any, max_dims: int = 4) -> np.ndarray:
    """Read a dense ``.bin`` array of element type ``dtype`` -> C-contiguous ndarray of shape dims.

    Checks: 1 <= ndim <= max_dims, every dim >= 1, file size exactly
    4 + 4 ndim + prod(dims) itemsize (checked before any allocation), finite float values.
    """
    path = Path(path)
    dt, wire = _dtype_of(dtype, path)
    with _open(path) as f:
        dims = _read_dims(f, path, max_dims)
        header = 4 + 4 * len(dims)
        expected = header + prod(dims) * dt.itemsize
        _check_size(_file_size(f, path), expected, path, f"{dt} {list(dims)}")
        arr = np.empty(dims, wire)  # size already checked against the file: no huge allocation
        _read_into(f, arr, path)
    arr = arr.astype(dt, copy=False)  # byte-swaps only on big-endian hosts
    if dt.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise QcnnError(f"{bad} NaN or Inf value(s) in the data", path)
    return arr


def write_bin(path: PathLike, arr: np.ndarray) -> None:
    """Write ``arr`` (1..4 dims, float32/uint8/uint16/int32) as a ``.bin`` file, atomically."""
    path = Path(path)
    arr = np.asarray(arr)
    _, wire = _dtype_of(arr.dtype, path)
    if not 1 <= arr.ndim <= 4 or arr.size == 0:
        raise QcnnError(f"cannot write a {arr.ndim}-d array of shape {list(arr.shape)} as .bin "
                        "(1..4 non-empty dims)", path)
    header = np.array([arr.ndim, *arr.shape], "<i4").tobytes()
    data = np.ascontiguousarray(arr, dtype=wire).tobytes()
    atomic_write(path, lambda f: (f.write(header), f.write(data)))


# ------------------------------------------------------------------ .cbn
def read_cbn(path: PathLike, max_dims: int = 4) -> tuple[np.ndarray, int]:
    """Read a bit-packed ``.cbn`` file -> (codes uint8 of shape dims, 0-based; bits).

    Checks: 1 <= ndim <= max_dims, dims >= 1, 1 <= bits <= 8, file size exactly
    header + ceil(N / E) * 4096 (before any allocation). Padding bits are ignored.
    """
    path = Path(path)
    with _open(path) as f:
        dims = _read_dims(f, path, max_dims)
        bits = _read_int32(f, path, "header")
        if not 1 <= bits <= 8:
            raise QcnnError(f"bit width {bits} is outside 1..8", path)
        expected = cbn_size(dims, bits)
        header = 4 + 4 * len(dims) + 4
        nblocks = (expected - header) // BLOCK_BYTES
        _check_size(_file_size(f, path), expected, path,
                    f"{prod(dims)} codes {list(dims)} of {bits} bits in {nblocks} blocks")
        raw = _read_exact(f, expected - header, path, "data")
    blocks = np.frombuffer(raw, np.uint8).reshape(nblocks, BLOCK_BYTES)
    codes = _unpack_blocks(blocks, bits, prod(dims))
    return codes.reshape(dims), bits


def _group(bits: int) -> tuple[int, int]:
    """(codes, bytes) of the smallest whole-byte group: 8/g codes fill bits/g bytes, g = gcd(bits, 8)."""
    g = gcd(bits, 8)
    return 8 // g, bits // g


def _unpack_blocks(blocks: np.ndarray, bits: int, count: int) -> np.ndarray:
    """uint8 [nblocks, 4096] -> the first ``count`` codes (uint8), E per block, MSB first.

    Each block is cut into groups of m = bits/g bytes holding n = 8/g codes; a group read
    as one big-endian integer v (at most 64 bits) holds code k at bits
    [bits (n - 1 - k), bits (n - k)) of v.
    """
    per = codes_per_block(bits)
    n, m = _group(bits)
    groups = -(-per // n)
    need = groups * m  # may run a few bytes past the block (E is not always a multiple of n)
    out = np.empty((blocks.shape[0], groups * n), np.uint8)
    mask = np.uint64((1 << bits) - 1)
    shifts = np.array([bits * (n - 1 - k) for k in range(n)], np.uint64)
    step = 1024  # blocks per chunk: bounds the temporaries to about 40 MB
    for b0 in range(0, blocks.shape[0], step):
        chunk = blocks[b0:b0 + step]
        if need > BLOCK_BYTES:
            chunk = np.pad(chunk, ((0, 0), (0, need - BLOCK_BYTES)))
        grouped = chunk[:, :need].reshape(chunk.shape[0], groups, m).astype(np.uint64)
        value = np.zeros(grouped.shape[:2], np.uint64)
        for j in range(m):
            value = (value << np.uint64(8)) | grouped[:, :, j]
        codes = (value[:, :, None] >> shifts) & mask  # [blocks, groups, n]
        out[b0:b0 + chunk.shape[0]] = codes.reshape(chunk.shape[0], groups * n)
    return out[:, :per].reshape(-1)[:count]


def _pack_blocks(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 codes (flat, each < 2**bits) -> uint8 [nblocks, 4096], zero padded."""
    per = codes_per_block(bits)
    nblocks = -(-codes.size // per)
    padded = np.zeros(nblocks * per, np.uint8)
    padded[:codes.size] = codes
    blocks = np.zeros((nblocks, BLOCK_BYTES), np.uint8)
    step = 256
    for b0 in range(0, nblocks, step):
        chunk = padded[b0 * per:(b0 + step) * per].reshape(-1, per, 1)
        stream = np.unpackbits(chunk, axis=2)[:, :, 8 - bits:].reshape(chunk.shape[0], per * bits)
        packed = np.packbits(stream, axis=1)  # pads the last byte with zeros
        blocks[b0:b0 + chunk.shape[0], :packed.shape[1]] = packed
    return blocks


def write_cbn(path: PathLike, codes: np.ndarray, bits: int) -> None:
    """Write 0-based ``codes`` (integers, 1..4 dims, each < 2**bits) as a ``.cbn`` file, atomically."""
    path = Path(path)
    codes = np.asarray(codes)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise QcnnError(f"bit width {bits!r} is outside 1..8", path)
    bits = int(bits)
    if codes.dtype.kind not in "iu" or not 1 <= codes.ndim <= 4 or codes.size == 0:
        raise QcnnError(f"codes must be a non-empty integer array of 1..4 dims, got {codes.dtype} "
                        f"{list(codes.shape)}", path)
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= 1 << bits:
        raise QcnnError(f"codes span {lo}..{hi}, which does not fit {bits} bits", path)
    header = np.array([codes.ndim, *codes.shape, bits], "<i4").tobytes()
    blocks = _pack_blocks(codes.astype(np.uint8).reshape(-1), bits)
    atomic_write(path, lambda f: (f.write(header), f.write(blocks.tobytes())))


# ------------------------------------------------------------------ raw asmtLst.NN.bin
def read_raw_asmt(path: PathLike) -> np.ndarray:
    """Read a raw ``asmtLst.NN.bin`` (uint8, 1-based, as the converter consumes) -> 0-based uint8 codes."""
    codes = read_bin(path, np.uint8)
    if int(codes.min()) < 1:
        raise QcnnError("raw assignments are 1-based, but the file holds a 0", path)
    return codes - np.uint8(1)


def write_raw_asmt(path: PathLike, codes: np.ndarray) -> None:
    """Write 0-based ``codes`` (< 255) as a raw 1-based uint8 ``asmtLst.NN.bin``, atomically."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu" or codes.size == 0 or int(codes.min()) < 0 or int(codes.max()) > 254:
        raise QcnnError("raw assignments must be integers in 0..254", path)
    write_bin(path, (codes.astype(np.int64) + 1).astype(np.uint8))
