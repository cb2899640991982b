"""Image input: decode a file, then the authors' preprocessing (``seed-format.md`` section 5).

For the AlexNet/CaffeNet family (``resize_mode: strict``, mean at full size):

1. decode to float32 [3, H, W], plane 0 = B, 1 = G, 2 = R, values 0..255;
2. resize to [256, 256] by corner-aligned bilinear interpolation in float32:
   scale = float32(n_src - 1) / (n_dst - 1) per axis; for output index i,
   y = scale i, y0 = int(y), y1 = min(y0 + 1, n_src - 1), w_lo = 1 - (y - y0),
   w_hi = 1 - (y1 - y); each tap weight is the product of its row and column weights and
   out = (tl w_tl + tr w_tr + bl w_bl + br w_br) / (w_tl + w_tr + w_bl + w_br), summed left
   to right (the divisor is 2 on the last row/column, where y1 == y0 and both taps count);
3. subtract the [3, 256, 256] mean image;
4. centre crop at offset (256 - crop) // 2 on each axis.

``resize_mode: relaxed`` (VggCnnS) uses one common factor, the smaller of the two axis
factors, and output size floor((n - 1) / factor + 1e-7) + 1 per axis (the shorter side
becomes 256); with ``mean_after_crop`` the mean image is subtracted after cropping.
Every step runs in float32 in that order, which reproduces the C++ input blob bit for bit.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import QcnnError
from ..model._model import Model
from ..model._spec import NetSpec

__all__ = ["read_image", "preprocess", "resize_bilinear", "MAX_PIXELS"]

f32 = np.float32
#: Largest image (width x height) read_image accepts: a guard against decompression bombs.
MAX_PIXELS = 64_000_000


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a BMP, PNG or JPEG (anything Pillow reads) -> float32 [3, H, W], planes B, G, R, 0..255.

    Grayscale images give three equal planes; alpha is dropped. Unreadable, truncated or
    huge (> MAX_PIXELS) images raise a one-line :class:`QcnnError` naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise QcnnError("is a directory, not an image", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w < 1 or h < 1 or w * h > MAX_PIXELS:
                    raise QcnnError(f"image is {w}x{h} pixels, outside 1..{MAX_PIXELS} pixels "
                                    "(refusing a possible decompression bomb)", path)
                img.load()
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except QcnnError:
        raise
    except FileNotFoundError:
        raise QcnnError("no such file", path) from None
    except PermissionError:
        raise QcnnError("cannot read: permission denied", path) from None
    except UnidentifiedImageError:
        raise QcnnError("not an image Pillow can read (expected BMP, PNG or JPEG)", path) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise QcnnError(f"image too large, refusing a possible decompression bomb ({err})".replace("\n", " "),
                        path) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise QcnnError(f"corrupt or truncated image ({detail})", path) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise QcnnError(f"decoded to an unexpected array shape {list(rgb.shape)}", path)
    return np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1), dtype=f32)


def _axis_taps(n_src: int, n_dst: int, scale: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices lo/hi [n_dst] and float32 weights w_lo/w_hi [n_dst] along one axis."""
    pos = scale * np.arange(n_dst, dtype=f32)  # float32 product, as the C++ does
    lo = np.clip(pos.astype(np.int64), 0, n_src - 1)  # truncation toward zero; pos >= 0
    hi = np.minimum(lo + 1, n_src - 1)
    w_lo = f32(1) - (pos - lo.astype(f32))
    w_hi = f32(1) - (hi.astype(f32) - pos)
    return lo, hi, w_lo.astype(f32), w_hi.astype(f32)


def resize_bilinear(image: np.ndarray, size: tuple[int, int], mode: str = "strict") -> np.ndarray:
    """Corner-aligned bilinear resize, float32 throughout: image [C, H, W] -> [C, Ho, Wo].

    ``strict``: (Ho, Wo) = ``size``, per-axis factors (n_src - 1) / (n_dst - 1).
    ``relaxed``: both axes use f = min of the two factors, and n_out = floor((n_src - 1) / f + 1e-7) + 1.
    See the module doc for the exact weights and the divisor.
    """
    c, h, w = image.shape
    th, tw = size
    if th < 2 or tw < 2:
        raise QcnnError(f"resize target {th}x{tw} must be at least 2x2")
    sh = f32(h - 1) / f32(th - 1)
    sw = f32(w - 1) / f32(tw - 1)
    if mode == "strict":
        ho, wo = th, tw
    elif mode == "relaxed":
        sh = sw = min(sh, sw)
        if sh <= 0:
            raise QcnnError(f"a {h}x{w} image cannot be resized in relaxed mode (needs at least 2 pixels per side)")
        ho = int(float(f32(h - 1) / sh) + 1e-7) + 1
        wo = int(float(f32(w - 1) / sw) + 1e-7) + 1
    else:
        raise QcnnError(f"unknown resize_mode {mode!r} (strict or relaxed)")
    y0, y1, wy0, wy1 = _axis_taps(h, ho, sh)
    x0, x1, wx0, wx1 = _axis_taps(w, wo, sw)
    img = np.asarray(image, dtype=f32)
    top, bot = img[:, y0, :], img[:, y1, :]  # [C, Ho, W]
    tl, tr, bl, br = top[:, :, x0], top[:, :, x1], bot[:, :, x0], bot[:, :, x1]
    w_tl = wy0[:, None] * wx0[None, :]
    w_tr = wy0[:, None] * wx1[None, :]
    w_bl = wy1[:, None] * wx0[None, :]
    w_br = wy1[:, None] * wx1[None, :]
    total = tl * w_tl + tr * w_tr
    total += bl * w_bl
    total += br * w_br
    wsum = w_tl + w_tr
    wsum += w_bl
    wsum += w_br
    return (total / wsum).astype(f32)


