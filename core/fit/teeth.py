"""Where the photo shows teeth: the bright, unsaturated pixels between the lips, and the crop around the mouth.

Two users: fit/mouth.py textures the model's teeth from them and
fit/references.py reads them as a near-white reference for the light's level;
both first slide the model's teeth onto them (`place_teeth`). Kept apart from both so that the reference, which the
skin stages import, does not import the mouth fit, which imports the stages.
"""

from __future__ import annotations

import logging
import dataclasses
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..apps.parts import mouth_part, mouth_shape
from ..io.image import linear_to_srgb
from ..model.camera import pixel_rays
from ..model.head import parts as head_parts
from ..render import RenderOptions, render
from ..render.crop import Crop, square_around
from ..render.raytrace import Bvh
from .landmarks import INNER_LIPS

log = logging.getLogger(__name__)

MOUTH_OUTLINE = (61, 291, 0, 17)  # corners, top of the upper lip, bottom of the lower lip
TEETH_SATURATION = 0.42  # photo teeth: (max − min) / max of sRGB below this ...
TEETH_SATURATION_BAND = 0.15  # ... and within this of the whitest tenth of the bright pixels between the lips
TEETH_BRIGHTNESS = 0.55  # ... and mean sRGB above this × the crop's median outside the lips (and above 0.25)
MIN_TEETH_PIXELS = 20
HIGHLIGHT_RATIO = 1.6  # a tooth sample brighter than this × the teeth's median is a wet highlight, not albedo
TEETH_SHIFT_MM = ((-7, 3), (-3, 7))  # search ranges of the upper and the lower teeth, mm up along the head's Z
TEETH_SHARE = 0.1  # weight of the teeth's photometric loss in stage 1, against the skin's (`TeethLight`)
TEETH_LIGHT_CROP = 64  # the mouth crop's largest side in that loss
# ... and only teeth that stand out from the skin around the mouth: more neutral (median saturation under this
# share of the skin's) or brighter (median brightness over this multiple). Pale, brightly lit lips pass
# photo_teeth's relative tests and read as teeth: 4 of the 12 accuracy scenes, whose lips and skin differ by
# 0.94-1.20 in saturation and 0.90-1.38 in brightness; the 8 real smiles' teeth: 0.09-0.62, or 4.5 in brightness
# against a dark, beard-framed skin (dark_man_smile, 0.90 in saturation). On accuracy scene 1 lips taken for
# teeth turned its fitted light 6 -> 29 degrees away from the true one.
STAND_OUT_SATURATION = 0.75
STAND_OUT_BRIGHTNESS = 1.5


def mouth_crop(points: np.ndarray, density: float = 1.5, max_size: int = 384) -> Crop:
    """The square around the lips, 1.3 × their extent, rendered at `density` × the photo's pixels."""
    return square_around(points[list(INNER_LIPS) + list(MOUTH_OUTLINE)], 1.3, density, 64, max_size)


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: inside the polygon `points` (crop pixels)."""
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).polygon([tuple(map(float, p)) for p in points], fill=255)
    return np.asarray(image) > 0


def saturation_of(photo_srgb: np.ndarray) -> np.ndarray:
    """Per-pixel saturation of an sRGB image, (max − min) / max (0 for black)."""
    return (photo_srgb.max(-1) - photo_srgb.min(-1)) / np.maximum(photo_srgb.max(-1), 1e-6)


def photo_teeth(photo_srgb: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(S, S) bool: teeth in a crop of the photo (sRGB): bright, unsaturated pixels inside the inner lip
    polygon `lips` (crop pixels).

    How unsaturated is relative: a lit tongue in a bright photo is as light as teeth and, at a saturation of about
    0.4, below any fixed bound that still admits teeth under a warm cast. The whitest tenth of the candidates
    (the teeth where any show) sets the level, and teeth lie within TEETH_SATURATION_BAND of it (open_smile_man:
    teeth 0.06-0.09, tongue 0.39-0.43, which had the lower teeth raised 7 mm to cover the tongue)."""
    inside = polygon_mask(lips, photo_srgb.shape[0])
    brightness = photo_srgb.mean(-1)
    saturation = saturation_of(photo_srgb)
    reference = float(np.median(brightness[~inside])) if (~inside).any() else 0.5
    candidates = inside & (saturation < TEETH_SATURATION) & (brightness > max(0.25, TEETH_BRIGHTNESS * reference))
    if not candidates.any():
        return candidates
    whitest = float(np.quantile(saturation[candidates], 0.1))
    return candidates & (saturation < whitest + TEETH_SATURATION_BAND)


def lips_in_crop(points: np.ndarray, crop: Crop) -> np.ndarray:
    """The inner lip contour (photo-space landmarks) in the crop's pixels."""
    return crop.pixels(points[list(INNER_LIPS)])


