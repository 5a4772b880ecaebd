"""What covers the face in the photo (hair, glasses, hands, a beard): a per-pixel occlusion mask, no face parser.

No pretrained face parser can be shipped, so the mask is built from what the
project has: MediaPipe's bundled selfie segmentation (person vs background), a
skin-colour model fitted on the cheeks and the nose bridge of this very photo
(pixels that are almost always visible skin; round the mouth, skin with more
blood than theirs counts as skin too), the fit's own photometric
residual after stage 1 (pixels in the face that the model cannot explain) and
its shading (a shadow it predicts is skin, however dark and grey), and
the landmarks: eyes, brows and lips are face, never occluders, however unlike
skin they look.

Two uses, two strictnesses. The fit (stages 1 and 2, the detail layer) must
never take colour from an occluder, so it ignores `Occlusion.fit`, the
occluders grown by a margin; render.png and face.blend lay the rendered face
over the photo with `Occlusion.visible`, the face minus its occluders with a
feathered edge that lies inside the skin, so hair stays sharp in front.
occlusion.png stores 1 − visible: everything the photo keeps in front of the
rendered head (occluders over the face and all that is not face).

Size: the mask is made on the face window (fit/working.py: the photo around
the face, area-averaged to 2-4 × the working size across the face crop), so
its cost follows the face, never the photo's pixel count. `photo_occlusion`
then brings it to the photo's grid as 8-bit, computed only under the final
render crop (bilinear); everywhere else it is 255 (the photo stays). A full-
resolution 8-bit occlusion.png (48 MB in memory for 48 MP, a few hundred kB
as PNG) lets the loader check its size against the photo and lets face.blend's
compositor use it as is, with no transform nodes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..io.image import Window, srgb_to_linear, to_uint8
from ..model.skin import HAEMOGLOBIN
from ..render.crop import Crop, paste
from .landmarks import FACE_OVAL, INNER_LIPS, LEFT_BROW, LEFT_EYE, OUTER_LIPS, RIGHT_BROW, RIGHT_EYE, _quiet_mediapipe

log = logging.getLogger(__name__)

# Skin reference: upper cheeks under the eyes and the nose bridge between and below the brows.
SKIN_SAMPLE_IDS = (50, 101, 118, 117, 123, 36, 280, 330, 347, 346, 352, 266, 6, 197, 195, 5)
NOSE_BOTTOM = (98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48, 64)  # alae and nostrils
EYE_MARGIN = 0.025  # eye outlines grown by this fraction of the face width: lids and lashes are face
# MediaPipe's upper eye contour runs along the lash line, so a lid texel at the margin sees the line half inside the
# opening: the trusted skin keeps the opening's rim, this share of the eye's height deep, and loses only its core
LASH_SHARE = 0.3
EYE_HEIGHT_IDS = ((159, 145), (386, 374))  # upper and lower contour mid-points of RIGHT_EYE, LEFT_EYE
BROW_IDS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
SAMPLE_RADIUS = 0.035  # of the face width
TRIM = 0.7  # fraction of reference pixels kept by the robust fit
CHROMA_FLOOR = 0.03  # log-chromaticity noise floor added to every colour model
CHROMA_LIMIT = 5.0  # Mahalanobis distance (chroma) beyond which a pixel is not this skin whatever the hair says
REDDER_MAX = 1.0  # haemoglobin (core/model/skin.py units) above the cheeks' that is still skin round the mouth …
PERIORAL = 0.15  # … within this fraction of the face width of the lips (elsewhere auburn hair lies on that line),
# where no more than GREY_DARKER darker than the cheeks (a brown moustache lies on it too, but darker)
GREY_SATURATION = 0.45  # below this fraction of the skin's chroma a pixel is greyish …
GREY_DARKER = 0.7  # … and if also this much darker (natural log, ≈ 2×) it is black/grey hair or a frame
LIKELIHOOD_MARGIN = 2.0  # log-likelihood by which the hair model must beat the skin model
MIN_SEPARATION = 0.5  # Bhattacharyya distance from which hair and skin colours are told apart
MIN_SEPARATION_CROWN = 1.0  # … when the "hair" looks like a bald crown: skin's brightness and saturation
CROWN_SATURATION = 0.35  # how far from the skin's saturation (1) such a crown may be (`_hair_is_told_apart`)
HAIR_SIDE = 0.5  # log luminance by which hair is darker (or lighter) than the skin for the hair test to take sides
RESIDUAL_EXPLAINED = 0.04  # stage-1 residual below which a pixel counts as explained skin
MIN_COMPONENT = 0.002  # occluder blobs smaller than this fraction of the face area are noise (freckles, moles)
FIT_MARGIN = 0.02  # occluders grown by this fraction of the face width for the fit
FEATHER = 0.03  # the composite's ramp inside the face outline, fraction of the face width
OCCLUDER_RAMP = 0.03  # … and away from an occluder (hair edges hide missed strands)
MIN_RAMP_PX = 2.0  # never a step: ramps are at least this many pixels wide
FRINGE_GAP = 0.12  # vertical gaps in hair above the brows up to this fraction of the face width are hair too
RESIDUAL_LIMIT = 0.12  # stage-1 residual (gamma-2.2 space, per pixel) that no skin pixel should leave
# How much darker (natural log) than stage 1's render of the skin a pixel must be to be dark hair or a grey occluder:
# the shadow side of a face is darker than the lit cheeks the skin is measured on, but not darker than the fit's own
# shading predicts (module docstring, `occlusion_mask`)
DARKER_THAN_FIT = 0.4


@dataclass
class Occlusion:
    """Photo-grid (H, W) maps. `occluder`: hair/glasses/hands over the face region (0/1); `fit`: the strict
    boolean mask the fit ignores; `visible`: where the rendered face replaces the photo (feathered)."""

    occluder: np.ndarray
    fit: np.ndarray
    visible: np.ndarray
    trusted: np.ndarray  # bool: visible facial skin whose colour may reach the albedo (fit mask off, no mouth opening,
    # no eye opening but its rim: LASH_SHARE)

    @property
    def image(self) -> np.ndarray:
        """occlusion.png: what the photo keeps in front of the rendered head."""
        return 1.0 - self.visible


def person_mask(photo_srgb: np.ndarray) -> np.ndarray:
    """MediaPipe selfie segmentation (the model bundled in the wheel): person probability per pixel."""
    with _quiet_mediapipe() as mp:
        with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
            result = segmenter.process(to_uint8(photo_srgb))
    mask = result.segmentation_mask
    return np.ones(photo_srgb.shape[:2], np.float32) if mask is None else np.clip(mask, 0, 1).astype(np.float32)


def _polygons(points: np.ndarray, loops: tuple[tuple[int, ...], ...], width: int, height: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for loop in loops:
        draw.polygon([(float(points[i, 0]) - 0.5, float(points[i, 1]) - 0.5) for i in loop], fill=255)
    return np.asarray(canvas) > 127


def _features(linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the log chromaticities (log R/G, log B/G), blind to shading under white light, (H, W, 2);
    and the log luminance (H, W)."""
    logs = np.log(linear + 4e-3)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.stack([logs[..., 0] - logs[..., 1], logs[..., 2] - logs[..., 1]], -1), np.log(luminance + 4e-3)


