"""The mouth from the photo: the colour of the teeth, the cavity and the tongue where the open lips show them.

The head model's teeth, cavity and tongue (model/head, rigged by the same
face units as the lips) already sit where the fitted expression puts them; what
is left is their colour. As for the eyes (fit/eyes.py), the mouth region is
rendered once with the fitted light and pose, and every pixel whose first hit
is a tooth or the mouth interior gives a de-lit albedo at its UV in the mouth
atlas (mouth.png). Texels no pixel saw take their part's value: the teeth the
median of the tooth pixels that show the photo's teeth (a closed mouth: the model's default), the
cavity and the tongue the model's dark defaults — a plausible interior for an
animated jawOpen rather than whatever the lips hid.

Before that, the teeth and the tongue are placed. The teeth: how much of the upper and lower teeth a
smile shows differs from person to person, and a model whose teeth sit too
high would paint the photo's teeth onto its cavity. The photo's teeth are the
bright pixels inside the inner lip contour that are about as unsaturated as the
whitest of them (a lit tongue is as bright, but pink: fit/teeth.py); each row of teeth
slides along the head's vertical (fit/teeth.py TEETH_SHIFT_MM) to the place where the
rendered teeth cover them best (intersection over union of the two masks, by
coordinate search on a 1 mm grid, primary rays only). The tongue: the model's lies low and deep, where
the lips and teeth shade it, while a laughing mouth shows its tongue lit almost as the skin (open_smile_man:
the photo's interior needed an albedo of 8 under the model's shading, so it rendered black). Where the photo
shows a lit interior between the lips, the tongue slides forward, fills out upwards, moves up and widens
(`place_tongue`) to where a render of the mouth, its interior at the best single albedo, is closest to the photo:
the model's tongue is 44 mm wide, a wide smile opens 55-60 mm, and the cavity showed black beside it.
Last, the teeth settle (`settle_teeth`): the upper row up to 3 mm down or 1 mm up from its placement, then both rows
widened 2 or 4 mm at the back teeth, to where the mouth, textured from the photo and rendered again as the result
will be, is closest to the photo. The colour test misses the pink top of the upper teeth, so their placement stops
short, and a black band of cavity showed under them; a wide smile shows teeth out to the corners of the mouth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..apps.parts import MOUTH_TEXTURE_SIZE
from ..io.image import linear_to_srgb
from ..model import skin
from ..model.head import HeadModel
from ..model.head import parts as head_parts
from ..render import Part, RenderOptions, RenderScene, render
from .eyes import ALBEDO_RANGE, DELIGHT_OPTIONS, MIN_SHADING, PRIOR_SAMPLES, delit_samples, run_parts, splat
from .stages import Reconstruction
from .teeth import HIGHLIGHT_RATIO, lips_in_crop, mouth_crop, photo_teeth, place_teeth, polygon_mask, saturation_of

log = logging.getLogger(__name__)

TEETH_MATERIAL_INDEX, INTERIOR_MATERIAL_INDEX = 2, 3  # render parts: eyes, teeth, mouth interior (apps/parts.py)
MIN_SAMPLES = 12  # pixels a part needs before its median replaces the default
TEETH_LUMINANCE = (0.2, 0.9)  # plausible de-lit teeth (mean of RGB)
TONGUE_FORWARD_MM = (0, 4, 8, 12, 16)  # the tongue's candidate places, along the head's −Y ...
TONGUE_RAISE_MM = (0, 6, 12, 18, 24)  # ... then its top raised over its base (the model's is 26 mm tall) ...
TONGUE_UP_MM = (0, 3, 6)  # ... then along +Z ...
TONGUE_WIDEN_MM = (0, 4, 8, 12)  # ... then each side out from the midline (the model's is 44 mm wide), each at the best before
LIT_INTERIOR = 0.5  # between the lips, not teeth, brighter than this × the skin around the mouth (sRGB) ...
TONGUE_SATURATION = 0.25  # ... and red, saturated above this: a lit tongue (open_smile_man's: 0.39-0.43; teeth under 0.2)
TEETH_KEPT = 0.98  # the tongue never moves in front of the teeth: a place must leave this share of them in view
MIN_LIT_SHARE = 0.15  # of the inner lip polygon's pixels, or the tongue stays where the model has it
TONGUE_GAIN = 0.98  # a place must cut the mouth's error below this × the current one to be taken
# `settle_teeth`'s candidate moves, mm: the upper row from its placement, then both rows' sides out at the back
# teeth (4 mm a side makes the model's 68 mm arch 12 % wider; the front teeth barely move) ...
SETTLE_STEPS_MM = ((0, (-3, -2, -1, 1)), (2, (2, 4)))
SETTLE_GAIN = 0.95  # ... each taken only if it cuts the textured mouth's error below this × the current one: the
# error changes by 3-4 % for 2 mm around the true place (tests/test_mouth.py), so a smaller gain is noise
TONGUE_CROP = 128
TONGUE_OPTIONS = RenderOptions(spp=1, light_samples=2, jitter=False, edge_sampling=False, return_passes=True,
                               environment_samples=8)


@dataclass
class MouthFit:
    texture: np.ndarray  # (S, S, 3) linear albedo, mouth.png layout
    teeth_seen: float  # fraction of the teeth texels photo pixels reached
    teeth_shift: np.ndarray  # (2,) or, settled, (3,): upper, lower teeth moved up along the head's +Z, arch widened; m
    teeth_iou: float = 0.0  # overlap of the placed teeth with the photo's (0 when the photo shows none)
    tongue_shift: np.ndarray | None = None  # (4,) the tongue moved forward, up, raised, widened; metres (None: not placed)


def mouth_texture(photo: np.ndarray, passes: dict[str, torch.Tensor], model: HeadModel,
                  size: int = MOUTH_TEXTURE_SIZE, shown_teeth: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The mouth atlas from a rendered crop's passes and the photo on the crop's grid (linear); see the module
    docstring. Returns (texture (S, S, 3), fraction of teeth texels seen).

    The teeth texels no pixel saw take the median of the tooth pixels that show the photo's teeth, `shown_teeth`
    ((S, S) bool, fit/teeth.photo_teeth; every tooth pixel when None): where the placed teeth cover the photo's
    lips, gum or the dark gap above them, those colours are painted where they were seen but are not the teeth's
    colour (the whole rows came back red on dreadlocks_man_smile, pink on glasses_beard_man)."""
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
    lit = MIN_SHADING * np.median(shading)
    keep = (part >= 0) & (shading >= lit)
    prior = default.copy()
    teeth = [k for k, name in enumerate(model.mouth_part_names) if name in head_parts.TEETH_PARTS]
    teeth_texels = np.isin(texel_part, teeth)
    on_teeth = np.isin(part, teeth)
    if shown_teeth is None:
        reference = albedo[on_teeth & keep]
    else:
        _, shown, shown_shading, _ = delit_samples(photo, passes, TEETH_MATERIAL_INDEX, shown_teeth)
        reference = shown[shown_shading >= lit]
    if len(reference) >= MIN_SAMPLES:
        median = np.median(reference, axis=0)

        def highlight(values: np.ndarray) -> np.ndarray:
            return (values.mean(-1) > HIGHLIGHT_RATIO * median.mean()) & (values.mean(-1) > median.mean() + 0.1)

        keep &= ~(on_teeth & highlight(albedo))
        median = np.median(reference[~highlight(reference)], axis=0)
        median *= np.clip(median.mean(), *TEETH_LUMINANCE) / max(float(median.mean()), 1e-6)
        prior[teeth_texels] = median
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
    seen = float((den[teeth_texels] > weight).mean()) if teeth_texels.any() else 0.0
    return np.clip(texture, *ALBEDO_RANGE).astype(np.float32), seen


