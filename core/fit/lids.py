"""Lids that open as far as the photo's eyes.

fit_eyelids (fit/eyes.py) fits the lid units to MediaPipe's eye-contour
landmarks through their embedded surface points, which lie on the lid skin a
little outside its margin: the rendered eye opening came back smaller than the
contour, 65 % of its area on astronaut and 75 % on glasses_beard_man, irises
half hidden and the eyes half shut. The contour itself follows the lid
margins, the outline of the eyeball the photo shows, so each lid is then set
where the eyeball rendered through the lids best covers its eye's contour
polygon (intersection over union, primary rays only): first the upper lid, on a
grid of one signed unit (eyeWide above zero, eyeBlink below), then the lower
lid (eyeSquint), each step scored for both eyes from the same render and
chosen per eye, with a weak pull towards the landmark fit's value.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..render.raytrace import Bvh
from .eyes import eye_crop, run_eye_vertices
from .landmarks import LEFT_EYE, RIGHT_EYE
from .teeth import crop_rays, polygon_mask

log = logging.getLogger(__name__)

UPPER_LID = np.round(np.arange(-0.6, 1.0001, 0.05), 2)  # eyeWide (> 0) or eyeBlink (< 0) of each eye ...
LOWER_LID = np.round(np.arange(0.0, 0.6001, 0.05), 2)  # ... then its eyeSquint
LID_PRIOR = 0.02  # IoU given up per unit of change from the landmark fit: a flat score keeps the fitted lid
EYES = (("eyeBlinkLeft", "eyeWideLeft", "eyeSquintLeft", LEFT_EYE),  # [left (+X), right]: its units, its contour
        ("eyeBlinkRight", "eyeWideRight", "eyeSquintRight", RIGHT_EYE))
LID_CROP = 200  # the eye crop's side at most, pixels


class EyeOpenings:
    """The rendered eyeballs, seen through the lids, against the photo's eye contours on an eye crop: a BVH of
    the head and the eyeballs (turned straight ahead: a sphere's outline does not depend on where it looks) that
    follows run.expression. `run` is a stages.Reconstruction (duck-typed as in fit/lips.py); points the photo's
    landmarks."""

    def __init__(self, run: Any, points: np.ndarray) -> None:
        model = run.model
        self.run = run
        self.crop = crop = eye_crop(points, density=1.0, max_size=LID_CROP)
        self.rays = crop_rays(run, crop)
        self.contours = [polygon_mask(crop.pixels(points[list(eye[3])]), crop.size) for eye in EYES]
        self.eyes = run_eye_vertices(run, np.zeros((2, 2))).cpu()
        self.head_faces = run.faces.shape[0]
        self.right_eye_face = torch.cat([torch.zeros(self.head_faces, dtype=torch.bool),
                                         model.eye_faces.cpu()[:, 0] >= self.eyes.shape[0] // 2])
        self.bvh = Bvh(self.vertices(), torch.cat([run.faces.cpu(), model.eye_faces.cpu().long() + model.n_vertices]))

    def vertices(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.run.world_vertices().cpu(), self.eyes])

    def overlaps(self) -> np.ndarray:
        """IoU of the [left, right] rendered eyeball with its eye's contour polygon, for the current expression."""
        self.bvh.refit(self.vertices())
        hits = self.bvh.intersect(*self.rays)
        eyeball = hits.hit & (hits.face >= self.head_faces)
        right = self.right_eye_face[hits.face.clamp_min(0).long()]
        out = []
        for k, contour in enumerate(self.contours):
            seen = (eyeball & (right == bool(k))).numpy().reshape(contour.shape)
            out.append((seen & contour).sum() / max(int((seen | contour).sum()), 1))
        return np.array(out)


def open_lids(run: Any, points: np.ndarray) -> np.ndarray:
    """Set run.expression's lid units (in place) where the rendered eyeballs best cover the photo's eye contours
    (the module docstring); returns the IoU of the [left, right] eye after."""
    model = run.model
    openings = EyeOpenings(run, points)
    units = [[model.expression_index(name) for name in eye[:3]] for eye in EYES]

    def set_lid(eye: int, lower: bool, value: float) -> None:
        blink, wide, squint = units[eye]
        with torch.no_grad():
            if lower:
                run.expression[squint] = value
            else:
                run.expression[blink], run.expression[wide] = max(0.0, -value), max(0.0, value)

    def lid(eye: int, lower: bool) -> float:
        blink, wide, squint = (float(run.expression[k].detach().clamp(0, 1)) for k in units[eye])
        return squint if lower else wide - blink

    before = openings.overlaps()
    for lower, grid in ((False, UPPER_LID), (True, LOWER_LID)):
        start = [lid(eye, lower) for eye in range(2)]
        saved = run.expression.detach().clone()
        scores = []
        for value in grid:
            for eye in range(2):
                set_lid(eye, lower, float(value))
            scores.append(openings.overlaps() - LID_PRIOR * np.abs(float(value) - np.array(start)))
        with torch.no_grad():
            run.expression.copy_(saved)  # the fitted lids exactly (a blink and a wide both above zero stay so)
        kept = openings.overlaps()
        for eye in range(2):
            column = np.array([s[eye] for s in scores])
            if column.max() > kept[eye] + 1e-9:
                set_lid(eye, lower, float(grid[int(column.argmax())]))
    after = openings.overlaps()
    log.info("lids: eye contour IoU left %.2f -> %.2f, right %.2f -> %.2f; %s", before[0], after[0], before[1],
             after[1], {name: round(float(run.expression[model.expression_index(name)].detach()), 2)
                        for eye in EYES for name in eye[:3]})
    return after