@dataclass
class ColourModel:
    """A robust Gaussian over log chromaticities."""

    mean: np.ndarray  # (2,)
    cov: np.ndarray  # (2, 2)

    def log_likelihood(self, chroma: np.ndarray, distance: np.ndarray | None = None) -> np.ndarray:
        """Gaussian log-likelihood up to a constant; `distance`: the Mahalanobis distance when already measured."""
        distance = self.distance(chroma) if distance is None else distance
        return -0.5 * (distance ** 2 + np.linalg.slogdet(self.cov)[1])

    def saturation(self, chroma: np.ndarray) -> np.ndarray:
        """Chroma along this model's own mean direction: its colour ≈ 1, grey ≈ 0."""
        return chroma @ self.mean / max(float(self.mean @ self.mean), 1e-6)

    def distance(self, chroma: np.ndarray) -> np.ndarray:
        """Mahalanobis distance."""
        d = chroma - self.mean
        return np.sqrt(np.einsum("...i,ij,...j->...", d, np.linalg.inv(self.cov), d))

    def distance_redder(self, chroma: np.ndarray, most: float = REDDER_MAX) -> np.ndarray:
        """Mahalanobis distance to the nearest colour of this skin with up to `most` more haemoglobin.

        The cheeks the model is fitted on are paler than the skin round the lips and on the chin, which differs
        from them along one line only: more blood absorbs green and blue, little red. Measured from the cheeks
        alone, that skin was an occluder (2-3 % of the face oval on the accuracy heads: the photo's colour
        composited over the relit face there, the prior in the albedo).
        """
        r, g, b = HAEMOGLOBIN
        redder = np.array([g - r, g - b])  # (log R/G, log B/G) per unit of haemoglobin
        inverse = np.linalg.inv(self.cov)
        t = np.clip(((chroma - self.mean) @ inverse @ redder) / float(redder @ inverse @ redder), 0.0, most)
        return self.distance(chroma - t[..., None] * redder)


