"""The mouth from the photo: the colour of the teeth, the cavity and the tongue where the open lips show them.

The head model's teeth, cavity and tongue (model/head, rigged by the same
face units as the lips) already sit where the fitted expression puts them; what
is left is their colour. As for the eyes (fit/eyes.py), the mouth region is
rendered once with the fitted light and pose, and every pixel whose first hit
is a tooth or the mouth interior gives a de-lit albedo at its UV in the mouth
atlas (mouth.png). Texels no pixel saw take their part's value: the teeth the
median of the teeth that were seen (a closed mouth: the model's default), the
cavity and the tongue the model's dark defaults — a plausible interior for an
animated jawOpen rather than whatever the lips hid.

Before that, the teeth are placed: how much of the upper and lower teeth a
smile shows differs from person to person, and a model whose teeth sit too
high would paint the photo's teeth onto its cavity. The photo's teeth are the
bright pixels inside the inner lip contour that are about as unsaturated as the
whitest of them (a lit tongue is as bright, but pink: `photo_teeth`); each row of teeth
slides along the head's vertical (TEETH_SHIFT_MM) to the place where the
rendered teeth cover them best (intersection over union of the two masks, by
coordinate search on a 1 mm grid, primary rays only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..apps.parts import MOUTH_TEXTURE_SIZE
from ..model import skin
from ..model.head import HeadModel
from ..model.head import parts as head_parts
from ..model.camera import pixel_rays
from ..render import RenderOptions, render
from ..render.crop import Crop, square_around
from ..render.raytrace import Bvh
from .eyes import ALBEDO_RANGE, LIGHT_SAMPLES, MIN_SHADING, PRIOR_SAMPLES, delit_samples, run_part_vertices, run_parts, splat
from .landmarks import INNER_LIPS
from .stages import Reconstruction

log = logging.getLogger(__name__)

MOUTH_OUTLINE = (61, 291, 0, 17)  # corners, top of the upper lip, bottom of the lower lip
TEETH_MATERIAL_INDEX, INTERIOR_MATERIAL_INDEX = 2, 3  # render parts: eyes, teeth, mouth interior (apps/parts.py)
MIN_SAMPLES = 12  # pixels a part needs before its median replaces the default
TEETH_LUMINANCE = (0.2, 0.9)  # plausible de-lit teeth (mean of RGB)
HIGHLIGHT_RATIO = 1.6
TEETH_SHIFT_MM = ((-7, 3), (-3, 7))  # search ranges of the upper and the lower teeth, mm up along the head's Z
TEETH_SATURATION = 0.42  # photo teeth: (max − min) / max of sRGB below this ...
TEETH_SATURATION_BAND = 0.15  # ... and within this of the whitest tenth of the bright pixels between the lips
TEETH_BRIGHTNESS = 0.55  # ... and mean sRGB above this × the crop's median outside the lips (and above 0.25)
MIN_TEETH_PIXELS = 20


@dataclass
class MouthFit:
    texture: np.ndarray  # (S, S, 3) linear albedo, mouth.png layout
    teeth_seen: float  # fraction of the teeth texels photo pixels reached
    teeth_shift: np.ndarray  # (2,) upper, lower teeth moved up along the head's +Z, metres
    teeth_iou: float = 0.0  # overlap of the placed teeth with the photo's (0 when the photo shows none)


def mouth_crop(points: np.ndarray, density: float = 1.5, max_size: int = 384) -> Crop:
    """The square around the lips, 1.3 × their extent, rendered at `density` × the photo's pixels."""
    return square_around(points[list(INNER_LIPS) + list(MOUTH_OUTLINE)], 1.3, density, 64, max_size)


