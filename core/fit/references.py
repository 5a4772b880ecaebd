"""Near-white references that measure the light's level: the sclera and the teeth seen in the photo, shaded by
the renderer.

Skin's colour fixes its lightness only loosely and its highlights are faint on
a small or matte face (docs/skin.md measures both), so the albedo/light-scale
ambiguity needs a surface of known albedo. The sclera is one (≈ 0.65 linear,
skin.SCLERA_ALBEDO) and is in nearly every portrait: its pixels are the eye
contour minus the iris disc (MediaPipe's refined landmarks 468–477). The teeth
are another (≈ 0.6, skin.TEETH_ALBEDO) wherever a smile shows them: their
pixels are the photo's teeth (fit/teeth.py) where the model's teeth are seen.
Each one's shading at albedo 1 is read from a render of the head with that part
(eyeballs or the mouth) under the current lights, occlusion by the lids and the
lips included. observed / shading is the albedo the current lights imply;
skin.white_reference_loss pulls the lights until it matches. An eye that is
nearly closed, a closed mouth, or too few pixels give no reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..model import lightstage, skin
from ..model.head import parts as head_parts
from ..render import RenderOptions, RenderScene, render
from ..render.crop import Crop, square_around
from .landmarks import LEFT_EYE, RIGHT_EYE
from .teeth import HIGHLIGHT_RATIO, MIN_TEETH_PIXELS, mouth_crop, place_teeth, run_mouth_vertices, shown_teeth

log = logging.getLogger(__name__)
IRISES = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))  # centre, then four points on the iris's rim
MIN_OPENNESS = 0.2  # eye height / eye width below which an eye is too closed to show its sclera
# Fewest near-neutral sclera pixels (eye crop, both eyes) that make a reference. With 15 (a type I synthetic head,
# 512 px, narrow eyes) the implied lights swung between × 0.86 and × 1.8 from one settle to the next.
MIN_PIXELS = 24
IRIS_MARGIN = 1.15  # the iris disc is cut out this much larger (limbus, blur)
SUPERSAMPLE = 4
EYE_CROP_MARGIN = 1.3  # eye crop side = this × the eyes' landmark extent
EYE_CROP_MAX = 128
TEETH_CROP_MAX = 96  # the mouth crop's largest side: a smile's teeth still cover 50-100 of its pixels
# Of the neutral pixels' implied albedo. Whatever else passes for sclera is darker than it (the iris's rim, lashes,
# pixels shared with the lids, the lids' shadow in the corners), and a catchlight is a few pixels on the cornea, so
# the sclera is an upper quantile, not the median. On a type VI synthetic head (256 px; the sclera shows only in the
# corners of 12 px eyes) the median implied lights 1.6× too dim and the skin came back at ITA −19° (truth −42°);
# the upper quartile: −36°.
QUANTILE = 0.75
NEUTRAL_MAX = 1.3  # largest red/blue (and blue/red) of a sclera pixel's implied albedo (sclera ≈ 1.1, skin ≥ 1.5)
# A sclera is whiter than any skin (0.65 against at most ~0.6), so under any lights its implied albedo is above
# the skin's; a "sclera" darker than this share of the skin's fitted albedo is lashes, iris or shadow (which are
# neutral too). On a real portrait (headwrap_woman_yaw) 10 such pixels implied albedo 0.017 and lights × 0.026,
# and the face came back grey-white: 17.9 dB in the inner face against 26.6 dB without the reference.
MIN_SKIN_RATIO = 0.8


@dataclass
class WhiteReference:
    """A near-white surface's observed linear colour and its rendered shading at albedo 1 under the lights it was
    measured with (stage intensities `light_sum` (3,), SH DC `ambient` (3,), `direct_share` of the shading from the
    stage); `albedo` is the surface's known mean albedo."""

    observed: torch.Tensor
    shading: torch.Tensor
    light_sum: torch.Tensor
    ambient: torch.Tensor
    direct_share: torch.Tensor
    pixels: int
    albedo: float = skin.SCLERA_ALBEDO
    tolerance: float = skin.REFERENCE_TOLERANCE  # log band within which the reference does not pull
    name: str = "sclera"

    def shading_under(self, run: Any) -> torch.Tensor:
        """The shading under the run's current lights, to first order (each part scaled as its lights scale);
        differentiable in the lights."""
        stage = lightstage.from_raw(run.light_raw, run.stage_centre).i.sum(0)
        direct = stage / self.light_sum.clamp_min(1e-12)
        ambient = run.sh[:, 0] / self.ambient.clamp_min(1e-12)
        return self.shading * (self.direct_share * direct + (1 - self.direct_share) * ambient)

    def __call__(self, run: Any) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        return self.observed, self.shading_under(run), self.albedo, self.tolerance