def run_mouth_vertices(run: Any, shift: np.ndarray | None = None, tongue_shift: np.ndarray | None = None
                       ) -> torch.Tensor:
    """World-space mouth vertices (teeth, cavity, tongue; apps.parts.mouth_shape) for the run's current pose,
    shape and expression, the teeth moved up by `shift` (upper, lower; metres along the head's Z) and the tongue
    by `tongue_shift` (forward, up[, raise]; head_parts.shift_tongue)."""
    model = run.model
    with torch.no_grad():
        identity, expression = run.identity.detach(), run.expression.detach().clamp(0, 1)
        mouth = mouth_shape(model, identity, expression, shift, tongue_shift)
        corrective = getattr(run, "corrective", None)
        if corrective is not None and bool(corrective.abs().max() > 0):  # as every renderer of the result does
            fitted = model.evaluate(identity, expression).double().cpu().numpy()
            moved = head_parts.follow_face(model, fitted, fitted + corrective.double().cpu().numpy(),
                                           np.zeros((0, 3)), mouth.double().cpu().numpy())[1]
            mouth = torch.as_tensor(moved).to(mouth)
        return mouth @ run.rotation().T + run.translation()


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


def teeth_among_head_and_mouth(run: Any) -> torch.Tensor:
    """(F + M,) bool over head_and_mouth_faces: which triangles are the teeth."""
    return torch.cat([torch.zeros(run.faces.shape[0], dtype=torch.bool), torch.as_tensor(head_parts.teeth_faces(run.model))])


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
    teeth_faces = teeth_among_head_and_mouth(run)
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


def stand_out(photo_srgb: np.ndarray, lips: np.ndarray, teeth: np.ndarray) -> bool:
    """Whether the photo's `teeth` (a mask from photo_teeth) are more neutral or brighter than the skin around the
    mouth (the crop outside the inner lip polygon `lips`), as teeth are and pale lips are not."""
    skin = ~polygon_mask(lips, photo_srgb.shape[0])
    saturation = saturation_of(photo_srgb)
    brightness = photo_srgb.mean(-1)
    return bool(np.median(saturation[teeth]) < STAND_OUT_SATURATION * np.median(saturation[skin])
                or np.median(brightness[teeth]) > STAND_OUT_BRIGHTNESS * np.median(brightness[skin]))


class TeethLight:
    """The photo's teeth as a photometric target of the light fit (stage 1).

    The skin faces the camera and is convex, so a soft frontal key and a uniform ambient light it alike, and stage
    1 chose the ambient. The teeth sit behind the lips: an ambient reaches them through the mouth's opening only, a
    frontal key fully. On dark_man_smile the fitted lights left the teeth at 0.45 of the cheeks' shading, the
    photo shows them 6x brighter than the cheeks, and the teeth reference implied a skin darker than any skin, so
    it was dropped and the skin came back at ITA +31.

    The model's teeth (placed on the photo's, `place_teeth`, at their typical albedo head_parts.TEETH_ALBEDO) are
    rendered with the head in a small crop around the mouth; the pixels that are teeth in the photo and in the
    model give a loss whose gradient reaches the lights only: the geometry is detached, or the fit would close
    the mouth over teeth it renders too dark.
    """

    def __init__(self, run: Any, crop: Crop, shift: np.ndarray, mask: torch.Tensor) -> None:
        self.crop, self.shift, self.mask = crop, shift, mask  # the mouth crop, the teeth's placement, its teeth pixels
        self.target = run.tensor(crop.cut(run.face))
        texture = np.full((1, 1, 3), head_parts.TEETH_ALBEDO, np.float32)
        self.part = mouth_part(run.model, run_mouth_vertices(run, shift).to(run.device), texture, teeth=True)
        self.options = RenderOptions(spp=run.config.spp, light_samples=run.config.shadow_samples, edge_sampling=False,
                                     environment_samples=run.config.world_samples)

    @classmethod
    def measure(cls, run: Any, points: np.ndarray) -> TeethLight | None:
        """None where the photo's teeth do not stand out from the skin (`stand_out`) or fewer than MIN_TEETH_PIXELS
        of them are the model's teeth."""
        crop = mouth_crop(points, density=1.0, max_size=TEETH_LIGHT_CROP)
        srgb, lips = linear_to_srgb(crop.cut(run.face)), lips_in_crop(points, crop)
        teeth = photo_teeth(srgb, lips)
        if int(teeth.sum()) < MIN_TEETH_PIXELS or not stand_out(srgb, lips, teeth):
            return None
        shown = torch.as_tensor(teeth.reshape(-1))
        shift = place_teeth(run, points)[0]
        with torch.no_grad():
            head = run.world_vertices().detach().cpu()
        mouth = run_mouth_vertices(run, shift).cpu()
        hits = Bvh(torch.cat([head, mouth]), head_and_mouth_faces(run)).intersect(*crop_rays(run, crop))
        both = (hits.hit & teeth_among_head_and_mouth(run)[hits.face.clamp_min(0).long()] & shown).reshape(crop.size, crop.size)
        if int(both.sum()) < MIN_TEETH_PIXELS:
            return None
        log.info("the light fit sees %d teeth pixels", int(both.sum()))
        return cls(run, crop, shift, both.float().to(run.device))

    def loss(self, run: Any, maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The teeth pixels' photometric loss under the run's current lights (no gradient to the geometry); the
        teeth follow the run's current pose, shape and expression. `maps`: the step's run.statistical_maps()."""
        teeth = dataclasses.replace(self.part, verts=run_mouth_vertices(run, self.shift).to(run.device))
        scene = run.scene(self.crop, self.target, tuple(m.detach() for m in maps))
        scene.verts, scene.K, scene.parts = scene.verts.detach(), scene.K.detach(), [teeth]
        image = render(scene, self.options, run.generator, pixel_mask=self.mask > 0).image
        return run.photometric(image, self.target, self.mask)
