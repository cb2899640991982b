"""Codes of ``bits`` bits each (1..8) as one MSB-first bit stream, as the authors' ``.cbn`` does.

Code i occupies stream bits [i bits, (i + 1) bits); stream bit 0 is the most significant
bit of byte 0, and the last byte is zero-padded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_codes", "unpack_codes", "packed_size"]


def packed_size(count: int, bits: int) -> int:
    """Bytes needed for ``count`` codes of ``bits`` bits."""
    return -(-count * bits // 8)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes (any shape, uint8, each < 2**bits) -> uint8 [packed_size(codes.size, bits)]."""
    flat = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, 1)
    stream = np.unpackbits(flat, axis=1)[:, 8 - bits:]  # [count, bits], MSB first
    return np.packbits(stream.reshape(-1))


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The inverse of :func:`pack_codes`: uint8 bytes -> uint8 [count]."""
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=count * bits).reshape(count, bits)
    codes = np.zeros(count, np.uint8)
    for i in range(bits):
        codes = (codes << np.uint8(1)) | stream[:, i]
    return codes
