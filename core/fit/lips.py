"""Lips that meet, or part, where the photo's do.

The head model's lips part a little at rest (the mean head shows mouth
interior between them), and the lip landmarks the stages fit sit on the lips'
surfaces rather than on the line where closed lips meet, so a closed mouth came
back with a black seam of teeth and cavity between its lips, in render.png and
in Blender (pale_redhead_frontal, glasses_man_frontal). Where the photo's
inner lip contour encloses almost nothing (its mean height under CLOSED_RATIO of
the mouth's width: 0.0002-0.012 on the 9 closed mouths of bench/photos, 0.076
and up on its 7 open ones and 0.116 on the sample), the ARKit unit that brings the lips together
whatever the jaw does, mouthClose, is raised on a CLOSE_STEP grid to the
smallest value at which the rendered opening, averaged across the mouth's
width, is no higher than the photo's (plus GAP_TOLERANCE_PX).

An open mouth came back too closed. The inner-lip landmarks are a poor
measure of it through the model: their embedded points are not on the
opening's silhouette (with a perfect detector their contour is 0.7 of the
rendered opening's area, tests/test_lips.py), and the landmark fit left them
9-17 px from the photo's contour on four open smiles. On a photo, MediaPipe's
contour itself follows the silhouette, the edge where lip meets teeth or
tongue, and the rendered opening covered only 0.64-0.86 of it
(fringe_glasses_smile and smile_woman_teeth 0.64): the lips hid the top of the
upper teeth, and the mouth texture painted the photo's teeth onto the lips. So
`open_lips` sets the units that move the lips' edges and nothing else (the
upper lip up, the lower lip down, each side on its own) where the opening seen
through the lips best covers the contour polygon (intersection over union,
primary rays only, as fit/lids.py does for the eyes), with a weak pull towards
the landmark fit's values. The jaw stays where the chin landmarks put it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..render.raytrace import Bvh
from .landmarks import INNER_LIPS
from .teeth import (MOUTH_OUTLINE, crop_rays, head_and_mouth_faces, lips_in_crop, mouth_crop, polygon_mask,
                    run_mouth_vertices)

log = logging.getLogger(__name__)

CLOSING_UNIT = "mouthClose"
CLOSE_STEP = 0.025
CLOSE_MAX = 0.5  # beyond this the unit presses the lips together and thins them
GAP_TOLERANCE_PX = 0.25  # photo pixels of mean opening height the render may exceed the photo's contour by
CLOSED_RATIO = 0.03  # the photo's lips are closed: the contour's mean height below this × the mouth's width
OPENING_UNITS = ("mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight")
OPENING_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # values each opening unit is tried at, in turn
OPENING_PRIOR = 0.02  # IoU given up per unit of change from the landmark fit: a flat score keeps the fitted lips
OPENING_CROP = 160  # the mouth crop's side at most, pixels


class MouthOpening:
    """Where the rendered head shows its mouth parts through the lips, on a crop around the photo's mouth: a BVH of
    the head and the mouth parts that follows run.expression. `run` is a stages.Reconstruction (duck-typed, as in
    fit/teeth.py); points the photo's landmarks."""

    def __init__(self, run: Any, points: np.ndarray, density: float, max_size: int) -> None:
        self.run = run
        self.crop = mouth_crop(points, density=density, max_size=max_size)
        self.rays = crop_rays(run, self.crop)
        self.head_faces = run.faces.shape[0]
        self.bvh = Bvh(self.vertices(), head_and_mouth_faces(run))

    def vertices(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.run.world_vertices(), run_mouth_vertices(self.run)]).cpu()

    def mask(self) -> np.ndarray:
        """(S, S) bool: crop pixels whose first hit is a mouth part, for the current expression."""
        self.bvh.refit(self.vertices())
        hits = self.bvh.intersect(*self.rays)
        return (hits.hit & (hits.face >= self.head_faces)).numpy().reshape(self.crop.size, self.crop.size)


@dataclass(frozen=True)
class LipClosure:
    """What close_lips did: mouthClose before and after, and the mean opening heights (photo pixels)."""

    start: float
    value: float
    rendered_before: float
    rendered_after: float
    photo: float


