"""The authors' .bin/.cbn formats: byte-exact round trips and strict rejection of bad files."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import qcnn
from qcnn import QcnnError
from qcnn.io._seed_files import (BLOCK_BYTES, cbn_size, read_bin, read_cbn, read_raw_asmt, write_bin, write_cbn,
                                 write_raw_asmt)

PREFIX = "bvlc_alexnet_aCaF"
#: (file index, dims, bits) of every .cbn the seed holds (fc6 = the stand-in), per seed-format.md section 1.
CBN_FILES = [
    ("01", (96, 11, 11, 1), 7), ("05", (256, 5, 5, 6), 7), ("09", (384, 3, 3, 32), 7),
    ("11", (384, 3, 3, 24), 7), ("13", (256, 3, 3, 24), 7), ("16", (4096, 2304), 5),
    ("19", (4096, 1024), 5), ("22", (1000, 4096), 4),
]


def _cbn_path(seed_dir: Path, nn: str) -> Path:
    sub = "fc6-synthetic" if nn == "16" else "Bin.Files"
    return seed_dir / sub / f"{PREFIX}.asmtLst.{nn}.cbn"


def _one_line_error(excinfo: pytest.ExceptionInfo[QcnnError], path: Path, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w in msg, msg
    return msg


# ----------------------------------------------------------------- .cbn
@pytest.mark.parametrize("nn, dims, bits", CBN_FILES, ids=[c[0] for c in CBN_FILES])
def test_cbn_round_trip_is_byte_identical(seed_dir: Path, tmp_path: Path, nn: str, dims: tuple, bits: int) -> None:
    src = _cbn_path(seed_dir, nn)
    codes, got_bits = read_cbn(src)
    assert codes.shape == dims and codes.dtype == np.uint8 and got_bits == bits
    assert int(codes.max()) < 1 << bits
    assert src.stat().st_size == cbn_size(dims, bits)
    out = tmp_path / src.name
    write_cbn(out, codes, bits)
    assert out.read_bytes() == src.read_bytes()


def test_fc6_stand_in_is_the_documented_one(seed_dir: Path) -> None:
    src = _cbn_path(seed_dir, "16")
    assert hashlib.md5(src.read_bytes()).hexdigest() == "85b6e4fba8a13395a8dfb10641183eb4"
    codes, _ = read_cbn(src)
    expected = np.random.default_rng(20161).integers(0, 32, size=(4096, 2304)).astype(np.uint8)
    assert np.array_equal(codes, expected)


def test_cbn_worked_example(tmp_path: Path) -> None:
    """seed-format.md section 3: bits=5, codes [3, 17, 0, 31]."""
    path = tmp_path / "example.cbn"
    write_cbn(path, np.array([3, 17, 0, 31], np.uint8), 5)
    data = path.read_bytes()
    assert data[:12] == bytes.fromhex("01000000 04000000 05000000")
    assert len(data) == 12 + BLOCK_BYTES
    assert data[12:16] == bytes.fromhex("1c41f000")
    assert data[16:] == bytes(BLOCK_BYTES - 4)
    codes, bits = read_cbn(path)
    assert bits == 5 and codes.tolist() == [3, 17, 0, 31]


@pytest.mark.parametrize("bits", range(1, 9))
def test_cbn_round_trip_every_width_across_blocks(tmp_path: Path, bits: int) -> None:
    per = 32768 // bits
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=(3, per - 1), dtype=np.uint8)  # 3 blocks, last one partial
    path = tmp_path / f"w{bits}.cbn"
    write_cbn(path, codes, bits)
    assert path.stat().st_size == 4 + 8 + 4 + 3 * BLOCK_BYTES
    back, got = read_cbn(path)
    assert got == bits and np.array_equal(back, codes)


def test_cbn_codes_never_cross_blocks(tmp_path: Path) -> None:
    """7 bits: E = 4681 codes per block; code 4681 starts block 2 at byte 0."""
    codes = np.zeros(4682, np.uint8)
    codes[4680], codes[4681] = 0x7F, 0x55
    path = tmp_path / "b.cbn"
    write_cbn(path, codes, 7)
    data = path.read_bytes()[12:]
    assert len(data) == 2 * BLOCK_BYTES
    # code 4680 sits at stream bits 32760..32766 of block 1: last byte holds 7 ones and 1 padding zero
    assert data[BLOCK_BYTES - 1] == 0xFE
    assert data[BLOCK_BYTES] == 0x55 << 1


def test_write_cbn_rejects_codes_that_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "x.cbn"
    with pytest.raises(QcnnError) as e:
        write_cbn(path, np.array([0, 32], np.uint8), 5)
    _one_line_error(e, path, "5 bits")
    with pytest.raises(QcnnError):
        write_cbn(path, np.array([0, 1], np.uint8), 9)
    assert not path.exists()


# ----------------------------------------------------------------- .bin
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
def test_bin_round_trip(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(0)
    for shape in [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 5)]:
        arr = (rng.standard_normal(shape) * 100).astype(dtype) if dtype is np.float32 else \
            rng.integers(0, 200, size=shape).astype(dtype)
        path = tmp_path / "a.bin"
        write_bin(path, arr)
        assert path.stat().st_size == 4 + 4 * len(shape) + arr.nbytes
        back = read_bin(path, dtype)
        assert back.dtype == dtype and back.shape == shape and np.array_equal(back, arr)


def test_real_bin_files_rewrite_byte_identical(seed_dir: Path, tmp_path: Path) -> None:
    for src in [*sorted((seed_dir / "Bin.Files").glob("*.bin")), seed_dir / "imagenet_mean.single.bin"]:
        arr = read_bin(src, np.float32)
        write_bin(tmp_path / src.name, arr)
        assert (tmp_path / src.name).read_bytes() == src.read_bytes(), src.name


def test_label_vector_reads_as_uint16(seed_dir: Path) -> None:
    labels = read_bin(seed_dir / "labels" / "lablVecTst.uint16.bin", np.uint16)
    assert labels.shape == (1, 1, 1, 1000) and int(labels.max()) < 1000


def test_raw_asmt_is_one_based(tmp_path: Path) -> None:
    codes = np.array([[0, 5], [127, 3]], np.uint8)
    path = tmp_path / "asmtLst.01.bin"
    write_raw_asmt(path, codes)
    assert np.array_equal(read_bin(path, np.uint8), codes + 1)
    assert np.array_equal(read_raw_asmt(path), codes)
    write_bin(path, np.array([1, 0, 2], np.uint8))
    with pytest.raises(QcnnError) as e:
        read_raw_asmt(path)
    _one_line_error(e, path, "1-based")


# ----------------------------------------------------------------- bad files
def _header(*ints: int) -> bytes:
    return np.array(ints, "<i4").tobytes()


BAD_BIN = {
    "empty": (b"", "truncated"),
    "short header": (_header(2, 3), "truncated"),
    "ndim 0": (_header(0) + bytes(16), "0 dimensions"),
    "ndim 9": (_header(9, *[1] * 9) + bytes(4), "9 dimensions"),
    "ndim negative": (_header(-1) + bytes(16), "-1 dimensions"),
    "dim zero": (_header(2, 3, 0), ">= 1"),
    "dim negative": (_header(2, 3, -4) + bytes(48), ">= 1"),
    "absurd dims": (_header(2, 2**31 - 1, 2**31 - 1) + bytes(64), "truncated"),
    "truncated data": (_header(1, 4) + bytes(12), "truncated"),
    "trailing bytes": (_header(1, 4) + bytes(17), "trailing"),
    "nan": (_header(1, 3) + np.array([1.0, np.nan, 2.0], "<f4").tobytes(), "NaN"),
    "inf": (_header(1, 2) + np.array([np.inf, 2.0], "<f4").tobytes(), "Inf"),
}


@pytest.mark.parametrize("case", sorted(BAD_BIN))
def test_bad_bin_is_one_line_error(tmp_path: Path, case: str) -> None:
    data, word = BAD_BIN[case]
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(QcnnError) as e:
        read_bin(path, np.float32)
    _one_line_error(e, path, word)


def test_absurd_claim_is_checked_before_allocating(tmp_path: Path) -> None:
    """A header claiming 4 * (2**31 - 1)**4 bytes must fail on the size check, not in numpy."""
    path = tmp_path / "huge.bin"
    path.write_bytes(_header(4, *[2**31 - 1] * 4) + bytes(8))
    with pytest.raises(QcnnError) as e:
        read_bin(path, np.float32)
    _one_line_error(e, path, "truncated", "file has 28 bytes")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(QcnnError) as e:
        read_bin(tmp_path / "nope.bin", np.float32)
    _one_line_error(e, tmp_path / "nope.bin", "no such file")
    with pytest.raises(QcnnError) as e:
        read_cbn(tmp_path)
    _one_line_error(e, tmp_path, "directory")


def _real_cbn_bytes(seed_dir: Path) -> bytes:
    return _cbn_path(seed_dir, "01").read_bytes()  # dims [96, 11, 11, 1], 7 bits, 3 blocks


def test_bad_cbn_cases(seed_dir: Path, tmp_path: Path) -> None:
    good = _real_cbn_bytes(seed_dir)
    hdr = 4 + 16  # ndim + 4 dims; bits at [20:24]
    cases = {
        "truncated": (good[:-1], "truncated"),
        "truncated header": (good[:10], "truncated"),
        "trailing": (good + b"\0", "trailing"),
        "extra block": (good + bytes(BLOCK_BYTES), "trailing"),
        "bits 0": (good[:hdr] + _header(0) + good[hdr + 4:], "bit width 0"),
        "bits 9": (good[:hdr] + _header(9) + good[hdr + 4:], "bit width 9"),
        "bits 1 (1 block, not 3)": (good[:hdr] + _header(1) + good[hdr + 4:], "trailing"),
        "more codes than blocks": (_header(4, 96, 11, 11, 2) + good[hdr:], "truncated"),
        "ndim 0": (_header(0) + good[4:], "0 dimensions"),
        "ndim 9": (_header(9) + good[4:], "9 dimensions"),
        "absurd dims": (_header(4, 2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1) + good[hdr:], "truncated"),
        "zero dim": (_header(4, 96, 11, 0, 1) + good[hdr:], ">= 1"),
    }
    for case, (data, word) in cases.items():
        path = tmp_path / f"{case}.cbn"
        path.write_bytes(data)
        with pytest.raises(QcnnError) as e:
            read_cbn(path)
        _one_line_error(e, path, word)


def test_nonzero_padding_bits_are_ignored(seed_dir: Path, tmp_path: Path) -> None:
    good = bytearray(_real_cbn_bytes(seed_dir))
    good[-1] = 0xFF  # the last block's tail is padding beyond N codes
    path = tmp_path / "pad.cbn"
    path.write_bytes(bytes(good))
    codes, _ = read_cbn(path)
    ref, _ = read_cbn(_cbn_path(seed_dir, "01"))
    assert np.array_equal(codes, ref)


# ----------------------------------------------------------------- bad layer files through load_seed
def _copy_seed(seed_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of Bin.Files plus the fc6 stand-in and the mean image."""
    root = tmp_path / "AlexNet"
    shutil.copytree(seed_dir / "Bin.Files", root / "Bin.Files")
    shutil.copy(_cbn_path(seed_dir, "16"), root / "Bin.Files")
    shutil.copy(seed_dir / "imagenet_mean.single.bin", root)
    return root