def is_neutral(implied: torch.Tensor) -> torch.Tensor:
    """(N,) bool: pixels whose implied albedo (N, 3) is near-neutral, as the sclera's is: not the lids' skin (red/blue
    ≥ 1.5 for the lightest skin) and not a blue or grey-blue iris (blue above red), which a one-sided test let in."""
    return (implied[:, 0] < NEUTRAL_MAX * implied[:, 2]) & (implied[:, 2] < NEUTRAL_MAX * implied[:, 0])


def sclera_level(implied: torch.Tensor) -> torch.Tensor:
    """The sclera's implied albedo (3,) from its near-neutral pixels' (N, 3): the QUANTILE of each channel."""
    return implied.quantile(QUANTILE, dim=0)


def sclera_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: crop pixels inside an open eye's contour and outside its iris disc, shrunk by half a pixel
    (lashes, eyelid edges). `points` are the 478 landmarks in crop pixels."""
    side = size * SUPERSAMPLE
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    for loop, iris in ((RIGHT_EYE, IRISES[0]), (LEFT_EYE, IRISES[1])):
        contour = points[list(loop)]
        width = float(np.ptp(contour[:, 0]))
        height = float(np.ptp(contour[:, 1]))
        if width <= 0 or height / width < MIN_OPENNESS:
            continue
        draw.polygon([tuple(map(float, p * SUPERSAMPLE)) for p in contour], fill=255)
        centre = points[iris[0]]
        radius = IRIS_MARGIN * float(np.linalg.norm(points[list(iris[1:])] - centre, axis=1).mean())
        x, y, r = centre[0] * SUPERSAMPLE, centre[1] * SUPERSAMPLE, radius * SUPERSAMPLE
        draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    coverage = np.asarray(image, np.float32).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean((1, 3)) / 255
    return coverage > 0.99


def eye_crop(points: np.ndarray) -> Crop:
    """A square crop around both eyes (photo-space landmarks), at about two pixels per photo pixel, EYE_CROP_MAX
    at most: the sclera is a few dozen pixels of a working-size face crop, too few to measure there."""
    return square_around(points[list(RIGHT_EYE) + list(LEFT_EYE)], EYE_CROP_MARGIN, 2.0, 32, EYE_CROP_MAX)


def _render_with_part(run: Any, crop: Crop, target: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                      maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(passes, alpha) of the head plus a part's mesh (world-space `verts`, `faces` indexing them) in a crop, under
    the run's current lights. The part samples the skin texture at one point inside face 0 (any non-zero albedo:
    only its shading is used); its faces follow the head's in `face_id`."""
    model = run.model
    head = run.world_vertices()
    inner = model.uvs[model.face_uvs[0].long()].mean(0, keepdim=True)
    scene = RenderScene(
        verts=torch.cat([head, verts]), faces=torch.cat([run.faces, faces.long() + head.shape[0]]),
        uvs=torch.cat([model.uvs, inner]),
        face_uvs=torch.cat([model.face_uvs.long(), torch.full_like(faces.long(), model.uvs.shape[0])]),
        diffuse=maps[0], specular=maps[1], roughness=maps[2], K=run.camera_K(crop),
        world_from_camera=run.world_from_camera, width=crop.size, height=crop.size, sh=run.sh,
        stage=run.light_stage(), background=target)
    samples = run.config.reference_samples
    out = render(scene, RenderOptions(spp=samples, light_samples=samples, edge_sampling=False, return_passes=True,
                                      environment_samples=run.config.world_samples), run.generator)
    return out.passes, out.alpha


