"""Which photo pixels are skin the model should explain: a mask from the landmarks.

The photometric loss must ignore hair, background, eyes, brows and the mouth
interior, which the skin model cannot reproduce; the landmark outlines give
those regions without a segmentation network. The per-texel stage keeps the
brows: they lie flat on the skin, and a face texture without them looks wrong.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Ordered MediaPipe FaceMesh loops (checked against mediapipe's FACEMESH_* edge sets).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_BROW = [276, 283, 282, 295, 285, 336, 296, 334, 293, 300]
RIGHT_BROW = [46, 53, 52, 65, 55, 107, 66, 105, 63, 70]
INNER_LIPS = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
EXCLUDED = (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, INNER_LIPS)


def _polygon(draw: ImageDraw.ImageDraw, points: np.ndarray, loop: list[int], fill: int) -> None:
    draw.polygon([tuple(map(float, points[i])) for i in loop], fill=fill)


def skin_mask(points: np.ndarray, width: int, height: int, margin_px: float | None = None,
              brows: bool = False) -> np.ndarray:
    """Float (H, W) mask: face oval minus eyes, mouth interior and (unless `brows`) brows, each grown by a margin."""
    face_width = float(np.ptp(points[:, 0]))
    margin = max(1.0, 0.02 * face_width) if margin_px is None else margin_px
    oval = Image.new("L", (width, height), 0)
    _polygon(ImageDraw.Draw(oval), points, FACE_OVAL, 255)
    holes = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(holes)
    for loop in EXCLUDED:
        if brows and loop in (LEFT_BROW, RIGHT_BROW):
            continue
        _polygon(draw, points, loop, 255)
    size = 2 * int(round(margin)) + 1
    oval = oval.filter(ImageFilter.MinFilter(size))
    holes = holes.filter(ImageFilter.MaxFilter(size))
    mask = (np.asarray(oval, np.float32) / 255.0) * (1.0 - np.asarray(holes, np.float32) / 255.0)
    return mask
