"""Where the photo shows teeth: the bright, unsaturated pixels between the lips, and the crop around the mouth.

Two users: fit/mouth.py textures the model's teeth from them and
fit/references.py reads them as a near-white reference for the light's level;
both first slide the model's teeth onto them (`place_teeth`). Kept apart from both so that the reference, which the
skin stages import, does not import the mouth fit, which imports the stages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..apps.parts import mouth_shape
from ..io.image import linear_to_srgb
from ..model.camera import pixel_rays
from ..model.head import parts as head_parts
from ..render.crop import Crop, square_around
from ..render.raytrace import Bvh
from .landmarks import INNER_LIPS

MOUTH_OUTLINE = (61, 291, 0, 17)  # corners, top of the upper lip, bottom of the lower lip
TEETH_SATURATION = 0.42  # photo teeth: (max − min) / max of sRGB below this ...
TEETH_SATURATION_BAND = 0.15  # ... and within this of the whitest tenth of the bright pixels between the lips
TEETH_BRIGHTNESS = 0.55  # ... and mean sRGB above this × the crop's median outside the lips (and above 0.25)
MIN_TEETH_PIXELS = 20
HIGHLIGHT_RATIO = 1.6  # a tooth sample brighter than this × the teeth's median is a wet highlight, not albedo
TEETH_SHIFT_MM = ((-7, 3), (-3, 7))  # search ranges of the upper and the lower teeth, mm up along the head's Z


def mouth_crop(points: np.ndarray, density: float = 1.5, max_size: int = 384) -> Crop:
    """The square around the lips, 1.3 × their extent, rendered at `density` × the photo's pixels."""
    return square_around(points[list(INNER_LIPS) + list(MOUTH_OUTLINE)], 1.3, density, 64, max_size)


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: inside the polygon `points` (crop pixels)."""
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).polygon([tuple(map(float, p)) for p in points], fill=255)
    return np.asarray(image) > 0


def photo_teeth(photo_srgb: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(S, S) bool: teeth in a crop of the photo (sRGB): bright, unsaturated pixels inside the inner lip
    polygon `lips` (crop pixels).

    How unsaturated is relative: a lit tongue in a bright photo is as light as teeth and, at a saturation of about
    0.4, below any fixed bound that still admits teeth under a warm cast. The whitest tenth of the candidates
    (the teeth where any show) sets the level, and teeth lie within TEETH_SATURATION_BAND of it (open_smile_man:
    teeth 0.06-0.09, tongue 0.39-0.43, which had the lower teeth raised 7 mm to cover the tongue)."""
    inside = polygon_mask(lips, photo_srgb.shape[0])
    brightness = photo_srgb.mean(-1)
    saturation = (photo_srgb.max(-1) - photo_srgb.min(-1)) / np.maximum(photo_srgb.max(-1), 1e-6)
    reference = float(np.median(brightness[~inside])) if (~inside).any() else 0.5
    candidates = inside & (saturation < TEETH_SATURATION) & (brightness > max(0.25, TEETH_BRIGHTNESS * reference))
    if not candidates.any():
        return candidates
    whitest = float(np.quantile(saturation[candidates], 0.1))
    return candidates & (saturation < whitest + TEETH_SATURATION_BAND)


def lips_in_crop(points: np.ndarray, crop: Crop) -> np.ndarray:
    """The inner lip contour (photo-space landmarks) in the crop's pixels."""
    return (points[list(INNER_LIPS)] - [crop.x0, crop.y0]) * (crop.size / crop.side)


def run_mouth_vertices(run: Any, shift: np.ndarray | None = None) -> torch.Tensor:
    """World-space mouth vertices (teeth, cavity, tongue; apps.parts.mouth_shape) for the run's current pose,
    shape and expression, the teeth moved up by `shift` (upper, lower; metres along the head's Z)."""
    model = run.model
    with torch.no_grad():
        identity, expression = run.identity.detach(), run.expression.detach().clamp(0, 1)
        return mouth_shape(model, identity, expression, shift) @ run.rotation().T + run.translation()