def _reference(run: Any, direct: torch.Tensor, ambient: torch.Tensor, ratio: torch.Tensor, level: torch.Tensor,
               albedo: float, tolerance: float, name: str) -> WhiteReference | None:
    """The reference from its pixels' shading passes (N, 3) and its implied albedo `level` (3,), or None where that
    is darker than MIN_SKIN_RATIO × the skin's fitted albedo (no near-white surface is darker than skin)."""
    shading = direct + ambient
    typical = median_rows(shading)
    reference = WhiteReference(observed=level * typical, shading=typical, light_sum=run.light_stage().i.sum(0),
                               ambient=run.sh[:, 0].detach().clone(),
                               direct_share=direct.sum(0) / shading.sum(0).clamp_min(1e-12), pixels=int(ratio.shape[0]),
                               albedo=albedo, tolerance=tolerance, name=name)
    log.debug("%s reference: %d px, implied albedo %s (quartiles of the mean: %s)", name, reference.pixels,
              level.tolist(), ratio.mean(-1).quantile(torch.tensor([0.25, 0.5, 0.75, 0.9], device=ratio.device)).tolist())
    skin_albedo = float(run.skin_albedo().mean())
    if float(level.mean()) < MIN_SKIN_RATIO * skin_albedo:
        log.info("no %s reference: its pixels imply albedo %.3f, darker than the skin's %.3f", name,
                 float(level.mean()), skin_albedo)
        return None
    return reference


