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

The units shape the opening only broadly: after open_lips a wide smile's rendered opening was still a
rounded box where the photo's is a crescent (IoU 0.87 on open_smile_man), with the cavity showing in its
corners and the upper lip's red painted on the teeth. `shape_opening` then moves the lips' edges themselves
(model-space offsets outside the units, `Reconstruction.corrective`, saved as Result.lips_shape and offered
in Blender as the PhotoLips shape key): on open smiles it takes the IoU to 0.92-0.96.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..model.camera import project, unproject
from ..render.raytrace import Bvh
from .landmarks import INNER_LIPS, OUTER_LIPS
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


SHAPE_ANGLES = 120  # rays from the opening's centre along which the rendered and the photo's edges are compared
SHAPE_REACH = 1.3  # the warp fades out at this × the outer lip contour's radius along each ray
SHAPE_DEPTH_M = (0.03, 0.05)  # vertices this far behind the lips' front move fully, then less, then not at all
SHAPE_ROUNDS = 3
SHAPE_UPRIGHT = 0.5  # rays within 30° (sin 0.5) of the mouth's line move their vertices less, those along it not
SHAPE_MAX_M = 0.005  # no vertex moves further: a lip is 6-10 mm thick
SHAPE_RATIO = 1.5  # the most one round scales a vertex's distance from the centre by, either way


@dataclass(frozen=True)
class LipShaping:
    """What shape_opening did: the IoU of the rendered opening with the photo's contour before and after, and the
    largest vertex move (metres)."""

    before: float
    after: float
    largest_move_m: float