def _spec_and_mean(model_or_spec: Model | NetSpec, mean: np.ndarray | None) -> tuple[NetSpec, np.ndarray | None]:
    if isinstance(model_or_spec, Model):
        spec = model_or_spec.spec
        mean = model_or_spec.mean if mean is None else mean
    elif isinstance(model_or_spec, NetSpec):
        spec = model_or_spec
    else:
        raise QcnnError(f"preprocess needs a Model or NetSpec, got {type(model_or_spec).__name__}")
    return spec, mean


def _crop(image: np.ndarray, ch: int, cw: int) -> np.ndarray:
    _, h, w = image.shape
    if ch > h or cw > w:
        raise QcnnError(f"cannot crop {ch}x{cw} from a {h}x{w} image")
    oy, ox = (h - ch) // 2, (w - cw) // 2
    return image[:, oy:oy + ch, ox:ox + cw]


def preprocess(image: str | os.PathLike[str] | np.ndarray, model_or_spec: Model | NetSpec,
               mean: np.ndarray | None = None) -> np.ndarray:
    """An image file or a decoded float [3, H, W] BGR array -> the network input float32 [C, crop, crop].

    Follows ``spec.preprocess`` (keys channels BGR|RGB, resize [h, w], resize_mode
    strict|relaxed, crop, mean ``image``, mean_after_crop, scale); the mean image is the
    model's ``params["preprocess"]["mean"]`` unless ``mean`` is given.
    """
    spec, mean_img = _spec_and_mean(model_or_spec, mean)
    pre: Mapping[str, Any] = spec.preprocess
    where = str(image) if not isinstance(image, np.ndarray) else "input image"
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype.kind not in "fiu":
            raise QcnnError(f"an image array must be numeric [3, H, W] BGR, got {image.dtype} {list(image.shape)}")
        img = np.asarray(image, dtype=f32)
        if not np.isfinite(img).all():
            raise QcnnError("the image array contains NaN or Inf")
    else:
        img = read_image(image)
    channels = str(pre.get("channels", "BGR")).upper()
    if channels == "RGB":
        img = img[::-1]
    elif channels != "BGR":
        raise QcnnError(f"{spec.name}: unknown preprocess channels {channels!r} (BGR or RGB)")
    if "resize" in pre:
        rh, rw = (int(v) for v in pre["resize"])
        img = resize_bilinear(img, (rh, rw), str(pre.get("resize_mode", "strict")))
    crop = pre.get("crop")
    ch, cw = (int(crop), int(crop)) if crop is not None else (spec.input[1], spec.input[2])
    use_mean = pre.get("mean") == "image"
    if use_mean and mean_img is None:
        raise QcnnError(f"{spec.name} preprocessing subtracts a mean image, but none was given "
                        "(load the model with its mean image, or pass mean=...)")
    after = bool(pre.get("mean_after_crop"))
    if use_mean and not after:
        img = _subtract(img, mean_img, where)
    try:
        img = _crop(img, ch, cw)
    except QcnnError as err:
        raise QcnnError(str(err), where) from None
    if use_mean and after:
        img = _subtract(img, mean_img, where)
    if "scale" in pre:
        img = img * f32(pre["scale"])
    out = np.ascontiguousarray(img, dtype=f32)
    if out.shape != tuple(spec.input):
        raise QcnnError(f"preprocessing gives {list(out.shape)}, but {spec.name} takes {list(spec.input)}", where)
    return out


def _subtract(img: np.ndarray, mean: np.ndarray | None, where: str) -> np.ndarray:
    assert mean is not None
    if mean.shape != img.shape:
        raise QcnnError(f"mean image is {list(mean.shape)} but the image at that step is {list(img.shape)}", where)
    return (img - mean.astype(f32)).astype(f32)
