"""Load a photo into a predictable float RGB array, or fail with one sentence.

Photos arrive in every shape a camera or an editor can produce: EXIF-rotated,
grey, with alpha, 16-bit, CMYK, palette, enormous. Everything downstream wants
one thing, an upright (H, W, 3) float32 sRGB array in [0, 1], so this module is
the single gate where that is established and where bad files are refused.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..common.errors import FaceStageError

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP"}
MAX_SIDE = 4096
MIN_SIDE = 64
MAX_ASPECT = 10.0
MAX_PIXELS = 250_000_000
_PILLOW_LIMIT_LOCK = threading.Lock()  # Pillow's bomb limit and warning filters are process-global


@dataclass
class Photo:
    """An upright sRGB photo as float32 (H, W, 3) in [0, 1]."""

    pixels: np.ndarray
    path: Path
    original_size: tuple[int, int]
    scale: float = 1.0
    warnings: list[str] = field(default_factory=list)
    exif_focal_35mm: float | None = None  # geom: EXIF FocalLengthIn35mmFilm (mm), when the photo states it

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding; the renderer works in linear light."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding for writing 8-bit previews."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise FaceStageError(f"Cannot read photo {path}: the file does not exist.")
    if path.is_dir():
        raise FaceStageError(f"Cannot read photo {path}: it is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise FaceStageError(f"Cannot read photo {path}: the file is empty.")
    if not os.access(path, os.R_OK):
        raise FaceStageError(f"Cannot read photo {path}: permission denied.")
    try:
        with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():  # `batch --jobs` opens photos from several threads
            limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # Pillow errors at twice this; we check the size ourselves
            try:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except UnidentifiedImageError:
        raise FaceStageError(f"Cannot read photo {path}: it is not an image FaceStage can read.") from None
    except Image.DecompressionBombError:
        raise FaceStageError(f"Cannot read photo {path}: it has more than {MAX_PIXELS // 1_000_000} megapixels.") from None
    except OSError:
        raise FaceStageError(f"Cannot read photo {path}: the file is damaged or truncated.") from None
    if image.format not in SUPPORTED_FORMATS:
        raise FaceStageError(
            f"Cannot read photo {path}: {image.format or 'this'} images are not supported "
            f"(use JPEG, PNG, WebP, TIFF or BMP)."
        )
    return image


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise FaceStageError(f"Cannot read photo {path}: {width}x{height} pixels is too large (limit {MAX_PIXELS // 1_000_000} megapixels).")
    if min(width, height) < MIN_SIDE:
        raise FaceStageError(f"Photo {path} is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise FaceStageError(f"Photo {path} has an extreme aspect ratio of {aspect:.0f}:1 (at most {MAX_ASPECT:.0f}:1 is supported).")


def _to_float_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to float32 RGB in [0, 1]; alpha is composited on black."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or grey.max() > 255 else 255.0
        return np.repeat((grey / peak)[..., None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:4]
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_photo(path: str | os.PathLike[str], max_side: int = MAX_SIDE) -> Photo:
    """Read, validate, orient and (if huge) downscale a photo.

    Large JPEGs are decoded at reduced size (``draft``) so that a 12000x8000
    photo never needs its full-resolution buffer in memory.
    """
    path = Path(path)
    image = _open(path)
    try:
        width, height = image.size
        _check_size(path, width, height)
        warn: list[str] = []
        focal_35mm = exif_focal_35mm(image)  # geom hook
        if image.format in ("JPEG", "MPO") and max(width, height) > 2 * max_side:
            image.draft("RGB", (width * max_side // max(width, height), height * max_side // max(width, height)))
        image = ImageOps.exif_transpose(image)
        if max(image.size) > max_side:
            factor = max_side / max(image.size)
            new_size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
            if image.mode not in ("RGB", "RGBA", "L", "LA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            image = image.resize(new_size, Image.Resampling.LANCZOS)
            warn.append(f"Photo was {width}x{height} pixels; downscaled to {new_size[0]}x{new_size[1]}.")
        if image.mode == "CMYK":
            image = image.convert("RGB")
        pixels = _to_float_rgb(image)
    except FaceStageError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise FaceStageError(f"Cannot read photo {path}: the file is damaged or truncated ({error}).".replace("..", ".")) from None
    finally:
        image.close()
    for message in warn:
        log.warning(message)
    scale = max(pixels.shape[:2]) / max(width, height)
    return Photo(pixels=pixels, path=path, original_size=(width, height), scale=scale, warnings=warn,
                 exif_focal_35mm=focal_35mm)


def exif_focal_35mm(image: Image.Image) -> float | None:
    """The 35 mm-equivalent focal length a photo's EXIF states (tag FocalLengthIn35mmFilm), or None (geom)."""
    try:
        value = image.getexif().get_ifd(0x8769).get(0xA405)
        return float(value) if value and float(value) > 0 else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def save_png(path: str | os.PathLike[str], pixels: np.ndarray, bits: int = 8) -> None:
    """Write an (H, W[, C]) array in [0, 1] as PNG; 16-bit is single-channel (linear maps)."""
    data = np.clip(np.nan_to_num(pixels), 0.0, 1.0)
    if bits == 16:
        grey = data if data.ndim == 2 else data[..., 0]
        Image.fromarray(np.round(grey * 65535).astype(np.uint16)).save(path)
        return
    Image.fromarray(np.round(data * 255).astype(np.uint8)).save(path)


def load_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8- or 16-bit PNG back to float32 in [0, 1] (inverse of save_png)."""
    with Image.open(path) as image:
        bits16 = image.mode.startswith("I")
        data = np.asarray(image)
    if data.dtype == np.uint16 or bits16:
        return data.astype(np.float32) / 65535.0
    return data.astype(np.float32) / 255.0