def fit_colour(chroma: np.ndarray) -> ColourModel:
    """Trimmed Gaussian fit: keep the TRIM most typical pixels (a glasses rim, stubble or a stray lock fall out)."""
    keep = np.ones(len(chroma), bool)
    for _ in range(4):
        model = ColourModel(chroma[keep].mean(0), np.cov(chroma[keep].T) + np.eye(2) * 1e-4)
        dist = model.distance(chroma)
        keep = dist <= np.quantile(dist, TRIM)
    return ColourModel(chroma[keep].mean(0), np.cov(chroma[keep].T) / 0.6 + np.eye(2) * CHROMA_FLOOR ** 2)


def reference_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean (H, W): discs around the upper-cheek and nose-bridge landmarks, outside the eyes."""
    face_width = float(np.ptp(points[:, 0]))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    r = SAMPLE_RADIUS * face_width
    for i in SKIN_SAMPLE_IDS:
        x, y = points[i]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    eyes = ndimage.binary_dilation(_polygons(points, (LEFT_EYE, RIGHT_EYE), width, height), iterations=max(1, int(r)))
    return (np.asarray(canvas) > 127) & ~eyes


def face_region(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean (H, W): the landmark face oval, where the rendered face may replace the photo."""
    return _polygons(points, (FACE_OVAL,), width, height)