def polygon_radii(polygon: np.ndarray, centre: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(A,) distance from `centre` to the farthest crossing of each ray (angle) with the closed `polygon` (N, 2);
    0 where a ray crosses no edge."""
    d = np.stack([np.cos(angles), np.sin(angles)], -1)[:, None]  # (A, 1, 2)
    a, b = polygon - centre, np.roll(polygon, -1, 0) - centre  # edges a → b, centre at 0
    e = b - a
    cross = d[..., 0] * e[:, 1] - d[..., 1] * e[:, 0]  # (A, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a[:, 0] * e[:, 1] - a[:, 1] * e[:, 0]) / cross  # along the ray
        s = (a[:, 0] * d[..., 1] - a[:, 1] * d[..., 0]) / cross  # along the edge
    hit = np.isfinite(t) & (t > 0) & (s >= 0) & (s <= 1)
    return np.where(hit, t, 0.0).max(1)


def mask_radii(mask: np.ndarray, centre: np.ndarray, angles: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """(A,) distance from `centre` to the outermost pixel of `mask` (S, S) along each ray, within `reach` (A,)."""
    steps = np.arange(0.0, float(reach.max()) + 0.5, 0.5)
    x = centre[0] + np.cos(angles)[:, None] * steps
    y = centre[1] + np.sin(angles)[:, None] * steps
    i, j = np.floor(y).astype(int), np.floor(x).astype(int)
    inside = (i >= 0) & (j >= 0) & (i < mask.shape[0]) & (j < mask.shape[1]) & (steps <= reach[:, None])
    seen = np.zeros_like(inside)
    seen[inside] = mask[i[inside], j[inside]]
    last = np.where(seen.any(1), seen.shape[1] - 1 - np.argmax(seen[:, ::-1], 1), 0)
    return np.where(seen.any(1), steps[last] + 0.5, 0.0)


def radial_warp(offset: np.ndarray, angles: np.ndarray, rendered: np.ndarray, target: np.ndarray, reach: np.ndarray,
                normal: np.ndarray) -> np.ndarray:
    """(N, 2) points `offset` (N, 2, from the warp's centre) moved by the piecewise-linear radial map that takes, along
    each ray (`angles`), the radius `rendered` to `target` and leaves the centre and `reach` where they are; the
    move fades along the mouth's line (`normal` is perpendicular to it) as SHAPE_UPRIGHT says."""
    radius = np.linalg.norm(offset, axis=1)
    theta = np.mod(np.arctan2(offset[:, 1], offset[:, 0]), 2 * np.pi)
    periodic = np.r_[angles, 2 * np.pi]
    edge, photo_edge, far = (np.interp(theta, periodic, np.r_[v, v[:1]]) for v in (rendered, target, reach))
    moved = np.where(radius <= edge, radius * photo_edge / edge,
                     photo_edge + (radius - edge) * (far - photo_edge) / np.maximum(far - edge, 1e-6))
    moved = np.where(radius < far, moved, radius)
    # Along the mouth's line the move fades out: where the rendered lips meet short of the photo's corner,
    # stretching the corner outwards (16 mm on smile_woman_teeth) widened the mouth past the photo's.
    upright = np.minimum(np.abs(offset @ normal) / np.maximum(radius, 1e-9) / SHAPE_UPRIGHT, 1.0)
    return offset * ((radius + upright * (moved - radius)) / np.maximum(radius, 1e-9))[:, None]


def shape_opening(run: Any, points: np.ndarray) -> LipShaping:
    """Where the photo's mouth is open, move the lips' edges (run.corrective, in place) so that the rendered
    opening's outline meets the photo's inner lip contour along every ray from the contour's centre.

    The model's units shape the opening only broadly: after open_lips the rendered opening of a wide smile is
    still a rounded box where the photo's is a crescent (open_smile_man), with cavity at the corners and the upper
    lip's red painted on teeth. Each vertex near the mouth, and no more than SHAPE_DEPTH_M behind the lips'
    front, is moved in the image plane, at its own depth, by `radial_warp`, which takes the rendered edge onto the
    photo's and fades to nothing at SHAPE_REACH × the outer lip contour; three rounds, no vertex further than
    SHAPE_MAX_M, and nothing kept that does not raise the overlap."""
    if is_closed(points)[0]:
        return LipShaping(float("nan"), float("nan"), 0.0)
    opening = MouthOpening(run, points, density=1.0, max_size=OPENING_CROP)
    crop = opening.crop
    inner = lips_in_crop(points, crop)
    outer = crop.pixels(points[list(OUTER_LIPS)])
    centre = inner.mean(0)
    corners = crop.pixels(points[list(MOUTH_OUTLINE[:2])])
    across = corners[1] - corners[0]
    normal = np.array([-across[1], across[0]]) / max(float(np.linalg.norm(across)), 1e-9)  # up or down the face
    angles = np.linspace(0.0, 2 * np.pi, SHAPE_ANGLES, endpoint=False)
    target = polygon_radii(inner, centre, angles)
    reach = np.maximum(SHAPE_REACH * polygon_radii(outer, centre, angles), target + 2.0)
    contour = polygon_mask(inner, crop.size)
    with torch.no_grad():
        K = run.camera_K(crop).detach().double().cpu()
        rotation = run.rotation().detach().double().cpu()
    world_from_camera = run.world_from_camera.detach().double().cpu()

    def overlap(seen: np.ndarray) -> float:
        return float((seen & contour).sum() / max(int((seen | contour).sum()), 1))

    seen = opening.mask()
    before = overlap(seen)
    start = run.corrective.detach().clone()
    for _ in range(SHAPE_ROUNDS):
        # a ray that meets little or none of the rendered opening moves its vertices at most SHAPE_RATIO-fold
        rendered = np.clip(mask_radii(seen, centre, angles, reach), target / SHAPE_RATIO, target * SHAPE_RATIO)
        with torch.no_grad():
            world = run.world_vertices().detach().double().cpu()
        pixel, depth = project(world, K, world_from_camera)
        offset = pixel.numpy() - centre
        warped = radial_warp(offset, angles, rendered, target, reach, normal)
        moving = np.abs(warped - offset).max(1) > 0
        front = np.quantile(depth.numpy()[moving], 0.05) if moving.any() else 0.0
        lo, hi = SHAPE_DEPTH_M
        weight = moving * np.clip((front + hi - depth.numpy()) / (hi - lo), 0.0, 1.0)
        new_pixel = torch.as_tensor(pixel.numpy() + weight[:, None] * (warped - offset))
        new_world = unproject(new_pixel, depth, K, world_from_camera)
        with torch.no_grad():
            run.corrective += ((new_world - world) * torch.as_tensor(weight > 0)[:, None] @ rotation).to(run.corrective)
            length = (run.corrective - start).norm(dim=1, keepdim=True)
            run.corrective.copy_(start + (run.corrective - start) * (SHAPE_MAX_M / length.clamp(min=SHAPE_MAX_M)))
        seen = opening.mask()
    after = overlap(seen)
    largest = float((run.corrective - start).norm(dim=1).max())
    if after <= before:
        with torch.no_grad():
            run.corrective.copy_(start)
        after, largest = before, 0.0
    log.info("lips: opening reshaped, inner contour IoU %.2f -> %.2f, largest move %.1f mm", before, after,
             1000 * largest)
    return LipShaping(before, after, largest)
