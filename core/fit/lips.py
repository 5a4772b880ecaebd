"""Lips that meet where the photo's do.

The head model's lips part a little at rest (the mean head shows mouth
interior between them), and the lip landmarks the stages fit sit on the lips'
surfaces rather than on the line where closed lips meet, so a closed mouth came
back with a black seam of teeth and cavity between its lips, in render.png and
in Blender (pale_redhead_frontal, glasses_man_frontal). Where the photo's
inner lip contour encloses almost nothing (its mean height under CLOSED_RATIO of
the mouth's width: 0.0002-0.012 on the 10 closed mouths of bench/photos, 0.076
and up on the 7 open ones), the ARKit unit that brings the lips together
whatever the jaw does, mouthClose, is raised on a CLOSE_STEP grid to the
smallest value at which the rendered opening, averaged across the mouth's
width, is no higher than the photo's (plus GAP_TOLERANCE_PX). Open mouths are
left alone: the embedded inner-lip points lie off the opening's silhouette
(with a perfect detector the mean head's jawOpen 0.3 renders an opening 1.4×
the contour's), so the contour cannot measure how far an open mouth opens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..render.raytrace import Bvh
from .landmarks import INNER_LIPS
from .teeth import MOUTH_OUTLINE, crop_rays, head_and_mouth_faces, mouth_crop, run_mouth_vertices

log = logging.getLogger(__name__)

CLOSING_UNIT = "mouthClose"
CLOSE_STEP = 0.025
CLOSE_MAX = 0.5  # beyond this the unit presses the lips together and thins them
GAP_TOLERANCE_PX = 0.25  # photo pixels of mean opening height the render may exceed the photo's contour by
CLOSED_RATIO = 0.03  # the photo's lips are closed: the contour's mean height below this × the mouth's width


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


def close_lips(run: Any, points: np.ndarray) -> LipClosure:
    """Where the photo's lips are closed, raise run.expression's mouthClose (in place) until the rendered lips part
    no more than the photo's (the module docstring); an open mouth is left as it is, its rendered gaps NaN.
    `run` is a stages.Reconstruction (duck-typed, as in fit/teeth.py); points the photo's landmarks."""
    width = float(np.linalg.norm(points[MOUTH_OUTLINE[0]] - points[MOUTH_OUTLINE[1]]))  # corner to corner
    photo_gap = lip_gap_px(contour_area(points[list(INNER_LIPS)]), width)
    index = run.model.expression_index(CLOSING_UNIT)
    start = float(run.expression[index].detach().clamp(0, 1))
    if photo_gap >= CLOSED_RATIO * width:
        return LipClosure(start, start, float("nan"), float("nan"), photo_gap)
    crop = mouth_crop(points, density=2.0, max_size=256)
    per_px = crop.size / crop.side  # crop pixels per photo pixel
    origin, dirs = crop_rays(run, crop)
    head_faces = run.faces.shape[0]

    def vertices() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([run.world_vertices(), run_mouth_vertices(run)]).cpu()

    bvh = Bvh(vertices(), head_and_mouth_faces(run))

    def rendered_gap() -> float:
        hits = bvh.intersect(origin, dirs)
        return lip_gap_px(float((hits.hit & (hits.face >= head_faces)).sum()) / per_px ** 2, width)

    before = rendered_gap()
    value, gap = start, before
    while gap > photo_gap + GAP_TOLERANCE_PX and value + CLOSE_STEP <= CLOSE_MAX + 1e-9:
        value += CLOSE_STEP
        with torch.no_grad():
            run.expression[index] = value
        bvh.refit(vertices())
        gap = rendered_gap()
    log.info("lips: %s %.3f -> %.3f, opening %.2f -> %.2f px (photo %.2f px)", CLOSING_UNIT, start, value, before, gap,
             photo_gap)
    return LipClosure(start, value, before, gap, photo_gap)