def test_load_seed_of_copy_works(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    model = qcnn.load_seed(root)  # the parent directory; mean found beside Bin.Files
    assert model.spec.layer("fc6").quant == qcnn.Quant(4, 32)


def test_missing_layer_file_names_it(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    victim = root / "Bin.Files" / f"{PREFIX}.biasVec.09.bin"
    victim.unlink()
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "not found", "conv3")


def test_missing_assignments_name_the_file(seed_dir: Path) -> None:
    """The release itself lacks fc6's assignments: without the stand-in, loading says so."""
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(seed_dir / "Bin.Files", mean=seed_dir / "imagenet_mean.single.bin")
    _one_line_error(e, seed_dir / "Bin.Files" / f"{PREFIX}.asmtLst.16.cbn", "not found", "fc6")


def test_missing_mean_image_is_a_clear_error(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    (root / "imagenet_mean.single.bin").unlink()
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, root / "Bin.Files" / "imagenet_mean.single.bin", "mean")


@pytest.mark.parametrize("nn, what, arr, word", [
    ("05", "biasVec", np.zeros(255, np.float32), "[255]"),  # conv2 has 256 outputs
    ("09", "ctrdLst", np.zeros((31, 128, 8), np.float32), "[31, 128, 8]"),  # conv3 needs S = 32
    ("19", "ctrdLst", np.zeros((1024, 32), np.float32), "[S, K, D]"),
    ("01", "ctrdLst", np.zeros((1, 300, 8), np.float32), "K must be"),
])
def test_shape_contradicting_the_arch_names_the_file(seed_dir: Path, tmp_path: Path, nn: str, what: str,
                                                     arr: np.ndarray, word: str) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    victim = root / "Bin.Files" / f"{PREFIX}.{what}.{nn}.bin"
    write_bin(victim, arr)
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, word)


