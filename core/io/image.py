"""Load a photo at its own resolution, or fail with one sentence; and the windows of it that the stages work on.

Photos arrive in every shape a camera, a phone or an editor can produce:
EXIF-rotated, grey, with alpha, 16-bit, CMYK, palette, HEIC, AVIF, 48
megapixels. This module is the single gate where that is turned into one
thing, an upright (H, W, 3) sRGB array at full resolution, kept as uint8 (or
uint16 for 16-bit sources: a 48 MP photo is 144 MB, not the 576 MB of float32),
and where bad files are refused.

Nothing downstream works on the full-resolution photo except the final
composite: the reconstruction works on a `Window` around the face, area-averaged
to the quality's working size (`Photo.window`), and on a small `Photo.preview`
for face detection and the report. So the cost of a reconstruction does not
grow with the photo's pixel count, apart from decoding it and writing the
full-resolution results.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..common.errors import FaceStageError
from .exif import SOURCE_ESTIMATED, focal_from_exif

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP",
                     "HEIF": "HEIC", "AVIF": "AVIF"}
SUPPORTED_NAMES = "JPEG, PNG, WebP, TIFF, BMP, HEIC/HEIF or AVIF"
MIN_SIDE = 64
MAX_ASPECT = 10.0
MAX_PIXELS = 250_000_000
PNG_FAST_ABOVE_PX = 4_000_000  # larger images are written with zlib level 1: 5x faster, ~15 % bigger
_CHUNK_VALUES = 1 << 22  # array elements converted at once by the chunked conversions (16 MB of float32)
_PILLOW_LIMIT_LOCK = threading.Lock()  # Pillow's bomb limit and warning filters are process-global


# --------------------------------------------------------------------------- transfer functions


def _srgb_decode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


@functools.cache
def _decode_table(levels: int) -> np.ndarray:
    """sRGB → linear for every code of an 8- or 16-bit image (a 256- or 65536-entry table)."""
    return _srgb_decode(np.arange(levels, dtype=np.float64) / (levels - 1))


def _levels(array: np.ndarray) -> int:
    return 65536 if array.dtype == np.uint16 else 256


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding; the renderer works in linear light. Integer images (uint8/uint16) go through a
    look-up table, so a full-resolution photo costs one float32 array and no temporaries."""
    if x.dtype in (np.uint8, np.uint16):
        return _decode_table(_levels(x))[x]
    return _srgb_decode(x)