def measure_sclera(run: Any, points: np.ndarray,
                   maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> WhiteReference | None:
    """The sclera reference under the run's current lights, or None where the photo shows too little sclera.

    `points` are the photo-space landmarks. Renders the head with its eyeballs (the model's eye meshes, posed like
    the head) in a crop around the eyes; per sclera pixel where the render sees an eyeball, observed / shading per
    channel; over the pixels whose colour is near-neutral (`is_neutral`: the sclera, not the lids' skin the mask
    catches on a small or narrow eye, nor a blue iris), its upper quartile (`sclera_level`: lashes, the iris's rim
    and the lids' shadow are neutral too, and darker) times the median shading gives the observed colour. `run` is
    a stages.Reconstruction (not imported: stages imports this module).
    """
    if points.shape[0] < 478 or run.face is None:
        return None
    crop = eye_crop(points)
    local = (np.asarray(points, np.float64) - [crop.x0, crop.y0]) * crop.size / crop.side
    mask = torch.as_tensor(sclera_mask(local, crop.size), device=run.device)
    if int(mask.sum()) < MIN_PIXELS:
        return None
    target = run.tensor(crop.cut(run.face))
    with torch.no_grad():
        model = run.model
        eyes = model.eye_evaluate(run.identity, run.expression.clamp(0, 1)) @ run.rotation().T + run.translation()
        passes, alpha = _render_with_part(run, crop, target, eyes, model.eye_faces, maps)
        on_eye = mask & (passes["face_id"] >= run.faces.shape[0]) & (alpha > 0.99)
        if int(on_eye.sum()) < MIN_PIXELS:
            return None
        direct, ambient = passes["diffuse"][on_eye], passes["ambient"][on_eye]
        ratio = target[on_eye] / (direct + ambient).clamp_min(1e-8)
        neutral = is_neutral(ratio)
        if int(neutral.sum()) < MIN_PIXELS:
            return None
        return _reference(run, direct[neutral], ambient[neutral], ratio[neutral], sclera_level(ratio[neutral]),
                          skin.SCLERA_ALBEDO, skin.REFERENCE_TOLERANCE, "sclera")


def median_rows(values: torch.Tensor) -> torch.Tensor:
    """torch's median over dim 0 (the lower of the two middle values), without its indices: a median along a dim
    computes them, and on CUDA they have no deterministic kernel, so every run warned (the values never differed)."""
    return values.sort(0).values[(values.shape[0] - 1) // 2]


def teeth_level(implied: torch.Tensor) -> torch.Tensor:
    """The teeth's implied albedo (3,) from their pixels' (N, 3): the median after leaving out wet highlights
    (brighter than HIGHLIGHT_RATIO × the median), which the diffuse reference must not read."""
    brightness = implied.mean(-1)
    keep = brightness <= HIGHLIGHT_RATIO * brightness.median()
    return median_rows(implied[keep])


def measure_teeth(run: Any, points: np.ndarray,
                  maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> WhiteReference | None:
    """The teeth reference under the run's current lights, or None where the photo shows too few teeth.

    Slides the model's teeth onto the photo's first (fit/teeth.py `place_teeth`: unplaced, the model's teeth sit
    behind the lips on most smiles, and their pixels that match the photo's teeth are the lips' shadowed rim),
    then renders the head with its mouth (teeth, cavity and tongue, rigged by the fitted expression) in a crop
    around the lips; the pixels that are teeth both in the photo (fit/teeth.py) and in the render give observed /
    shading per channel, and their median (`teeth_level`) times the median shading the observed colour. Only the
    pixels both agree on: a photo tooth where the model shows lips or the cavity would read the lips' shadow as a
    darker tooth.
    """
    if points.shape[0] < 478 or run.face is None:
        return None
    crop = mouth_crop(points, density=1.5, max_size=TEETH_CROP_MAX)
    shown = shown_teeth(run, points, crop)
    if int(shown.sum()) < MIN_TEETH_PIXELS:
        return None
    target = run.tensor(crop.cut(run.face))
    with torch.no_grad():
        model = run.model
        mouth = run_mouth_vertices(run, place_teeth(run, points)[0])
        passes, alpha = _render_with_part(run, crop, target, mouth, model.mouth_faces, maps)
        teeth_faces = torch.as_tensor(head_parts.teeth_faces(model), device=run.device)
        part_face = passes["face_id"].long() - run.faces.shape[0]
        on_teeth = torch.as_tensor(shown, device=run.device) & (part_face >= 0) & (alpha > 0.99)
        on_teeth &= teeth_faces[part_face.clamp_min(0)]
        if int(on_teeth.sum()) < MIN_TEETH_PIXELS:
            return None
        direct, ambient = passes["diffuse"][on_teeth], passes["ambient"][on_teeth]
        ratio = target[on_teeth] / (direct + ambient).clamp_min(1e-8)
        return _reference(run, direct, ambient, ratio, teeth_level(ratio), skin.TEETH_ALBEDO,
                          skin.TEETH_TOLERANCE, "teeth")


def measure_references(run: Any, points: np.ndarray,
                       maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Iterator[WhiteReference]:
    """The near-white references the photo shows, under the run's current lights, in order of trust: the sclera,
    then the teeth. stages.settle_scale keeps the first that implies a plausible skin. The sclera's albedo is the
    better known and its shading (an eyeball under the lids) the simpler; the teeth's depends on where the lips
    and the placement put them. Where both were used they disagreed: on the type VI synthetic head of
    tests/test_skin_tone.py (eyes open, a sliver of teeth) the sclera implied lights × 0.85 and the teeth × 1.5 at
    the last settle, and the skin came back 15° too dark.

    Measured lazily, as settle_scale asks: where the sclera is kept the teeth (a placement search and a crop
    render) are never measured."""
    for measure in (measure_sclera, measure_teeth):
        reference = measure(run, points, maps)
        if reference is not None:
            yield reference
