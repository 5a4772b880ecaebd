"""The square window of the photo that the photometric stages render, and the resampling between the two grids.

Rendering the whole photo would spend most rays on background; the stages
render a square around the face (`face_crop`) instead, at the quality's
working size, and the final render.png renders it at the photo's own pixel
density, up to FINAL_MAX_SIDE (`final_crop`). `Crop.K` turns the photo's
intrinsics into the window's, `Crop.cut` resamples a photo-grid image (or a
`Window` of it) into the window, `paste` puts a window image back and
`paste_over` composites a rendered head over the photo. All of them only touch
the photo pixels under the window, so their cost follows the face, not the
photo: cutting area-averages first when the crop is two or more times coarser
than its source (a 48 MP face is not point-sampled into 256 pixels), then
samples bilinearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..io.image import Window, window

CROP_MARGIN = 1.5  # crop side = CROP_MARGIN × face landmark extent
FINAL_MAX_SIDE = 2048


def _resample(image: np.ndarray, xs: torch.Tensor, ys: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of (H, W[, C]) at the grid xs × ys (normalised [-1, 1] coordinates, zero outside),
    and the (len(ys), len(xs)) mask of grid points inside the image."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
    out = torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    inside = (grid[0].abs() <= 1).all(-1).numpy()
    return (out[0] if image.ndim == 2 else out.permute(1, 2, 0)).numpy(), inside


@dataclass
class Crop:
    """The square face region the photometric stages work in, and its camera."""

    x0: float
    y0: float
    side: float
    size: int  # pixels of the rendered crop

    def K(self, K_full: np.ndarray) -> np.ndarray:
        """The window's intrinsics from the photo's."""
        scale = self.size / self.side
        out = K_full.copy()
        out[0, 2] -= self.x0
        out[1, 2] -= self.y0
        out[:2] *= scale
        return out

    def pixels(self, points: np.ndarray) -> np.ndarray:
        """Photo-pixel points (..., 2) in the crop's pixels."""
        return (points - [self.x0, self.y0]) * (self.size / self.side)

    def box(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the window in photo pixels, grown by `margin` × side on every edge."""
        grow = margin * self.side
        return (self.x0 - grow, self.y0 - grow, self.x0 + self.side + grow, self.y0 + self.side + grow)

    def on_photo(self, height: int, width: int) -> np.ndarray:
        """(size, size) bool: the crop pixels whose centres lie on a (height, width) photo (`cut` reads 0 off it)."""
        centres = (np.arange(self.size) + 0.5) * (self.side / self.size)
        rows = (self.y0 + centres >= 0) & (self.y0 + centres < height)
        columns = (self.x0 + centres >= 0) & (self.x0 + centres < width)
        return rows[:, None] & columns[None, :]

    def cut(self, image: np.ndarray | Window, linear: bool = False) -> np.ndarray:
        """Resample a photo-grid image (H, W[, C]) or a Window of it into the crop's (size, size) grid, zero outside.

        Only the pixels under the window are read; uint8/uint16 sRGB images are decoded to linear light first
        when `linear`. Area-averaged by the integer factor the crop is coarser than its source, then bilinear.
        """
        pitch = self.side / self.size  # photo pixels per crop pixel
        box = self.box(2 * max(1.0, pitch) / self.side)  # the window, with room for the bilinear taps at its edges
        if isinstance(image, Window):
            source = image.around(box).reduced(math.floor(pitch / image.step))
        else:
            source = window(image, box, step=math.floor(pitch), linear=linear)
        h, w = source.pixels.shape[:2]
        centres = (torch.arange(self.size, dtype=torch.float64) + 0.5) * pitch
        xs = ((self.x0 + centres - source.x0) / source.step / w * 2 - 1).float()
        ys = ((self.y0 + centres - source.y0) / source.step / h * 2 - 1).float()
        return _resample(source.pixels, xs, ys)[0]


def _photo_window(crop: Crop, height: int, width: int) -> tuple[slice, slice, torch.Tensor, torch.Tensor] | None:
    """The photo pixels whose centres fall inside the crop (the grid_sample "inside" test per axis): their rows and
    columns, and their normalised crop coordinates; None when the crop misses the photo."""
    def axis(count: int, start: float) -> tuple[slice, torch.Tensor] | None:
        centres = np.arange(count) + 0.5
        inside = np.flatnonzero(np.abs((centres - start) / crop.side * 2 - 1) <= 1)
        if inside.size == 0:
            return None
        first, last = int(inside[0]), int(inside[-1]) + 1
        coords = ((torch.arange(first, last, dtype=torch.float64) + 0.5 - start) / crop.side * 2 - 1).float()
        return slice(first, last), coords

    rows, cols = axis(height, crop.y0), axis(width, crop.x0)
    if rows is None or cols is None:
        return None
    return rows[0], cols[0], cols[1], rows[1]


def paste(crop: Crop, image: np.ndarray, height: int, width: int, outside: np.ndarray,
          in_place: bool = False) -> np.ndarray:
    """Put a crop-grid image back onto the (height, width) photo grid (bilinear), keeping ``outside`` where the crop
    does not reach. Only the photo pixels under the window are computed; with `in_place`, ``outside`` is written
    into and returned (no full-resolution copy)."""
    out = outside if in_place else outside.copy()
    found = _photo_window(crop, height, width)
    if found is not None:
        rows, cols, xs, ys = found
        out[rows, cols] = _resample(image, xs, ys)[0].astype(out.dtype, copy=False)
    return out


def paste_over(crop: Crop, premultiplied: np.ndarray, alpha: np.ndarray, photo: np.ndarray,
               in_place: bool = False) -> np.ndarray:
    """Composite a crop-grid render over the photo grid: its premultiplied colour (alpha · surface, (n, n, 3)) and
    coverage (n, n) are resampled bilinearly, then photo ← colour + (1 − alpha) · photo.

    Unlike `paste`, the photo under the window keeps its own pixels wherever the head does not cover them, so a
    face rendered at 2048 px inside a 48 MP photo does not blur the hair and background around it."""
    out = photo if in_place else photo.copy()
    found = _photo_window(crop, photo.shape[0], photo.shape[1])
    if found is not None:
        rows, cols, xs, ys = found
        colour = _resample(premultiplied, xs, ys)[0]
        cover = _resample(alpha, xs, ys)[0][..., None]
        out[rows, cols] = (colour + (1.0 - cover) * out[rows, cols]).astype(out.dtype, copy=False)
    return out


def regrid(image: np.ndarray, size: int) -> np.ndarray:
    """A square image (n, n[, C]) on another grid of the same square, (size, size[, C]): bilinear, pixel centres
    aligned (a crop rendered at another size, a texture at another resolution)."""
    planes = torch.from_numpy(np.ascontiguousarray(image)).reshape(*image.shape[:2], -1).permute(2, 0, 1)[None]
    planes = torch.nn.functional.interpolate(planes, size=(size, size), mode="bilinear", align_corners=False)
    return planes[0].permute(1, 2, 0).reshape(size, size, *image.shape[2:]).numpy()


def scale_under(crop: Crop, factor: np.ndarray, image: np.ndarray) -> None:
    """Multiply, in place, the photo-grid `image` (H, W, C) under the crop by the crop-grid `factor` (n, n, C),
    resampled bilinearly. The change (factor − 1) is what is resampled, so the taps past the crop's edge, which
    read zero, fade it out rather than darken a ring of pixels."""
    found = _photo_window(crop, image.shape[0], image.shape[1])
    if found is not None:
        rows, cols, xs, ys = found
        window = image[rows, cols]
        window += window * _resample(factor - 1.0, xs, ys)[0].astype(image.dtype, copy=False)


def square_around(points: np.ndarray, margin: float, density: float, min_size: int, max_size: int) -> Crop:
    """The square centred on `points`' bounding box, `margin` × its longer extent, rendered at `density` render
    pixels per photo pixel, clamped to [min_size, max_size]: the close-ups of the eyes and the mouth."""
    low, high = points.min(0), points.max(0)
    side = float(margin * max(high - low))
    centre = (low + high) / 2
    return Crop(float(centre[0] - side / 2), float(centre[1] - side / 2), side,
                int(min(max_size, max(min_size, round(density * side)))))


def face_crop(points: np.ndarray, size: int) -> Crop:
    """The square around the landmarks `points` (N, 2), CROP_MARGIN times their extent, rendered at `size` px."""
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    side = float(CROP_MARGIN * max(hi - lo))
    return Crop(x0=float(centre[0] - side / 2), y0=float(centre[1] - side / 2), side=side, size=size)


def final_crop(points: np.ndarray) -> Crop:
    """The face crop rendered at (up to) the photo's own pixel density for render.png."""
    crop = face_crop(points, 8)
    crop.size = int(min(FINAL_MAX_SIDE, max(64, round(crop.side))))
    return crop