def test_assignment_shape_and_range_name_the_file(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    victim = root / "Bin.Files" / f"{PREFIX}.asmtLst.22.cbn"
    write_cbn(victim, np.zeros((1000, 4095), np.uint8), 4)  # fc8 needs [1000, 4096]
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "[1000, 4095]", "[1000, 4096]")
    codes = np.zeros((1000, 4096), np.uint8)
    codes[3, 7] = 16  # K = 16 for fc8
    write_cbn(victim, codes, 5)
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "16", "K=16")


def test_corrupt_layer_file_names_it(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    victim = root / "Bin.Files" / f"{PREFIX}.ctrdLst.13.bin"
    data = bytearray(victim.read_bytes())
    data[100:104] = np.array([np.nan], "<f4").tobytes()
    victim.write_bytes(bytes(data))
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "NaN")
    victim.write_bytes(bytes(data[:-3]))
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "truncated")


def test_wrong_mean_image_names_the_file(seed_dir: Path, tmp_path: Path) -> None:
    root = _copy_seed(seed_dir, tmp_path)
    victim = root / "imagenet_mean.single.bin"
    write_bin(victim, np.zeros((3, 227, 227), np.float32))
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root)
    _one_line_error(e, victim, "[3, 227, 227]", "[3, 256, 256]")
    with pytest.raises(QcnnError) as e:
        qcnn.load_seed(root, mean=tmp_path / "none.bin")
    _one_line_error(e, tmp_path / "none.bin", "no such file")


@pytest.mark.parametrize("bits", range(1, 9))
def test_cbn_reader_agrees_with_plain_bit_stream_per_block(tmp_path: Path, bits: int) -> None:
    """Random block bytes (padding included) decode as the MSB-first stream of each block, cut
    after E codes: checked against qcnn.bitpack.unpack_codes, block by block."""
    from qcnn.io import unpack_codes

    per = 32768 // bits
    count = 2 * per + 17
    blocks = np.random.default_rng(100 + bits).integers(0, 256, size=(3, BLOCK_BYTES), dtype=np.uint8)
    path = tmp_path / "r.cbn"
    path.write_bytes(np.array([1, count, bits], "<i4").tobytes() + blocks.tobytes())
    codes, got = read_cbn(path)
    expected = np.concatenate([unpack_codes(b, bits, per) for b in blocks])[:count]
    assert got == bits and np.array_equal(codes, expected)