def feature_regions(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean (H, W): eyes (with lids and lashes), brows, lips and nostrils, grown a little: face, never occluders."""
    face_width = float(np.ptp(points[:, 0]))
    eyes = ndimage.binary_dilation(_polygons(points, (LEFT_EYE, RIGHT_EYE), width, height),
                                   iterations=max(1, int(round(EYE_MARGIN * face_width))))
    rest = ndimage.binary_dilation(_polygons(points, (LEFT_BROW, RIGHT_BROW, OUTER_LIPS, NOSE_BOTTOM), width, height),
                                   iterations=max(1, int(round(0.01 * face_width))))
    return eyes | rest


def _drop_small(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, np.arange(1, count + 1))
    return np.isin(labels, 1 + np.flatnonzero(sizes >= min_pixels))


def _separation(a: ColourModel, b: ColourModel) -> float:
    """Bhattacharyya distance between two Gaussians."""
    cov = (a.cov + b.cov) / 2
    d = a.mean - b.mean
    return float(d @ np.linalg.solve(cov, d) / 8 + 0.5 * np.log(np.linalg.det(cov) / np.sqrt(np.linalg.det(a.cov) * np.linalg.det(b.cov))))


def hair_pixels(points: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Boolean (H, W): the person above the brows and outside the face oval, where hair or headwear usually is."""
    height, width = person.shape
    face_width = float(np.ptp(points[:, 0]))
    outside = ~ndimage.binary_dilation(face_region(points, width, height), iterations=max(1, int(0.04 * face_width)))
    ys, xs = np.mgrid[0:height, 0:width]
    lo, hi = points[:, 0].min() - 0.25 * face_width, points[:, 0].max() + 0.25 * face_width
    above = ys < points[list(BROW_IDS), 1].min()
    return outside & above & (xs >= lo) & (xs <= hi) & (person > 0.5)


def occlusion_mask(photo_srgb: np.ndarray, points: np.ndarray, person: np.ndarray | None = None,
                   residual: np.ndarray | None = None, predicted: np.ndarray | None = None) -> Occlusion:
    """The occlusion of the face in a photo (sRGB float (H, W, 3)) with its 478 landmarks.

    A face pixel is an occluder when its colour is more likely under the hair model (fitted on the person above
    the brows, outside the face) than under the skin model (fitted on the cheeks and the nose bridge), or far
    from the skin's chromaticity, or much darker than the skin. `person`: the selfie segmentation (computed
    when None). `residual`: optional photo-grid (H, W) error of the stage-1 fit (NaN where not rendered); a pixel
    the fit explains well is skin whatever its colour, one it leaves far off and that is not clearly skin is not.
    Near the lips the skin model also accepts its own colour with more blood (`ColourModel.distance_redder`), in
    every test that measures a pixel against it; the likelihood ratio then uses the nearest such colour, which
    favours skin there by about a nat.
    `predicted`: optional photo-grid (H, W) log luminance of the stage-1 render (NaN outside it). "Much darker than
    the skin" is measured against the cheeks, which are lit; the shadow side of a face is as dark, and in a graded
    photo (teal shadows, warm highlights) as grey, as a dark beard. Where the render covers, the grey and the hair
    tests also ask the pixel to be DARKER_THAN_FIT darker than the fit predicts its skin to be: a shadow the fitted
    shading casts is skin. On dark_man_frontal the two tests took 21 % and 10 % of the face oval, the whole shadow
    side among them; it showed the photo's blue-grey shadow, relit, in every relit shot.
    """
    height, width = photo_srgb.shape[:2]
    face_width = float(np.ptp(points[:, 0]))
    person = person_mask(photo_srgb) if person is None else person
    size = max(3, int(0.01 * face_width) | 1)
    chroma, log_luminance = _features(srgb_to_linear(photo_srgb[..., :3]))
    reference = reference_pixels(points, width, height)
    skin = fit_colour(chroma[reference])
    # Saturation along the skin's own chroma direction: skin ≈ 1, grey/black (hair, frames, a dark beard) ≈ 0.
    saturation = ndimage.median_filter(skin.saturation(chroma), size=size)
    skin_level = float(np.median(log_luminance[reference]))
    darker = ndimage.median_filter(skin_level - log_luminance, size=size)
    # Round the mouth, skin with more blood than the cheeks' is skin; a moustache is darker than blood makes it.
    lips = _polygons(points, (OUTER_LIPS,), width, height)
    redder = (ndimage.distance_transform_edt(~lips) <= PERIORAL * face_width) & (darker < GREY_DARKER) if lips.any() \
        else np.zeros((height, width), bool)
    from_skin = skin.distance(chroma)
    from_skin[redder] = skin.distance_redder(chroma[redder])
    distance = ndimage.median_filter(from_skin, size=size)
    unexpected = np.ones((height, width), bool)  # darker than the fit's shading explains (everywhere, without a fit)
    if predicted is not None:
        covered = np.isfinite(predicted)
        below_fit = ndimage.median_filter(np.where(covered, predicted, log_luminance) - log_luminance, size=size)
        unexpected = ~covered | (below_fit > DARKER_THAN_FIT)
    not_skin = (distance > CHROMA_LIMIT) | ((saturation < GREY_SATURATION) & (darker > GREY_DARKER) & unexpected)
    hair_sample = hair_pixels(points, person)
    if hair_sample.sum() > 100:
        hair = fit_colour(chroma[hair_sample])
        hair_darker = skin_level - float(np.median(log_luminance[hair_sample]))
        if _hair_is_told_apart(_separation(hair, skin), hair_darker, float(skin.saturation(hair.mean))):
            ratio = ndimage.median_filter(hair.log_likelihood(chroma) - skin.log_likelihood(chroma, from_skin), size=size)
            not_skin |= (ratio > LIKELIHOOD_MARGIN) & _on_hair_side(hair_darker, darker) & (unexpected | (hair_darker < 0))
    if residual is not None:
        r = np.nan_to_num(residual, nan=0.0)
        not_skin = (not_skin & (r > RESIDUAL_EXPLAINED)) | ((r > RESIDUAL_LIMIT) & (distance > 0.5 * CHROMA_LIMIT))
    region = face_region(points, width, height)
    features_mask = feature_regions(points, width, height)
    occluder = (not_skin | (person < 0.5)) & region & ~features_mask
    occluder = ndimage.binary_closing(occluder, iterations=2)
    occluder = _fill_fringe(occluder, points, face_width)
    occluder = _drop_small(occluder, MIN_COMPONENT * region.sum()) & region & ~features_mask
    fit = ndimage.binary_dilation(occluder, iterations=max(1, int(round(FIT_MARGIN * face_width))))
    shown = region & ~occluder & (person >= 0.5)
    # The render fades in away from occluders (strands the mask missed lie next to the ones it found) and
    # from the face's outline; the photo's own edges stay sharp in front.
    from_occluder = ndimage.distance_transform_edt(~occluder) / max(OCCLUDER_RAMP * face_width, MIN_RAMP_PX)
    from_edge = ndimage.distance_transform_edt(shown) / max(FEATHER * face_width, MIN_RAMP_PX)
    visible = np.clip(np.minimum(from_occluder - 0.5, from_edge), 0, 1) * shown
    openings = _polygons(points, (INNER_LIPS,), width, height)
    for loop, (upper, lower) in zip((RIGHT_EYE, LEFT_EYE), EYE_HEIGHT_IDS):
        eye = _polygons(points, (loop,), width, height)
        rim = LASH_SHARE * float(np.linalg.norm(points[upper, :2] - points[lower, :2]))
        openings |= eye & (ndimage.distance_transform_edt(eye) > rim)
    trusted = region & ~fit & (person >= 0.5) & ~openings
    log.info("occlusion: %.1f %% of the face oval covered", 100 * occluder.sum() / max(region.sum(), 1))
    return Occlusion(occluder=occluder.astype(np.float32), fit=fit, visible=visible.astype(np.float32), trusted=trusted)


def _hair_is_told_apart(separation: float, hair_darker: float, hair_saturation: float) -> bool:
    """Whether the sample above the brows is hair whose colour the skin's can be told from.

    A sample as bright as the skin (|hair_darker| below HAIR_SIDE) and as saturated in the skin's own hue
    (`hair_saturation`, along the skin's chroma direction: skin ≈ 1, grey ≈ 0) is more likely skin itself, a bald
    or shaved crown lit by another light than the cheeks: on the 12 bald Cycles heads of bench/accuracy.py the
    crown sat within 0.4 of the skin's log luminance at saturation 0.83–1.08, separation 0.11–0.57, and at 0.57
    the test marked 6 % of a lit face as hair, whose texels then took the prior and whose photo showed through
    the relit render in blotches (relit 16 dB). Such a sample must be clearly another colour to count. Grey or
    white hair as bright as the skin is not skin-saturated (older_man_blue_glasses: saturation 0.15, separation
    0.71) and keeps the usual threshold."""
    crown_like = abs(hair_darker) < HAIR_SIDE and abs(hair_saturation - 1.0) < CROWN_SATURATION
    return separation > (MIN_SEPARATION_CROWN if crown_like else MIN_SEPARATION)


def _on_hair_side(hair_darker: float, darker: np.ndarray) -> np.ndarray | bool:
    """Where the hair test may call a pixel hair: on the hair's side of the skin's brightness, when they differ.

    `hair_darker` and `darker` (per pixel) are log luminances below the skin reference's. The test compares
    chromaticities only, and a highlight on skin is skin's colour plus white: on dark skin with dark hair it
    reads as the hair's greyish colour. On `dark_man_smile` it marked the shiny forehead and a cheek (16 % of
    the face), whose texels then took the prior and whose photo showed through relit shots with the photo's
    own lighting. Dark hair is darker than the skin, so a pixel brighter than the skin is no dark hair (and
    the converse for light hair on darker skin)."""
    if abs(hair_darker) < HAIR_SIDE:
        return True
    return np.sign(hair_darker) * darker > 0


def _fill_fringe(occluder: np.ndarray, points: np.ndarray, face_width: float) -> np.ndarray:
    """Hair hangs down: above the brows, close the vertical gaps between occluded pixels of a column (the skin-
    coloured strands and highlights of a fringe), so a fringe is one piece down to its lowest strand."""
    top_of_brows = int(points[list(BROW_IDS), 1].min() - 0.02 * face_width)
    if top_of_brows <= 0:
        return occluder
    band = occluder[:top_of_brows]
    length = max(3, int(FRINGE_GAP * face_width))
    closed = ndimage.binary_closing(band, structure=np.ones((length, 1), bool))
    out = occluder.copy()
    out[:top_of_brows] |= closed
    return out


def residual_map(rendered: np.ndarray, target: np.ndarray, crop: Crop, height: int, width: int) -> np.ndarray:
    """The stage-1 fit's error per photo pixel: mean |render − photo| over RGB in a gamma-2.2 space (as the
    photometric loss judges it), from linear crop-grid images; NaN outside the crop."""
    def encode(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 1e-4, None) ** (1 / 2.2)

    error = np.abs(encode(rendered) - encode(target)).mean(-1)
    return paste(crop, error, height, width, np.full((height, width), np.nan, np.float32))


def log_luminance_map(rendered: np.ndarray, coverage: np.ndarray, crop: Crop, height: int, width: int) -> np.ndarray:
    """The stage-1 render's log luminance per photo pixel (as `_features` measures the photo's), from linear crop-grid
    images; NaN outside the crop and where the head covers less than half a pixel (the render's background there is
    the photo itself, which predicts nothing)."""
    predicted = np.where(coverage > 0.5, _features(rendered)[1], np.nan).astype(np.float32)
    return paste(crop, predicted, height, width, np.full((height, width), np.nan, np.float32))


def in_window(crop: Crop, face: Window) -> Crop:
    """The crop (photo pixels) in the coordinates of the window's grid, so `paste` can put crop images onto it."""
    return Crop((crop.x0 - face.x0) / face.step, (crop.y0 - face.y0) / face.step, crop.side / face.step, crop.size)


def photo_occlusion(occluded: Occlusion, face: Window, crop: Crop, height: int, width: int) -> np.ndarray:
    """occlusion.png on the (height, width) photo grid as uint8: the window's visibility resampled onto the render
    crop's grid, pasted (bilinear) under the crop only; 255 (the photo in front) everywhere else."""
    visible = crop.cut(Window(occluded.visible, face.x0, face.y0, face.step))
    # The visibility is pasted, not the occlusion: the bilinear taps beyond the crop's edge read zero, which must
    # mean "not visible" (a 1-px ring of partly visible render otherwise). paste casts by truncation: +0.5 rounds.
    levels = np.clip(visible, 0.0, 1.0) * 255.0 + 0.5  # at most 255.5: still 255 after the cast
    shown = paste(crop, levels, height, width, np.zeros((height, width), np.uint8), in_place=True)
    return np.subtract(255, shown, out=shown)