def _srgb_encode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def _row_chunks(array: np.ndarray) -> range:
    """Row counts per chunk for the chunked conversions (at least one row)."""
    per_row = max(1, int(np.prod(array.shape[1:])))
    return range(0, array.shape[0], max(1, _CHUNK_VALUES // per_row))


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding for writing 8-bit previews; chunked so a full-resolution image needs no temporaries."""
    x = np.asarray(x)
    if x.ndim < 2:
        return _srgb_encode(x)
    out = np.empty(x.shape, np.float32)
    step = _row_chunks(x).step
    for row in range(0, x.shape[0], step):
        out[row:row + step] = _srgb_encode(x[row:row + step])
    return out


def to_uint8(x: np.ndarray, encode_srgb: bool = False) -> np.ndarray:
    """An image as uint8: floats in [0, 1] (optionally linear, then sRGB-encoded) rounded, uint16 rescaled, uint8 as is.
    Converted in row chunks, so only the uint8 result is allocated."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    out = np.empty(x.shape, np.uint8)
    step = _row_chunks(x).step if x.ndim >= 2 else max(1, x.shape[0])
    for row in range(0, x.shape[0], step):
        part = x[row:row + step]
        if part.dtype == np.uint16:
            out[row:row + step] = ((part.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
            continue
        part = np.nan_to_num(part.astype(np.float32, copy=False))
        if encode_srgb:
            part = _srgb_encode(part)
        out[row:row + step] = np.round(np.clip(part, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def to_float(x: np.ndarray) -> np.ndarray:
    """An sRGB image as float32 in [0, 1] (uint8/uint16 scaled, floats as they are)."""
    if x.dtype in (np.uint8, np.uint16):
        return np.multiply(x, np.float32(1.0 / (_levels(x) - 1)), dtype=np.float32)
    return np.asarray(x, np.float32)


# --------------------------------------------------------------------------- windows


def area_reduce(image: np.ndarray, factor: int, linear: bool = False) -> np.ndarray:
    """Mean of each factor × factor block of (H, W[, C]) as float32 (H // factor, W // factor[, C]); partial
    blocks at the right and bottom edges are dropped. Integer images are scaled to [0, 1], and decoded from
    sRGB first when `linear` (averaging happens in linear light). Works in row strips: memory is the output's."""
    factor = max(1, int(factor))
    h, w = image.shape[0] // factor, image.shape[1] // factor
    out = np.empty((h, w, *image.shape[2:]), np.float32)
    strip = max(1, _CHUNK_VALUES // max(1, factor * factor * w * int(np.prod(image.shape[2:]))))
    for row in range(0, h, strip):
        rows = min(strip, h - row)
        part = image[row * factor:(row + rows) * factor, :w * factor]
        values = srgb_to_linear(part) if linear else to_float(part)
        out[row:row + rows] = values.reshape(rows, factor, w, factor, *image.shape[2:]).mean((1, 3))
    return out


@dataclass
class Window:
    """A rectangle of the photo as float32, area-averaged by an integer step.

    Pixel (i, j) is the mean of photo pixels [x0 + step·j, x0 + step·(j + 1)) × [y0 + step·i, y0 + step·(i + 1)),
    so photo coordinate x (pixel edges at integers) is window coordinate (x − x0) / step.
    """

    pixels: np.ndarray  # (h, w[, C]) float32; linear light when cut from the photo for the renderer
    x0: int
    y0: int
    step: int

    def around(self, box: tuple[float, float, float, float]) -> Window:
        """The part of this window that covers `box` (x0, y0, x1, y1 in photo pixels), in whole window pixels."""
        h, w = self.pixels.shape[:2]
        j0, j1 = max(0, math.floor((box[0] - self.x0) / self.step)), min(w, math.ceil((box[2] - self.x0) / self.step))
        i0, i1 = max(0, math.floor((box[1] - self.y0) / self.step)), min(h, math.ceil((box[3] - self.y0) / self.step))
        if j1 <= j0 or i1 <= i0:
            return self
        return Window(self.pixels[i0:i1, j0:j1], self.x0 + j0 * self.step, self.y0 + i0 * self.step, self.step)

    def reduced(self, factor: int) -> Window:
        """The same window averaged by a further integer factor."""
        if factor <= 1:
            return self
        return Window(area_reduce(self.pixels, factor), self.x0, self.y0, self.step * factor)


def window(image: np.ndarray, box: tuple[float, float, float, float], step: int = 1, linear: bool = False) -> Window:
    """The part of (H, W[, C]) `image` covering `box` (x0, y0, x1, y1 in photo pixels, clipped to the image),
    area-averaged by `step`; integer images are scaled to [0, 1] and, when `linear`, decoded from sRGB."""
    height, width = image.shape[:2]
    step = max(1, int(step))
    x0 = min(max(0, math.floor(box[0])), width - 1)
    y0 = min(max(0, math.floor(box[1])), height - 1)
    x1 = min(width, max(x0 + 1, math.ceil(box[2])))
    y1 = min(height, max(y0 + 1, math.ceil(box[3])))
    # Whole blocks: grow the region to a multiple of the step where the image allows it.
    x1 = min(width, x0 + step * math.ceil((x1 - x0) / step))
    y1 = min(height, y0 + step * math.ceil((y1 - y0) / step))
    region = image[y0:y1, x0:x1]
    if step > 1 and min(region.shape[:2]) >= step:
        pixels = area_reduce(region, step, linear)
    else:
        step = 1
        pixels = srgb_to_linear(region) if linear else to_float(region)
    return Window(np.ascontiguousarray(pixels), x0, y0, step)


# --------------------------------------------------------------------------- the photo


@dataclass
class Photo:
    """An upright sRGB photo at full resolution: (H, W, 3) uint8, or uint16 when the file had 16 bits per channel."""

    data: np.ndarray
    path: Path
    original_size: tuple[int, int]  # (width, height) as stored in the file, before the EXIF rotation
    warnings: list[str] = field(default_factory=list)
    exif_focal_35mm: float | None = None  # the camera's focal length (35 mm equivalent, see core/io/exif.py)
    focal_source: str = SOURCE_ESTIMATED  # where exif_focal_35mm came from: "exif-35mm", "exif-crop-factor", "estimated"

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def pixels(self) -> np.ndarray:
        """The whole photo as float32 in [0, 1]: a convenience for small photos; the pipeline never asks for it."""
        return to_float(self.data)

    def srgb8(self) -> np.ndarray:
        """The photo as 8-bit sRGB (what photo.png and the composites keep)."""
        return to_uint8(self.data)

    def preview(self, max_side: int) -> tuple[np.ndarray, int]:
        """(float32 sRGB image, factor): the photo area-averaged by the smallest integer factor that brings its
        longer side to at most max_side; photo coordinate = preview coordinate × factor."""
        factor = max(1, math.ceil(max(self.width, self.height) / max_side))
        if factor == 1:
            return to_float(self.data), 1
        return area_reduce(self.data, factor), factor


def _register_plugins() -> None:
    """HEIC/HEIF through pillow-heif (a pinned dependency; AVIF is Pillow's own)."""
    try:
        import pillow_heif  # optional at import time: only needed for the photos it opens
    except ImportError:
        return
    _register_heif_once(pillow_heif)


@functools.cache
def _register_heif_once(module: object) -> None:
    module.register_heif_opener()  # type: ignore[attr-defined]


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise FaceStageError(f"Cannot read photo {path}: the file does not exist.")
    if path.is_dir():
        raise FaceStageError(f"Cannot read photo {path}: it is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise FaceStageError(f"Cannot read photo {path}: the file is empty.")
    if not os.access(path, os.R_OK):
        raise FaceStageError(f"Cannot read photo {path}: permission denied.")
    _register_plugins()
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
        raise FaceStageError(f"Cannot read photo {path}: it is not an image FaceStage can read "
                             f"(use {SUPPORTED_NAMES}).") from None
    except Image.DecompressionBombError:
        raise FaceStageError(f"Cannot read photo {path}: it has more than {MAX_PIXELS // 1_000_000} megapixels.") from None
    except (OSError, ValueError):
        raise FaceStageError(f"Cannot read photo {path}: the file is damaged or truncated.") from None
    if image.format not in SUPPORTED_FORMATS:
        raise FaceStageError(
            f"Cannot read photo {path}: {image.format or 'this'} images are not supported (use {SUPPORTED_NAMES}).")
    return image


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise FaceStageError(f"Cannot read photo {path}: {width}x{height} pixels is too large (limit {MAX_PIXELS // 1_000_000} megapixels).")
    if min(width, height) < MIN_SIDE:
        raise FaceStageError(f"Photo {path} is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise FaceStageError(f"Photo {path} has an extreme aspect ratio of {aspect:.0f}:1 (at most {MAX_ASPECT:.0f}:1 is supported).")


def _raw_mode(image: Image.Image) -> str:
    """The decoder's raw mode (e.g. 'RGB;16B' for a 48-bit PNG), '' when unknown."""
    tile = getattr(image, "tile", None) or []
    if not tile:
        return ""
    args = tile[0].args if hasattr(tile[0], "args") else tile[0][3]
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _composite_alpha(rgba: np.ndarray) -> np.ndarray:
    """RGBA (uint8 or uint16) to RGB composited on black, in the same dtype, rounded."""
    peak = _levels(rgba) - 1
    wide = rgba.astype(np.uint32 if peak == 255 else np.uint64)
    return ((wide[..., :3] * wide[..., 3:4] + peak // 2) // peak).astype(rgba.dtype)


_ORIENT = {2: (False, True, 0), 3: (False, False, 2), 4: (True, False, 0), 5: (True, False, 1),  # (flip-ud, flip-lr, k)
           6: (False, False, 3), 7: (True, False, 3), 8: (False, False, 1)}


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an array the way ImageOps.exif_transpose does to an image."""
    if orientation == 5:  # transpose
        return np.ascontiguousarray(array.swapaxes(0, 1))
    if orientation == 7:  # transverse
        return np.ascontiguousarray(array.swapaxes(0, 1)[::-1, ::-1])
    flip_ud, flip_lr, turns = _ORIENT.get(orientation, (False, False, 0))
    if flip_ud:
        array = array[::-1]
    if flip_lr:
        array = array[:, ::-1]
    return np.ascontiguousarray(np.rot90(array, turns))


def _decode_deep_rgb(path: Path, image: Image.Image) -> np.ndarray:
    """48/64-bit RGB(A) PNG or TIFF: Pillow would cut it to 8 bits, OpenCV keeps uint16."""
    import cv2  # a MediaPipe dependency, imported only for the rare 16-bit colour photo

    data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)  # np.fromfile: non-ASCII paths on Windows
    if data is None or data.ndim != 3:
        raise OSError("undecodable")
    data = data[..., [2, 1, 0, 3][:data.shape[2]]]  # BGR(A) -> RGB(A)
    if data.shape[2] == 4:
        data = _composite_alpha(data)
    orientation = int(image.getexif().get(0x0112, 1) or 1)
    return _orient(data.astype(np.uint16, copy=False), orientation)


def _decode(path: Path, image: Image.Image, deep: bool) -> np.ndarray:
    """Any supported image to an upright (H, W, 3) uint8 or uint16 sRGB array; alpha is composited on black."""
    if deep:
        return _decode_deep_rgb(path, image)
    upright = ImageOps.exif_transpose(image)
    try:
        mode = upright.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.asarray(upright)
            if mode == "I" and grey.max() <= 255:
                grey = grey.astype(np.uint8)
            else:
                grey = np.clip(grey, 0, 65535).astype(np.uint16)
            return np.repeat(grey[..., None], 3, axis=2)
        if mode == "F":
            grey = np.round(np.clip(np.asarray(upright, np.float32), 0.0, 1.0) * 65535).astype(np.uint16)
            return np.repeat(grey[..., None], 3, axis=2)
        if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in upright.info):
            return _composite_alpha(np.asarray(upright.convert("RGBA")))
        return np.asarray(upright.convert("RGB"))
    finally:
        if upright is not image:
            upright.close()


def load_photo(path: str | os.PathLike[str]) -> Photo:
    """Read, validate and orient a photo at its full resolution, with the focal length its EXIF records."""
    path = Path(path)
    image = _open(path)
    try:
        width, height = image.size
        _check_size(path, width, height)
        deep = image.mode in ("RGB", "RGBA") and ";16" in _raw_mode(image)  # before anything loads the pixels
        focal = focal_from_exif(image)
        data = _decode(path, image, deep)
    except FaceStageError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise FaceStageError(f"Cannot read photo {path}: the file is damaged or truncated ({error}).".replace("..", ".")) from None
    finally:
        image.close()
    if focal is None:
        return Photo(data=data, path=path, original_size=(width, height))
    return Photo(data=data, path=path, original_size=(width, height), exif_focal_35mm=focal.focal_35mm,
                 focal_source=focal.source)


def save_png(path: str | os.PathLike[str], pixels: np.ndarray, bits: int = 8, encode_srgb: bool = False) -> None:
    """Write an (H, W[, C]) image as PNG: floats in [0, 1] (sRGB-encoded first when `encode_srgb`, i.e. when they
    are linear), or uint8; 16-bit is single-channel (linear maps). Large images are converted in chunks and
    compressed fast."""
    level = 1 if pixels.shape[0] * pixels.shape[1] > PNG_FAST_ABOVE_PX else 6
    if bits == 16:
        grey = np.clip(np.nan_to_num(pixels if pixels.ndim == 2 else pixels[..., 0]), 0.0, 1.0)
        Image.fromarray(np.round(grey * 65535).astype(np.uint16)).save(path, compress_level=level)
        return
    Image.fromarray(to_uint8(pixels, encode_srgb=encode_srgb)).save(path, compress_level=level)


def load_png(path: str | os.PathLike[str], raw: bool = False) -> np.ndarray:
    """Read an 8- or 16-bit PNG back to float32 in [0, 1] (inverse of save_png), or as stored when `raw`."""
    with Image.open(path) as image:
        bits16 = image.mode.startswith("I")
        data = np.asarray(image)
    if raw:
        return data
    if data.dtype == np.uint16 or bits16:
        return data.astype(np.float32) / 65535.0
    return data.astype(np.float32) / 255.0