def lit_interior(photo_srgb: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(S, S) bool: the pixels of a photo crop (sRGB) inside the inner lip polygon `lips` that are a tongue or a
    palate the light reaches: not teeth, not dark, and red. Teeth photo_teeth misses are not red (on
    glasses_beard_man, whose teeth only glimpse between the lips, the tongue came forward over them)."""
    inside = polygon_mask(lips, photo_srgb.shape[0])
    brightness = photo_srgb.mean(-1)
    skin = float(np.median(brightness[~inside])) if (~inside).any() else 0.5
    red = (photo_srgb.argmax(-1) == 0) & (saturation_of(photo_srgb) > TONGUE_SATURATION)
    return inside & ~photo_teeth(photo_srgb, lips) & (brightness > LIT_INTERIOR * skin) & red


def interior_error(photo: np.ndarray, passes: dict[str, torch.Tensor], region: np.ndarray) -> float:
    """Mean squared sRGB error over `region` of a render's passes against the photo (both linear, crop grid), the
    mouth interior at the single albedo per channel that fits it best (least squares, within ALBEDO_RANGE): how
    well a place of the tongue can explain the photo, whatever colour the tongue turns out to have."""
    shading = (passes["diffuse"] + passes["ambient"]).cpu().numpy()
    specular = passes["specular"].cpu().numpy()
    albedo = passes["albedo"].cpu().numpy().copy()
    interior = region & (passes["material"].cpu().numpy() == INTERIOR_MATERIAL_INDEX)
    if interior.any():
        s, y = shading[interior], photo[interior] - specular[interior]
        albedo[interior] = np.clip((s * y).sum(0) / np.maximum((s * s).sum(0), 1e-9), *ALBEDO_RANGE)
    image = linear_to_srgb(np.clip(albedo * shading + specular, 0, 1))
    return float(((image - linear_to_srgb(np.clip(photo, 0, 1)))[region] ** 2).mean())


def place_tongue(run: Reconstruction, points: np.ndarray, maps: tuple[torch.Tensor, ...], gaze: np.ndarray,
                 eye_texture: np.ndarray, teeth_shift: np.ndarray) -> np.ndarray:
    """(forward, up, raise, widen) metres that move the tongue (head_parts.shift_tongue) to meet a lit interior the
    photo shows between the lips (zeros where it shows none): a coordinate search, forward, raise, up, widen, over
    renders of the mouth crop with the world sampled as in render.png, each scored by interior_error; a place is
    taken only if it cuts the error by 2 % and hides no teeth. Raising comes before moving up: on open_smile_man
    the tongue moved up 3 mm left the black band under the upper teeth that a raised tongue fills (the interior's
    error 0.066 -> 0.042 raised 26 mm on a captured run; the whole run chose 18 mm: 22.4 -> 24.3 dB)."""
    crop = mouth_crop(points, density=1.0, max_size=TONGUE_CROP)
    photo = crop.cut(run.photo.data, linear=True)
    lips = lips_in_crop(points, crop)
    inside = polygon_mask(lips, crop.size)
    if lit_interior(linear_to_srgb(photo), lips).sum() < MIN_LIT_SHARE * max(int(inside.sum()), 1):
        return np.zeros(4)
    region = ndimage.binary_dilation(inside, iterations=2)
    with torch.no_grad():
        scene = run.scene(crop, run.tensor(photo), maps)  # type: ignore[arg-type]

    def error(shift: np.ndarray) -> tuple[float, int]:
        """(interior_error, teeth pixels in view) with the tongue moved by `shift`: only the parts change."""
        with torch.no_grad():
            scene.parts = run_parts(run, gaze, eye_texture, None, teeth_shift, shift)
            passes = render(scene, TONGUE_OPTIONS, run.generator).passes
        teeth = int((region & (passes["material"].cpu().numpy() == TEETH_MATERIAL_INDEX)).sum())
        return interior_error(photo, passes, region), teeth

    shift = np.zeros(4)
    best, teeth = error(shift)
    for axis, steps in ((0, TONGUE_FORWARD_MM), (2, TONGUE_RAISE_MM), (1, TONGUE_UP_MM), (3, TONGUE_WIDEN_MM)):
        for mm in steps[1:]:
            trial = shift.copy()
            trial[axis] = mm / 1000
            value, shown = error(trial)
            if value < TONGUE_GAIN * best and shown >= TEETH_KEPT * teeth:
                best, shift = value, trial
    return shift


def textured_error(scene: RenderScene, photo: np.ndarray, shown_teeth: np.ndarray, region: np.ndarray,
                   model: HeadModel, parts: Callable[[np.ndarray | None], list[Part]],
                   generator: torch.Generator | None) -> float:
    """Mean squared sRGB error over `region` of the mouth crop `scene` rendered as the result will be: with
    `parts(None)` (the mouth at its default texture) to texture the mouth from the photo (`mouth_texture`;
    `shown_teeth`: the photo's teeth on the crop, fit/teeth.photo_teeth), then again with `parts(texture)`."""
    with torch.no_grad():
        scene.parts = parts(None)
        passes = render(scene, TONGUE_OPTIONS, generator).passes
        scene.parts = parts(mouth_texture(photo, passes, model, shown_teeth=shown_teeth)[0])
        image = render(scene, TONGUE_OPTIONS, generator).image[..., :3].cpu().numpy()
    error = linear_to_srgb(np.clip(image, 0, 1)) - linear_to_srgb(np.clip(photo, 0, 1))
    return float((error[region] ** 2).mean())


def settle(error: Callable[[np.ndarray], float], teeth_shift: np.ndarray) -> np.ndarray:
    """(3,) upper, lower, widen: `teeth_shift` moved by the SETTLE_STEPS_MM steps that cut `error` most, each
    axis in turn, a step taken only if it cuts the error by 5 % (SETTLE_GAIN)."""
    shift = np.concatenate([teeth_shift, np.zeros(3 - len(teeth_shift))])
    best = error(shift)
    for axis, steps in SETTLE_STEPS_MM:
        start = shift.copy()
        for mm in steps:
            trial = start.copy()
            trial[axis] += mm / 1000
            value = error(trial)
            if value < SETTLE_GAIN * best:
                best, shift = value, trial
    return shift


def settle_teeth(run: Reconstruction, points: np.ndarray, maps: tuple[torch.Tensor, ...], gaze: np.ndarray,
                 eye_texture: np.ndarray, teeth_shift: np.ndarray, tongue_shift: np.ndarray) -> np.ndarray:
    """The placed teeth (`place_teeth`) settled (`settle`: the upper row moved, then the arch widened) where the
    mouth, textured from the photo as the result is, renders closest to the photo (`textured_error`).

    place_teeth finds the photo's teeth by colour and misses their pink top near the gum, so the upper row stays at
    the edge of its search (−7 mm on 5 of the 8 real smiles) and the cavity shows as a black band between its edge
    and the tongue: on open_smile_man 43 % of the inner face's squared error was teeth and interior the light does
    not reach. Moved freely by colour, it went down over the gap between the rows (−13 mm on dark_man_smile);
    scored by the render and kept within 3 mm of its placement, it does not. The same smile shows its teeth out to
    the corners of the mouth, where the model's arch left the cavity and back teeth in shadow (the mouth crop's
    error ×0.83 with the arch 4 mm wider)."""
    crop = mouth_crop(points, density=1.0, max_size=TONGUE_CROP)
    photo = crop.cut(run.photo.data, linear=True)
    lips = lips_in_crop(points, crop)
    region = ndimage.binary_dilation(polygon_mask(lips, crop.size), iterations=2)
    shown = photo_teeth(linear_to_srgb(np.clip(photo, 0, 1)), lips)
    with torch.no_grad():
        scene = run.scene(crop, run.tensor(photo), maps)  # type: ignore[arg-type]

    def error(shift: np.ndarray) -> float:
        return textured_error(scene, photo, shown, region, run.model,
                              lambda texture: run_parts(run, gaze, eye_texture, texture, shift, tongue_shift),
                              run.generator)

    return settle(error, teeth_shift)


def fit_mouth(run: Reconstruction, points: np.ndarray, maps: tuple[torch.Tensor, ...], gaze: np.ndarray,
              eye_texture: np.ndarray, texture: bool = True) -> MouthFit:
    """The mouth texture of a reconstruction after its skin stages (the model's default without `texture`)."""
    if not texture:
        return MouthFit(head_parts.default_mouth_texture(run.model, MOUTH_TEXTURE_SIZE), 0.0, np.zeros(2))
    shift, iou = place_teeth(run, points)
    tongue = place_tongue(run, points, maps, gaze, eye_texture, shift)
    if iou > 0:  # the photo shows teeth
        shift = settle_teeth(run, points, maps, gaze, eye_texture, shift, tongue)
    crop = mouth_crop(points)
    photo = crop.cut(run.photo.data, linear=True)
    with torch.no_grad():
        scene = run.scene(crop, run.tensor(photo), maps)  # type: ignore[arg-type]
        scene.parts = run_parts(run, gaze, eye_texture, None, shift, tongue)
        out = render(scene, DELIGHT_OPTIONS, run.generator)
    shown = photo_teeth(linear_to_srgb(np.clip(photo, 0, 1)), lips_in_crop(points, crop))
    texture_map, seen = mouth_texture(photo, out.passes, run.model, shown_teeth=shown)
    log.info("mouth: teeth moved %s mm up, up, widened (IoU %.2f), tongue %s mm forward, up, raised, widened; %.0f %% of the teeth texels seen",
             (1000 * shift).round(1), iou, (1000 * tongue).round(1), 100 * seen)
    return MouthFit(texture_map, seen, shift, iou, tongue)
