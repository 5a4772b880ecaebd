"""The face at working resolution: the photo window the stages cut their targets from, and skin masks on a crop's grid.

A reconstruction's cost must follow the face, not the photo: a 48 MP portrait
is fitted exactly like a 2 MP one. So once the face is found, the photo under
the face crop is read once, in linear light, area-averaged by the integer step
that leaves two to four times the quality's working size across the crop
(`face_window`); every stage cuts its targets from that window (area-averaged
again, at least 2:1), and draws its skin mask directly on its own crop grid
(`crop_skin_mask`) instead of on the full-resolution photo.
"""

from __future__ import annotations

import math

import numpy as np

from ..common.metrics import psnr, ssim
from ..io.image import Photo, Window, area_reduce, linear_to_srgb, window
from ..render.crop import FINAL_MAX_SIDE, Crop, face_crop
from .masks import inner_face_mask, skin_mask

WINDOW_MARGIN = 0.25  # of the crop side, on every edge: room for the crops of every stage and their bilinear taps
SUPERSAMPLE = 4  # mask polygons are drawn this much finer than the crop grid, then area-averaged (soft edges)


def face_window(photo: Photo, points: np.ndarray, working_size: int) -> Window:
    """The photo around the face (landmarks `points`, photo pixels) in linear light, with 2-4 × `working_size`
    pixels across the face crop (all of them when the photo has fewer)."""
    crop = face_crop(points, working_size)
    step = max(1, math.floor(crop.side / (2 * working_size)))
    return window(photo.data, crop.box(WINDOW_MARGIN), step=step, linear=True)


def crop_skin_mask(crop: Crop, points: np.ndarray, brows: bool = False, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """`skin_mask` on the crop's (size, size) grid: the landmarks are mapped into the crop and the mask is drawn
    `supersample` times finer, then area-averaged, so its cost depends on the crop size only."""
    scale = crop.size / crop.side * supersample
    local = (np.asarray(points, np.float64) - [crop.x0, crop.y0]) * scale
    side = crop.size * supersample
    return area_reduce(skin_mask(local, side, side, brows=brows), supersample)


def _on_photo_grid(photo_srgb: np.ndarray, render: np.ndarray, crop: Crop, points: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(render, photo) in sRGB on the photo's own grid inside the render crop, area-averaged (in linear light) by
    the step that keeps it under FINAL_MAX_SIDE across, and the landmarks on that grid."""
    step = max(1, math.ceil(crop.side / FINAL_MAX_SIDE))
    box = crop.box()
    rendered = window(render, box, step)
    photo = window(photo_srgb, box, step, linear=True)
    local = (np.asarray(points, np.float64) - [rendered.x0, rendered.y0]) / step
    return linear_to_srgb(rendered.pixels), linear_to_srgb(photo.pixels), local


def face_psnr(photo_srgb: np.ndarray, render: np.ndarray, crop: Crop, points: np.ndarray) -> float:
    """PSNR of the composited render (linear, photo grid) against the photo over the skin mask, on the photo's own
    grid inside the render crop: area-averaged (in linear light) by the step that keeps it under FINAL_MAX_SIDE
    across, so a 48 MP face costs what a 2048 px one does. Step 1 (faces up to that size) is the plain PSNR."""
    rendered, photo, local = _on_photo_grid(photo_srgb, render, crop, points)
    return psnr(rendered, photo, skin_mask(local, rendered.shape[1], rendered.shape[0]))


def inner_face_scores(photo_srgb: np.ndarray, render: np.ndarray, crop: Crop, points: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) of the composited render against the photo over the inner face (masks.inner_face_mask), on
    the same bounded grid as `face_psnr`: the photo's own inside the render crop, area-averaged past 2048 px."""
    rendered, photo, local = _on_photo_grid(photo_srgb, render, crop, points)
    inner = inner_face_mask(local, rendered.shape[1], rendered.shape[0])
    return psnr(rendered, photo, inner), ssim(rendered, photo, inner)