def shown_teeth(run: Any, points: np.ndarray, crop: Crop) -> np.ndarray:
    """(S, S) bool: the photo's teeth on the crop's grid, read from the run's face window (fit/working.py), not
    the photo: its cost follows the face, never the photo's pixel count (a 24 MP portrait read the full-resolution
    mouth at every settle), and the window holds 2-4 pixels per working pixel across the face."""
    return photo_teeth(linear_to_srgb(crop.cut(run.face)), lips_in_crop(points, crop))


def crop_rays(run: Any, crop: Crop) -> tuple[torch.Tensor, torch.Tensor]:
    """(origins, directions) of the primary rays through the crop's pixel centres, row by row (CPU)."""
    with torch.no_grad():
        K = run.camera_K(crop)
    grid = torch.arange(crop.size, dtype=torch.float32) + 0.5
    pixels = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    return pixel_rays(K.cpu(), run.world_from_camera.cpu(), pixels)


def head_and_mouth_faces(run: Any) -> torch.Tensor:
    """(F + M, 3) the head's triangles, then the mouth parts' (whose vertices follow the head's), on the CPU."""
    return torch.cat([run.faces.cpu(), run.model.mouth_faces.cpu().long() + run.model.n_vertices])


def place_teeth(run: Any, points: np.ndarray) -> tuple[np.ndarray, float]:
    """(shift (2,) metres, IoU) of the upper and lower teeth that best cover the photo's teeth.

    How much of the upper and lower teeth a smile shows differs from person to person, and a model whose teeth
    sit too high would paint the photo's teeth onto its cavity (fit/mouth.py) or read the lips' shadow as teeth
    (fit/references.py): each row of teeth slides along the head's vertical (TEETH_SHIFT_MM) to where the
    rendered teeth cover the photo's best (intersection over union, coordinate search on a 1 mm grid, primary
    rays only). `run` is a stages.Reconstruction (not imported: stages imports this module's users)."""
    crop = mouth_crop(points, density=1.0, max_size=160)
    target = torch.as_tensor(shown_teeth(run, points, crop).reshape(-1))
    if int(target.sum()) < MIN_TEETH_PIXELS:
        return np.zeros(2), 0.0
    model = run.model
    with torch.no_grad():
        head = run.world_vertices().detach()
        mouth = run_mouth_vertices(run)
        up = run.rotation()[:, 2]
    origin, dirs = crop_rays(run, crop)
    part = torch.as_tensor(head_parts.mouth_vertex_parts(model))
    names = list(model.mouth_part_names)
    rows = [part == names.index(name) for name in head_parts.TEETH_PARTS]
    faces = head_and_mouth_faces(run)
    teeth_faces = torch.cat([torch.zeros(run.faces.shape[0], dtype=torch.bool),
                             torch.as_tensor(head_parts.teeth_faces(model))])
    base = torch.cat([head.cpu(), mouth.cpu()])
    bvh = Bvh(base, faces)

    def score(shift: np.ndarray) -> float:
        moved = mouth.cpu().clone()
        for row, value in zip(rows, shift):
            moved[row] += float(value) * up.cpu()
        verts = torch.cat([head.cpu(), moved])
        bvh.refit(verts)
        hits = bvh.intersect(origin, dirs)
        seen = hits.hit & teeth_faces[hits.face.clamp_min(0).long()]
        union = int((seen | target).sum())
        return int((seen & target).sum()) / max(union, 1) - 0.002 * float(np.abs(shift).sum() * 1000)

    shift = np.zeros(2)
    best = score(shift)
    for _ in range(2):
        for row, (lo, hi) in enumerate(TEETH_SHIFT_MM):
            for mm in range(lo, hi + 1):
                trial = shift.copy()
                trial[row] = mm / 1000
                value = score(trial)
                if value > best + 1e-9:
                    best, shift = value, trial
    return shift, best + 0.002 * float(np.abs(shift).sum() * 1000)
