"""Image decoding and the authors' preprocessing, bit for bit against their dumped input blob."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qcnn
from qcnn import QcnnError
from qcnn.io import resize_bilinear

f32 = np.float32
IMAGES = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]


def _bmp(seed_dir: Path, stem: str = IMAGES[0]) -> Path:
    return seed_dir / "images" / f"{stem}.BMP"


def _decode_bmp_by_hand(path: Path) -> np.ndarray:
    """seed-format.md section 5 step 1, independently of Pillow: 24-bit, bottom-up, rows padded to 4 bytes."""
    data = path.read_bytes()
    offset = int.from_bytes(data[10:14], "little")
    w = int.from_bytes(data[18:22], "little", signed=True)
    h = int.from_bytes(data[22:26], "little", signed=True)
    assert int.from_bytes(data[28:30], "little") == 24 and h > 0
    stride = (3 * w + 3) // 4 * 4
    rows = np.frombuffer(data, np.uint8, count=stride * h, offset=offset).reshape(h, stride)[::-1, :3 * w]
    return rows.reshape(h, w, 3).transpose(2, 0, 1).astype(f32)  # BMP stores B, G, R


def _resize_by_loops(img: np.ndarray, th: int, tw: int) -> np.ndarray:
    """The section 5 formula pixel by pixel with float32 scalars (small images only)."""
    c, h, w = img.shape
    sy, sx = f32(h - 1) / f32(th - 1), f32(w - 1) / f32(tw - 1)
    out = np.zeros((c, th, tw), f32)
    for i in range(th):
        y = sy * f32(i)
        y0 = int(y)
        y1 = min(y0 + 1, h - 1)
        wy0, wy1 = f32(1) - (y - f32(y0)), f32(1) - (f32(y1) - y)
        for j in range(tw):
            x = sx * f32(j)
            x0 = int(x)
            x1 = min(x0 + 1, w - 1)
            wx0, wx1 = f32(1) - (x - f32(x0)), f32(1) - (f32(x1) - x)
            wtl, wtr, wbl, wbr = wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1
            for ch in range(c):
                v = img[ch, y0, x0] * wtl + img[ch, y0, x1] * wtr + img[ch, y1, x0] * wbl + img[ch, y1, x1] * wbr
                out[ch, i, j] = v / (wtl + wtr + wbl + wbr)
    return out


@pytest.mark.parametrize("stem", IMAGES)
def test_input_blob_is_bit_exact(seed_model: qcnn.Model, seed_dir: Path, stem: str) -> None:
    ref = np.load(seed_dir / "reference" / f"{stem}.npz")["input"]
    x = qcnn.preprocess(_bmp(seed_dir, stem), seed_model)
    assert x.dtype == np.float32 and x.shape == (3, 227, 227)
    assert np.array_equal(x, ref)


@pytest.mark.parametrize("stem", IMAGES)
def test_bmp_decoding_matches_the_file_layout(seed_dir: Path, stem: str) -> None:
    img = qcnn.read_image(_bmp(seed_dir, stem))
    assert img.dtype == np.float32 and img.shape[0] == 3
    assert np.array_equal(img, _decode_bmp_by_hand(_bmp(seed_dir, stem)))


def test_array_input_equals_file_input(seed_model: qcnn.Model, seed_dir: Path) -> None:
    img = qcnn.read_image(_bmp(seed_dir))
    assert np.array_equal(qcnn.preprocess(img, seed_model), qcnn.preprocess(_bmp(seed_dir), seed_model))


def test_resize_formula_matches_loops() -> None:
    rng = np.random.default_rng(0)
    for h, w, th, tw in [(7, 11, 5, 9), (13, 4, 17, 6), (3, 3, 8, 8), (1, 5, 4, 4)]:
        img = rng.integers(0, 256, size=(3, h, w)).astype(f32)
        assert np.array_equal(resize_bilinear(img, (th, tw)), _resize_by_loops(img, th, tw)), (h, w, th, tw)


def test_resize_to_own_size_is_identity() -> None:
    img = np.random.default_rng(1).integers(0, 256, size=(3, 256, 256)).astype(f32)
    assert np.array_equal(resize_bilinear(img, (256, 256)), img)


def test_relaxed_resize_keeps_aspect_ratio() -> None:
    img = np.random.default_rng(2).integers(0, 256, size=(3, 300, 500)).astype(f32)
    out = resize_bilinear(img, (256, 256), "relaxed")
    # factor = min(299/255, 499/255) = 299/255; width floor(499 / factor + 1e-7) + 1 = 426
    assert out.shape == (3, 256, 426)
    assert np.array_equal(out[:, :, 0], resize_bilinear(img, (256, 426), "strict")[:, :, 0])


def test_vgg_cnn_s_crops_then_subtracts_its_mean(seed_dir: Path) -> None:
    model = qcnn.model.synthetic("vgg_cnn_s", seed=0)
    mean = np.random.default_rng(3).uniform(90, 130, size=(3, 224, 224)).astype(f32)
    model.params["preprocess"]["mean"] = mean
    img = qcnn.read_image(_bmp(seed_dir))  # 500 x 375 (W x H)
    x = qcnn.preprocess(img, model)
    full = resize_bilinear(img, (256, 256), "relaxed")
    assert full.shape[1] == 256 and full.shape[2] > 256
    oy, ox = (full.shape[1] - 224) // 2, (full.shape[2] - 224) // 2
    assert x.shape == (3, 224, 224)
    assert np.array_equal(x, full[:, oy:oy + 224, ox:ox + 224] - mean)


def test_png_and_jpeg(seed_model: qcnn.Model, seed_dir: Path, tmp_path: Path) -> None:
    bmp = _bmp(seed_dir)
    rgb = Image.open(bmp).convert("RGB")
    rgb.save(tmp_path / "a.png")
    rgb.save(tmp_path / "a.jpg", quality=95)
    ref = qcnn.preprocess(bmp, seed_model)
    assert np.array_equal(qcnn.preprocess(tmp_path / "a.png", seed_model), ref)  # PNG is lossless
    jpg = qcnn.preprocess(tmp_path / "a.jpg", seed_model)
    assert jpg.shape == ref.shape and float(np.abs(jpg - ref).mean()) < 3.0


def test_grayscale_and_alpha(tmp_path: Path) -> None:
    gray = np.random.default_rng(4).integers(0, 256, size=(20, 30)).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    img = qcnn.read_image(tmp_path / "g.png")
    assert img.shape == (3, 20, 30)
    for c in range(3):
        assert np.array_equal(img[c], gray.astype(f32))
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = qcnn.read_image(tmp_path / "a.png")
    assert img.shape == (3, 5, 6) and img[:, 0, 0].tolist() == [30, 20, 10]  # B, G, R


def _assert_one_line(e: pytest.ExceptionInfo[QcnnError], path: Path, word: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and word in msg, msg


def test_text_file_renamed_jpg(seed_model: qcnn.Model, tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(QcnnError) as e:
        qcnn.read_image(path)
    _assert_one_line(e, path, "not an image")
    with pytest.raises(QcnnError) as e:
        qcnn.preprocess(path, seed_model)
    _assert_one_line(e, path, "not an image")


def test_truncated_bmp(seed_model: qcnn.Model, seed_dir: Path, tmp_path: Path) -> None:
    data = _bmp(seed_dir).read_bytes()
    for cut in (len(data) // 2, 60, 20):
        path = tmp_path / f"cut{cut}.BMP"
        path.write_bytes(data[:cut])
        with pytest.raises(QcnnError) as e:
            qcnn.preprocess(path, seed_model)
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_truncated_png_and_jpeg(seed_dir: Path, tmp_path: Path) -> None:
    rgb = Image.open(_bmp(seed_dir)).convert("RGB")
    for ext in ("png", "jpg"):
        full = tmp_path / f"full.{ext}"
        rgb.save(full)
        path = tmp_path / f"cut.{ext}"
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(QcnnError) as e:
            qcnn.read_image(path)
        _assert_one_line(e, path, "truncated")


def test_decompression_bomb_is_refused(seed_dir: Path, tmp_path: Path) -> None:
    """A BMP header claiming 20000 x 20000 pixels is refused before any pixel is decoded."""
    data = bytearray(_bmp(seed_dir).read_bytes()[:200])
    data[18:22] = (20000).to_bytes(4, "little")
    data[22:26] = (20000).to_bytes(4, "little")
    path = tmp_path / "bomb.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(QcnnError) as e:
        qcnn.read_image(path)
    _assert_one_line(e, path, "decompression bomb")


def test_missing_image_and_missing_mean(seed_model: qcnn.Model, seed_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(QcnnError) as e:
        qcnn.read_image(tmp_path / "nope.png")
    _assert_one_line(e, tmp_path / "nope.png", "no such file")
    with pytest.raises(QcnnError) as e:
        qcnn.preprocess(_bmp(seed_dir), seed_model.spec)  # a spec alone has no mean image
    assert "mean" in str(e.value)
    x = qcnn.preprocess(_bmp(seed_dir), seed_model.spec, mean=seed_model.mean)
    assert np.array_equal(x, qcnn.preprocess(_bmp(seed_dir), seed_model))


def test_bad_arrays() -> None:
    model = qcnn.model.synthetic("alexnet", seed=0)
    for bad in (np.zeros((4, 10, 10), f32), np.zeros((10, 10), f32), np.full((3, 4, 4), np.nan, f32)):
        with pytest.raises(QcnnError):
            qcnn.preprocess(bad, model)
