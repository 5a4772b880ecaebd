"""The head's outline against the background, as a two-sided term of the photometric fit.

Stage 1 composites the rendered head over the photo itself and compares the two inside the skin mask, so
the outline is never measured: the skin mask stops short of it, and a head drawn too narrow would cost
nothing anyway (its uncovered pixels show the photo, i.e. the true cheek). This term compares the render's
coverage (alpha, whose outline gradients come from edge sampling) with a person/background segmentation of
the photo, in a band round the jaw and cheek outline (the MediaPipe jaw-line landmarks from ear to ear), so
the outline is pulled from both sides.

It counts only where the outline is seen against the background: where the segmentation finds background
within the band's reach. Along hair, a raised hand or the neck the person mask runs on past the face, and
those stretches drop out by themselves. An external `trust` (H, W) in [0, 1] (e.g. the occlusion mask's
"not hair") multiplies it; everywhere 1 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..render.crop import Crop
from .occlusion import person_mask

ENABLED = False  # stage 1 uses the outline term (off until measured not to hurt on bench/geometry.py --mode pipeline)
WEIGHT = 0.3  # of the mean squared coverage error over the band, against the photometric loss
# The lower face oval, ear to ear round the chin: where the face's own outline usually meets the background.
OUTLINE = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323)
BAND_FRACTION = 0.05  # half-width of the band, as a fraction of the face width


@dataclass(frozen=True)
class Outline:
    """Full-photo arrays of the outline term: the target coverage and each pixel's weight."""

    target: np.ndarray  # (H, W) in [0, 1]: the person segmentation
    weight: np.ndarray  # (H, W) in [0, 1]: band × seen against the background × trust

    def on(self, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
        """(target, weight) resampled onto a crop's grid."""
        return crop.cut(self.target), crop.cut(self.weight)


def outline(photo_srgb: np.ndarray, points: np.ndarray, person: np.ndarray | None = None,
            trust: np.ndarray | None = None) -> Outline:
    """The outline term's target and weights for a photo (sRGB (H, W, 3)) and its 478 landmarks."""
    height, width = photo_srgb.shape[:2]
    person = person_mask(photo_srgb) if person is None else np.asarray(person, np.float32)
    half = max(1, int(round(BAND_FRACTION * float(np.ptp(points[:, 0])))))
    line = Image.new("L", (width, height), 0)
    ImageDraw.Draw(line).line([tuple(map(float, points[i])) for i in OUTLINE], fill=255, width=2 * half + 1,
                              joint="curve")
    band = np.asarray(line, np.float32) / 255.0
    from scipy.ndimage import minimum_filter  # heavy; only the photometric stage needs it

    # Background within reach: the smallest person value within twice the band's half-width.
    against_background = minimum_filter(person, size=4 * half + 1) < 0.5
    weight = band * against_background
    if trust is not None:
        weight = weight * np.clip(np.asarray(trust, np.float32), 0.0, 1.0)
    return Outline(target=person, weight=weight.astype(np.float32))