def mouth_texture(photo: np.ndarray, passes: dict[str, torch.Tensor], model: HeadModel,
                  size: int = MOUTH_TEXTURE_SIZE) -> tuple[np.ndarray, float]:
    """The mouth atlas from a rendered crop's passes and the photo on the crop's grid (linear); see the module
    docstring. Returns (texture (S, S, 3), fraction of teeth texels seen)."""
    default = head_parts.default_mouth_texture(model, size)
    texel_part = head_parts.mouth_texel_parts(model, size)
    samples = [delit_samples(photo, passes, m) for m in (TEETH_MATERIAL_INDEX, INTERIOR_MATERIAL_INDEX)]
    uv = np.concatenate([s[0] for s in samples])
    if len(uv) == 0:
        return default, 0.0
    step = float(np.clip(max(s[3] for s in samples) * size, 1.0, 8.0))  # texels between neighbouring samples
    albedo = np.concatenate([s[1] for s in samples])
    shading = np.concatenate([s[2] for s in samples])
    x = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
    y = np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1)
    part = texel_part[y, x]
    keep = (part >= 0) & (shading >= MIN_SHADING * np.median(shading))
    prior = default.copy()
    teeth = [k for k, name in enumerate(model.mouth_part_names) if name in head_parts.TEETH_PARTS]
    is_teeth = np.isin(part, teeth) & keep
    if is_teeth.sum() >= MIN_SAMPLES:
        median = np.median(albedo[is_teeth], axis=0)
        keep &= ~(np.isin(part, teeth) & (albedo.mean(-1) > HIGHLIGHT_RATIO * median.mean())
                  & (albedo.mean(-1) > median.mean() + 0.1))
        median = np.median(albedo[np.isin(part, teeth) & keep], axis=0)
        median *= np.clip(median.mean(), *TEETH_LUMINANCE) / max(float(median.mean()), 1e-6)
        prior[np.isin(texel_part, teeth)] = median
    num, den = np.zeros((size, size, 3)), np.zeros((size, size))
    for k in np.unique(part[keep]):  # each part's samples stay on its own island
        mine = keep & (part == k)
        # Over-range samples: a near-white tooth is white (clipped per channel), the pink tongue and cavity keep
        # their hue (clipped per channel, (1.9, 0.9, 0.8) became a whitish (0.95, 0.9, 0.8) that rendered grey).
        values = (np.clip(albedo[mine], *ALBEDO_RANGE) if k in teeth else skin.within_albedo_range(albedo[mine]))
        part_num, part_den = splat(uv[mine], values, np.ones(int(mine.sum())), size, sigma=max(0.8, 0.6 * step))
        island = texel_part == k
        num[island], den[island] = part_num[island], part_den[island]
    weight = PRIOR_SAMPLES / step ** 2
    texture = (num + weight * prior) / (den + weight)[..., None]
    on_teeth = np.isin(texel_part, teeth)
    seen = float((den[on_teeth] > weight).mean()) if on_teeth.any() else 0.0
    return np.clip(texture, *ALBEDO_RANGE).astype(np.float32), seen


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
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
    inside = _polygon_mask(lips, photo_srgb.shape[0])
    brightness = photo_srgb.mean(-1)
    saturation = (photo_srgb.max(-1) - photo_srgb.min(-1)) / np.maximum(photo_srgb.max(-1), 1e-6)
    reference = float(np.median(brightness[~inside])) if (~inside).any() else 0.5
    candidates = inside & (saturation < TEETH_SATURATION) & (brightness > max(0.25, TEETH_BRIGHTNESS * reference))
    if not candidates.any():
        return candidates
    whitest = float(np.quantile(saturation[candidates], 0.1))
    return candidates & (saturation < whitest + TEETH_SATURATION_BAND)


def place_teeth(run: Reconstruction, points: np.ndarray, gaze: np.ndarray) -> tuple[np.ndarray, float]:
    """(shift (2,) metres, IoU) of the upper and lower teeth that best cover the photo's teeth (module docstring)."""
    crop = mouth_crop(points, density=1.0, max_size=160)
    scale = crop.size / crop.side
    lips = (points[list(INNER_LIPS)] - [crop.x0, crop.y0]) * scale
    target = torch.as_tensor(photo_teeth(crop.cut(run.photo.data), lips).reshape(-1))
    if int(target.sum()) < MIN_TEETH_PIXELS:
        return np.zeros(2), 0.0
    model = run.model
    with torch.no_grad():
        head = run.world_vertices().detach()
        _, mouth = run_part_vertices(run, gaze)
        K = run.camera_K(crop)
        up = run.rotation()[:, 2]
    grid = torch.arange(crop.size, dtype=torch.float32) + 0.5
    pixels = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    origin, dirs = pixel_rays(K.cpu(), run.world_from_camera.cpu(), pixels)
    part = torch.as_tensor(head_parts.mouth_vertex_parts(model))
    names = list(model.mouth_part_names)
    rows = [part == names.index(name) for name in head_parts.TEETH_PARTS]
    faces = torch.cat([run.faces.cpu(), model.mouth_faces.cpu().long() + head.shape[0]])
    teeth_faces = torch.zeros(faces.shape[0], dtype=torch.bool)
    mouth_part = model.mouth_face_part.cpu()
    teeth_faces[run.faces.shape[0]:] = (mouth_part == names.index(head_parts.TEETH_PARTS[0])) | (
        mouth_part == names.index(head_parts.TEETH_PARTS[1]))
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


def fit_mouth(run: Reconstruction, points: np.ndarray, maps: tuple[torch.Tensor, ...], gaze: np.ndarray,
              eye_texture: np.ndarray, texture: bool = True) -> MouthFit:
    """The mouth texture of a reconstruction after its skin stages (the model's default without `texture`)."""
    if not texture:
        return MouthFit(head_parts.default_mouth_texture(run.model, MOUTH_TEXTURE_SIZE), 0.0, np.zeros(2))
    shift, iou = place_teeth(run, points, gaze)
    crop = mouth_crop(points)
    photo = crop.cut(run.photo.data, linear=True)
    with torch.no_grad():
        scene = run.scene(crop, run.tensor(photo), maps)  # type: ignore[arg-type]
        scene.parts = run_parts(run, gaze, eye_texture, None, shift)
        out = render(scene, RenderOptions(spp=1, light_samples=LIGHT_SAMPLES, jitter=False, edge_sampling=False,
                                          return_passes=True), run.generator)
    texture_map, seen = mouth_texture(photo, out.passes, run.model)
    log.info("mouth: teeth moved %s mm (IoU %.2f), %.0f %% of the teeth texels seen", (1000 * shift).round(1), iou,
             100 * seen)
    return MouthFit(texture_map, seen, shift, iou)
