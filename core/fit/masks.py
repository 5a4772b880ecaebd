"""Which photo pixels are skin the model should explain, and which the scores judge: masks from the landmarks.

The photometric loss must ignore hair, background, eyes, brows and the mouth
interior, which the skin model cannot reproduce; the landmark outlines give
those regions without a segmentation network. The per-texel stage keeps the
brows: they lie flat on the skin, and a face texture without them looks wrong.
`inner_face_mask` is the region every re-render score is measured over
(DESIGN.md "Method, second round"): brows to chin, eyes and mouth included.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull

from .landmarks import FACE_OVAL, INNER_LIPS, LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

EXCLUDED = (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, INNER_LIPS)
N_FACE_LANDMARKS = 468  # FaceMesh's face points; 468..477 are the irises
BROW_TOP = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)  # the upper brow outlines, right then left


def _polygon(draw: ImageDraw.ImageDraw, points: np.ndarray, loop: tuple[int, ...], fill: int) -> None:
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
    # scipy's separable min/max filters: the same result as Pillow's Min/MaxFilter, hundreds of times faster at large sizes.
    eroded = ndimage.minimum_filter(np.asarray(oval), size=size, mode="nearest")
    grown = ndimage.maximum_filter(np.asarray(holes), size=size, mode="nearest")
    mask = (eroded.astype(np.float32) / 255.0) * (1.0 - grown.astype(np.float32) / 255.0)
    return mask


def inner_face_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float (H, W) {0, 1} mask of the inner face: the convex hull of the 468 face landmarks at or below the highest
    brow landmark (image y grows downwards), so brows to chin with the eyes and the mouth, never the hair line."""
    face = np.asarray(points, np.float64)[:N_FACE_LANDMARKS]
    top = face[list(BROW_TOP), 1].min()
    kept = face[face[:, 1] >= top]
    hull = kept[ConvexHull(kept).vertices]
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x) - 0.5, float(y) - 0.5) for x, y in hull], fill=255)  # PIL: centres at integers
    return (np.asarray(canvas, np.float32) > 127).astype(np.float32)