def lip_gap_px(area_px: float, width_px: float) -> float:
    """Mean height of a mouth opening of `area_px` across a mouth `width_px` wide (photo pixels both)."""
    return area_px / max(width_px, 1.0)


def contour_area(points: np.ndarray) -> float:
    """Area enclosed by the polygon `points` (N, 2), exactly (the shoelace formula): a rasterised closed contour
    still covers its one-pixel outline."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def is_closed(points: np.ndarray) -> tuple[bool, float, float]:
    """(closed, mean opening height, mouth width) of the photo's inner lip contour, photo pixels."""
    width = float(np.linalg.norm(points[MOUTH_OUTLINE[0]] - points[MOUTH_OUTLINE[1]]))  # corner to corner
    gap = lip_gap_px(contour_area(points[list(INNER_LIPS)]), width)
    return gap < CLOSED_RATIO * width, gap, width


def close_lips(run: Any, points: np.ndarray) -> LipClosure:
    """Where the photo's lips are closed, raise run.expression's mouthClose (in place) until the rendered lips part
    no more than the photo's (the module docstring); an open mouth is left as it is, its rendered gaps NaN.
    `run` is a stages.Reconstruction (duck-typed, as in fit/teeth.py); points the photo's landmarks."""
    closed, photo_gap, width = is_closed(points)
    index = run.model.expression_index(CLOSING_UNIT)
    start = float(run.expression[index].detach().clamp(0, 1))
    if not closed:
        return LipClosure(start, start, float("nan"), float("nan"), photo_gap)
    opening = MouthOpening(run, points, density=2.0, max_size=256)
    per_px = opening.crop.size / opening.crop.side  # crop pixels per photo pixel

    def rendered_gap() -> float:
        return lip_gap_px(float(opening.mask().sum()) / per_px ** 2, width)

    before = rendered_gap()
    value, gap = start, before
    while gap > photo_gap + GAP_TOLERANCE_PX and value + CLOSE_STEP <= CLOSE_MAX + 1e-9:
        value += CLOSE_STEP
        with torch.no_grad():
            run.expression[index] = value
        gap = rendered_gap()
    log.info("lips: %s %.3f -> %.3f, opening %.2f -> %.2f px (photo %.2f px)", CLOSING_UNIT, start, value, before, gap,
             photo_gap)
    return LipClosure(start, value, before, gap, photo_gap)


@dataclass(frozen=True)
class LipOpening:
    """What open_lips did: the IoU of the rendered opening with the photo's contour before and after, and the
    opening units' values after (empty for a closed mouth, which it leaves alone)."""

    before: float
    after: float
    values: dict[str, float]


def open_lips(run: Any, points: np.ndarray) -> LipOpening:
    """Where the photo's mouth is open, set run.expression's OPENING_UNITS (in place) where the rendered opening
    best covers the photo's inner lip contour (the module docstring): one unit at a time over OPENING_GRID, each
    value scored by IoU less OPENING_PRIOR per unit of change, the best kept only if it beats the current lips."""
    if is_closed(points)[0]:
        return LipOpening(float("nan"), float("nan"), {})
    opening = MouthOpening(run, points, density=1.0, max_size=OPENING_CROP)
    contour = polygon_mask(lips_in_crop(points, opening.crop), opening.crop.size)

    def overlap() -> float:
        seen = opening.mask()
        return float((seen & contour).sum() / max(int((seen | contour).sum()), 1))

    units = [run.model.expression_index(name) for name in OPENING_UNITS]
    before = overlap()
    for unit in units:
        fitted = float(run.expression[unit].detach())
        start = min(max(fitted, 0.0), 1.0)
        kept = overlap()
        scores = []
        for value in OPENING_GRID:
            with torch.no_grad():
                run.expression[unit] = float(value)
            scores.append(overlap() - OPENING_PRIOR * abs(float(value) - start))
        best = int(np.argmax(scores))
        with torch.no_grad():
            run.expression[unit] = float(OPENING_GRID[best]) if scores[best] > kept + 1e-9 else fitted
    after = overlap()
    values = {name: round(float(run.expression[unit].detach()), 2) for name, unit in zip(OPENING_UNITS, units)}
    log.info("lips: inner contour IoU %.2f -> %.2f; %s", before, after, values)
    return LipOpening(before, after, values)
