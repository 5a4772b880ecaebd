"""The photo's own skin detail (freckles, moles, lip lines, brows), de-lit and laid onto the fitted albedo.

Stage 2 fits the maps through renders of a few hundred pixels, so the albedo it
finds is smooth: the photo holds far finer detail than that. This module
unwarps the photo into UV space through the final fit: every texel's surface
point is projected into the photo, kept where the camera sees it (a BVH ray
towards the camera), and divided by what the fitted model predicts there,
`(photo − σ · specular) / (albedo · (diffuse + ambient))`, which de-lights it. The
ratio's low frequencies are the fit's business (and hold its shading errors),
so only its high frequencies are kept, bounded in brightness and more tightly
in colour, so a shadow edge or the light's colour cannot turn into albedo. The
brightness bound is lopsided: skin's own detail (moles, freckles, brows, lashes,
pores, lip lines) is darker than the skin round it, while what is brighter is
mostly sheen, the fine, speckled highlight that the fitted specular map is too
smooth to hold. Kept at up to ×2.7, it painted orange-pink speckle over the lit
side of dark faces (headwrap_woman_yaw, dreadlocks_man_smile) into every relit
shot. Brighter detail stops at ×1.35 (LIGHTER_BOUND) and keeps only that share of
its colour shift, the excess being white light, not pigment. The weight fades
the detail out where the view is grazing, occluded (hair, glasses:
fit/occlusion.py), not skin (the eye and mouth openings) or unseen, so
the detailed albedo blends into the fitted one with no visible seam.

The lips are the one place where the low frequencies of the colour are kept
too. Their red is blood seen through a thin, melanin-poor skin, pink in a photo
(green absorbed more than blue), and no point of the skin model's
melanin/haemoglobin manifold is pink: stage 2 returned pale_redhead_frontal's
lips as orange-beige, albedo B/G 0.71 where the de-lit photo asks for 0.95.
Inside the vermilion (`vermilion`: between MediaPipe's outer and inner lip
contours on the head model, feathered) the layer also carries the de-lit
photo's low-frequency colour relative to the skin round the mouth
(`lip_colour`), over the whole vermilion, seen or not: its hue bounded to ±LIP_CHROMA_BOUND in log, its lightness to
LIP_LIGHTNESS_BOUND. A light's colour tints the lips and that skin alike, so it
cancels; the shading is divided out of both, so what is left is the lips' own
albedo. Lipstick is far outside skin: dark_woman_smile_up's magenta asked for
−2.0 in green against the ring, fringe_shorthair_yaw's red lips for −0.6 in
lightness; hue alone, bounded at 0.4, rendered them pale salmon.
render.png's lips on pale_redhead_frontal, red over green against the cheeks': 0.96 → 1.07
(photo 1.09); docs/skin.md item 5. The fitted lips are not always the photo's: a fuller lower lip showed its
bottom half on texels the head model calls skin, which kept the skin's beige (fringe_shorthair_yaw: a pale band
across the lower lip). So the vermilion also takes every texel the camera sees through the photo's own lip polygon
(`photo_vermilion`, between the outer and inner lip landmarks).

Round the eyes the band is wider. A lash line, eyeliner and the lids' dark margins are 1-3 mm wide: wider
than SIGMA_UV's 4 texels, so the high-pass dropped them, and narrower than stage 2's quarter-resolution maps
could paint, so they reached the albedo from neither and the lids rendered 8-20 sRGB levels brighter than the
photo above every eye (astronaut, pale_redhead_frontal, dark_man_frontal). On a small face, where a photo pixel
spans several texels, the 4-texel band held almost nothing at all (astronaut: log ratio −1.0 over the upper lid,
−0.05 kept). Within `lid_margins` (each eye contour grown LID_REACH ×) the band is LID_SIGMA_UV wide and may go
down to LID_DARKER_BOUND, and its background leaves out the texels LASH_DEPTH darker than a first blur
(`_lid_background`): with the line inside it, the skin beside a dark line came out brighter by up to the lighter
bound, a halo. Elsewhere the band stays narrow: widened over the whole face, it took the fit's misplaced shadow
edges into the albedo of every accuracy scene (docs/skin.md).

σ (`specular_scale`) dims the fitted specular where the photo is darker than the
fit's highlight: stage 2 holds the specular level in skin's measured range and
fits it at a quarter of the map's resolution, so a normal a few degrees off puts
a small, close light's lobe where the photo shows none. On dark skin that lobe is
brighter than the photo's green and blue (dreadlocks_man_smile: the specular
was 47 % of the render's green, and above the photo's blue on 29 % of the face),
photo − specular went negative, and the layer turned those texels into grey-blue
blotches, at the darker bound, in every render. Per pixel, σ in [0, 1] dims the
fitted specular to at most 1 − DIFFUSE_SHARE of the photo's darkest channel (a
highlight cannot outshine the photo it is part of); it is never a brightening (the
sheen stays out, as above), and a highlight within that bound stays as fitted. A
per-pixel fit of σ to the photo (in log colour) scored a little higher but turned
every freckle, lash and lip edge into a hole in the specular map (σ < 0.5 on 36 %
of pale_redhead_frontal's face, against 0.6 % under the bound). The specular map
takes σ per texel with the detail's weight (`apply_specular_scale`): a highlight
the photo does not show is not in the delivered scene either. What is left for
the diffuse is then at least DIFFUSE_SHARE of the photo, so no channel's ratio
runs off to the floor.

Interface for the albedo model (stages): `diffuse · exp(lips) · detail ** weight`
(`apply_detail`); the layer is a multiplicative ratio near 1, the lips' colour is
taken over the whole vermilion. The specular map: `specular · (1 + (σ − 1) · weight)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from ..model import skin, uvmaps
from ..model.camera import project
from ..model.head import HeadModel
from ..render.raytrace import Bvh
from .embedding import load_embedding
from .landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE

log = logging.getLogger(__name__)

SIGMA_UV = 4.0 / 1024  # high-pass scale: the detail keeps what is finer than this (texture fraction)
BLEND_UV = 6.0 / 1024  # width of the weight's ramp towards grazing, occluded or unseen texels
GRAZING = (0.15, 0.45)  # cosine of the view angle: no detail below the first, full detail above the second
DARKER_BOUND = 1.0  # |log| of the detail's brightness below the skin round it: ×0.37 (moles, brows, lip lines fit)
LIGHTER_BOUND = 0.3  # … and above it: ×1.35; brighter is sheen (module docstring)
CHROMA_BOUND = 0.15  # |log| of each channel's departure from that brightness
LIP_CHROMA_BOUND = 1.0  # |log| of the lips' own hue against the skin round the mouth (pink lips: ≈ 0.15-0.3)
LIP_LIGHTNESS_BOUND = (0.7, 0.3)  # |log| of their lightness below, above that skin (brighter is sheen, as for detail)
LIP_FEATHER_UV = 3.0 / 1024  # the vermilion mask's soft edge (texture fraction)
LIP_RING_UV = 12.0 / 1024  # the skin round the lips that the lips' colour is measured against
LIP_FIELD_UV = 6.0 / 1024  # where seen, the lips' colour follows the de-lit photo at this scale
PHOTO_LIP_SUPERSAMPLE = 4  # the photo's lip polygon is drawn this many times finer than the view's grid
# Lips are at least as red as the skin round them (more blood, less melanin; lipstick too): a measured colour greener
# than that skin (red minus green, in log, below this) is not the lips' but a moustache's over the vermilion, or skin
# where the fitted lips are not the photo's: glasses_man_frontal's vermilion came out 0.42 greener than the skin round
# it (the delivered map), green-grey lips under his moustache. The margin leaves lips of the skin's own hue alone.
LIP_MIN_REDNESS = -0.1
DIFFUSE_SHARE = 0.25  # the least share of the photo left to the diffuse: the specular may take the rest
# Round the eyes the band is wider and may go darker (`lid_margins`; module docstring): the lash line and the lids'
# margins are a few millimetres wide, too wide for SIGMA_UV and too narrow for stage 2's quarter-resolution maps.
LID_REACH = 1.6  # the eye contour grown about its centre: the lids, their lashes and crease, not the brows
LID_SIGMA_UV = 12.0 / 1024
LID_DARKER_BOUND = 2.0  # ×0.14: lashes and eyeliner over light skin
LASH_DEPTH = 0.2  # log brightness below the blurred ratio from which a texel round the eyes is lashes, not skin


@dataclass
class PhotoView:
    """The photo and the fit's prediction of it on one pixel grid (the final render's crop).

    `trust` is 1 where a pixel shows visible facial skin (the face region minus occluders and the eye and
    mouth openings), 0 elsewhere.
    """

    image: np.ndarray  # (h, w, 3) linear photo
    albedo: np.ndarray  # (h, w, 3) the fitted albedo as rendered
    shading: np.ndarray  # (h, w, 3) diffuse + ambient irradiance factor of the render
    specular: np.ndarray  # (h, w, 3)
    trust: np.ndarray  # (h, w)
    K: np.ndarray  # (3, 3) intrinsics of this grid
    world_from_camera: np.ndarray  # (4, 4)
    lips: np.ndarray | None = None  # (h, w) in [0, 1]: the photo's vermilion (`photo_vermilion`)


def texel_surface(vertices: torch.Tensor, faces: torch.Tensor, raster: uvmaps.UvRaster
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World point (S, S, 3), geometric normal (S, S, 3) and shading normal (S, S, 3) of every texel."""
    face = torch.from_numpy(np.maximum(raster.face, 0)).to(vertices.device)
    bary = torch.from_numpy(raster.bary).to(vertices.device, vertices.dtype)
    corners = vertices[faces[face]]  # (S, S, 3, 3)
    points = (corners * bary[..., None]).sum(-2)
    geometric = torch.nn.functional.normalize(torch.cross(corners[..., 1, :] - corners[..., 0, :],
                                                          corners[..., 2, :] - corners[..., 0, :], dim=-1), dim=-1)
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), torch.nn.functional.normalize(
        torch.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]], dim=-1),
        dim=-1).repeat_interleave(3, 0))
    shading = torch.nn.functional.normalize((torch.nn.functional.normalize(normals, dim=-1)[faces[face]]
                                             * bary[..., None]).sum(-2), dim=-1)
    return points, geometric, shading


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of (h, w[, C]) at pixel positions xy (N, 2) (pixel centres at +0.5), edge-clamped."""
    h, w = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[:, None], fy[:, None]
    return ((1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x0 + 1])
            + fy * ((1 - fx) * image[y0 + 1, x0] + fx * image[y0 + 1, x0 + 1]))


def _normalised_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (S, S, C) that ignores zero-weight texels (normalised convolution)."""
    blurred = ndimage.gaussian_filter(values * weight[..., None], (sigma, sigma, 0))
    norm = ndimage.gaussian_filter(weight, sigma)
    return blurred / np.maximum(norm, 1e-6)[..., None]


def _uv_polygon(model: HeadModel, ids: tuple[int, ...], size: int, scale: float = 1.0) -> np.ndarray:
    """(S, S) in {0, 1}: inside the landmarks' contour in the head model's UV layout (landmark embedding), grown
    `scale` × about its centroid."""
    uv = load_embedding().uv(model.uvs.cpu().numpy(), model.face_uvs.cpu().numpy(), ids)
    uv = uv.mean(0) + scale * (uv - uv.mean(0))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(float(u) * size, (1 - float(v)) * size) for u, v in uv], fill=255)
    return np.asarray(mask, np.float32) / 255.0


def _feathered(mask: np.ndarray, width_uv: float) -> np.ndarray:
    return np.clip(ndimage.gaussian_filter(mask, max(1.0, width_uv * mask.shape[0])), 0, 1).astype(np.float32)


def _bounding_box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The rows and columns of a non-empty (S, S) mask's bounding box, `pad` wider on every side (within the map)."""
    rows, cols = (np.flatnonzero(mask.any(axis)) for axis in (1, 0))
    return slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1)


def _lid_background(log_ratio: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """(S, S, 3) the skin's low frequencies round the eyes, the lash line left out: a normalised blur, then a
    second one without the texels more than LASH_DEPTH darker than the first. With the line inside the first,
    the skin beside a dark line came out brighter than the fit by up to the lighter bound, a halo σ wide."""
    first = _normalised_blur(log_ratio, valid, sigma)
    skin = valid * ((log_ratio - first).mean(-1) > -LASH_DEPTH)
    return _normalised_blur(log_ratio, skin, sigma)


def vermilion(model: HeadModel, size: int) -> np.ndarray:
    """(S, S) in [0, 1]: the lips' red part in the head model's UV layout, between the outer and inner lip
    contours of the landmark embedding, with a soft edge."""
    lips = np.clip(_uv_polygon(model, OUTER_LIPS, size) - _uv_polygon(model, INNER_LIPS, size), 0, 1)
    return _feathered(lips, LIP_FEATHER_UV)


def photo_vermilion(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) in [0, 1]: the photo's lips between the outer and inner lip landmarks `points` (pixels of this grid),
    drawn at PHOTO_LIP_SUPERSAMPLE × over the lips' bounding box and averaged down, so its edge is antialiased."""
    k = PHOTO_LIP_SUPERSAMPLE
    outer = points[list(OUTER_LIPS)]
    x0, y0 = np.clip(np.floor(outer.min(0)).astype(int) - 1, 0, [w, h])
    x1, y1 = np.clip(np.ceil(outer.max(0)).astype(int) + 1, 0, [w, h])
    out = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    image = Image.new("L", ((x1 - x0) * k, (y1 - y0) * k), 0)
    draw = ImageDraw.Draw(image)
    for ids, fill in ((OUTER_LIPS, 255), (INNER_LIPS, 0)):
        draw.polygon([tuple(map(float, (p - [x0, y0]) * k)) for p in points[list(ids)]], fill=fill)
    out[y0:y1, x0:x1] = np.asarray(image, np.float32).reshape(y1 - y0, k, x1 - x0, k).mean((1, 3)) / 255
    return out


def lid_margins(model: HeadModel, size: int) -> np.ndarray:
    """(S, S) in [0, 1]: the lids round each eye opening in the head model's UV layout, out to LID_REACH × the eye
    contour of the landmark embedding, with a soft edge: where the detail band is wider (LID_SIGMA_UV)."""
    lids = np.maximum(_uv_polygon(model, LEFT_EYE, size, LID_REACH), _uv_polygon(model, RIGHT_EYE, size, LID_REACH))
    return _feathered(lids, LIP_FEATHER_UV)


def lip_colour(log_ratio: np.ndarray, valid: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(S, S, 3) log colour that the vermilion takes from the de-lit photo: the lips' colour ratio minus that of
    the skin in a ring round them, times the lips' mask. Where the camera sees the lips it is their local colour
    (a normalised blur LIP_FIELD_UV wide over the seen vermilion), elsewhere their mean: one colour for both lips
    rendered fringe_shorthair_yaw's deep red upper lip too light and its pale, glossy lower lip too red. Each
    channel's departure from the mean (the hue) is clipped to ±LIP_CHROMA_BOUND and the mean (the lightness) to
    LIP_LIGHTNESS_BOUND, so a channel moves by at most their sum; a clipped hue no longer averages to zero
    (dark_woman_smile_up's lightness −0.50 became −0.32, its green −1.5: what was measured, kept). A colour the fit
    got wrong everywhere (the light's) is in both and cancels. Lips whose mean colour is less red than the skin's
    (LIP_MIN_REDNESS) are not the lips and take nothing (zeros)."""
    size = lips.shape[0]
    inner = valid * (lips > 0.5)
    ring = valid * (ndimage.binary_dilation(lips > 0.05, iterations=max(1, int(LIP_RING_UV * size))) & (lips <= 0.05))
    if inner.sum() < 16 or ring.sum() < 16:
        return np.zeros((*lips.shape, 3), np.float32)

    def mean_over(mask: np.ndarray) -> np.ndarray:
        return (log_ratio * mask[..., None]).sum((0, 1)) / mask.sum()

    skin_round = mean_over(ring)
    difference = mean_over(inner) - skin_round
    if difference[0] - difference[1] < LIP_MIN_REDNESS:
        log.info("lips: measured colour %s is greener than the skin round them: not the lips, not taken",
                 np.round(difference, 2))
        return np.zeros((*lips.shape, 3), np.float32)
    sigma = LIP_FIELD_UV * size
    box = _bounding_box(lips > 0, int(3 * sigma) + 1)  # the whole vermilion and the blur's reach: zero outside
    # How far the local colour is taken: fully where at least half the blur's weight is seen lips.
    seen = np.clip(2 * ndimage.gaussian_filter(inner[box], sigma), 0, 1)[..., None]
    field = difference + seen * (_normalised_blur(log_ratio[box], inner[box], sigma) - skin_round - difference)
    lightness = field.mean(-1, keepdims=True)
    colour = np.clip(field - lightness, -LIP_CHROMA_BOUND, LIP_CHROMA_BOUND)
    colour = colour + np.clip(lightness, -LIP_LIGHTNESS_BOUND[0], LIP_LIGHTNESS_BOUND[1])
    out = np.zeros((*lips.shape, 3), np.float32)
    out[box] = colour * lips[box][..., None]
    return out


def specular_scale(specular: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """(N,) σ in [0, 1] per sample: the fitted specular (N, 3) dimmed to at most 1 − DIFFUSE_SHARE of the photo
    (N, 3) in every channel. A highlight brighter than the photo's darkest channel cannot be in it; one within that
    bound is left as fitted, so a freckle or a mole stays pigment, not a hole in the highlight."""
    allowed = (1 - DIFFUSE_SHARE) * (photo / np.maximum(specular, 1e-6)).min(-1)
    return np.clip(allowed, 0, 1).astype(np.float32)


@dataclass
class DetailLayer:
    """The photo's de-lit detail in UV space (S, S maps): applied by `apply_detail` and `apply_specular_scale`."""

    detail: np.ndarray  # (S, S, 3) ratio near 1: the high frequencies, taken with `weight`
    weight: np.ndarray  # (S, S) in [0, 1]
    specular_scale: np.ndarray  # (S, S) σ, 1 where no sample
    lips: np.ndarray  # (S, S, 3) log colour of the whole vermilion (`lip_colour`), taken everywhere it is not 0


def detail_layer(view: PhotoView, vertices: torch.Tensor, faces: torch.Tensor, raster: uvmaps.UvRaster,
                 lips: np.ndarray | None = None, lids: np.ndarray | None = None) -> DetailLayer:
    """The photo's de-lit high-frequency albedo detail in UV space, its weight, the specular scale σ and the lips'
    colour (DetailLayer).

    vertices (V, 3) world and faces (F, 3) are the final fitted mesh; the view's K and world_from_camera place
    the photo. A texel gets weight only when the camera sees its surface point (nothing of the head in front,
    facing the camera) through a trusted pixel. `lips` (S, S): the vermilion mask (`vermilion`), whose texels
    also take the lips' own colour (`lip_colour`): all of them, seen or not, since the colour is one measurement
    of the whole vermilion. Taken only where seen, the lips' inner rim (grazing, or under the mouth opening's
    untrusted pixels) and the side a turned head hides kept the skin's beige: fringe_shorthair_yaw's red lips
    rendered pale with a light band along the lower lip. The vermilion also takes the texels the camera sees
    through the view's `lips` (the photo's lip polygon), where the fitted lips are not the photo's. `lids` (S, S):
    where the band is wider (`lid_margins`).
    """
    size = raster.face.shape[0]
    lids = np.zeros((size, size), np.float32) if lids is None else lids
    faces = faces.long()
    points, geometric, normals = texel_surface(vertices.float(), faces, raster)
    inside = torch.from_numpy(raster.inside)
    eye = torch.as_tensor(view.world_from_camera[:3, 3], dtype=torch.float32)
    to_eye = torch.nn.functional.normalize(eye - points, dim=-1)
    cosine = (normals * to_eye).sum(-1)
    candidates = inside & (cosine > GRAZING[0])
    idx = torch.nonzero(candidates.reshape(-1)).squeeze(1)
    flat_points = points.reshape(-1, 3)[idx]
    blocked = Bvh(vertices.float(), faces).segments_occluded(
        flat_points, geometric.reshape(-1, 3)[idx], eye.expand(len(idx), 1, 3).contiguous())[:, 0]
    xy, depth = project(flat_points, torch.as_tensor(view.K, dtype=torch.float32),
                        torch.as_tensor(view.world_from_camera, dtype=torch.float32))
    xy_np = xy.numpy()
    h, w = view.trust.shape
    on_grid = (xy_np[:, 0] >= 0) & (xy_np[:, 0] < w) & (xy_np[:, 1] >= 0) & (xy_np[:, 1] < h) & (depth.numpy() > 0)
    in_view = on_grid & ~blocked.numpy()
    trust = _sample(view.trust.astype(np.float32), xy_np) * in_view
    ramp = np.clip((cosine.reshape(-1)[idx].numpy() - GRAZING[0]) / (GRAZING[1] - GRAZING[0]), 0, 1)
    predicted = np.maximum(_sample(view.albedo * view.shading, xy_np), 1e-4)
    photo, specular = _sample(view.image, xy_np), _sample(view.specular, xy_np)
    sigma = specular_scale(specular, photo)
    observed = np.maximum(photo - sigma[:, None] * specular, DIFFUSE_SHARE * photo + 1e-4)
    log_ratio = np.zeros((size * size, 3), np.float32)
    log_ratio[idx.numpy()] = np.log(observed / predicted)
    weight = np.zeros(size * size, np.float32)
    weight[idx.numpy()] = (trust > 0.99) * ramp
    scale = np.ones(size * size, np.float32)
    scale[idx.numpy()] = sigma
    log_ratio, weight = log_ratio.reshape(size, size, 3), weight.reshape(size, size)
    if lips is not None and view.lips is not None:
        lips = np.maximum(lips, _seen_in_photo(view.lips, xy_np, in_view, idx.numpy(), size))
    valid = (weight > 0).astype(np.float32)
    low = _normalised_blur(log_ratio, valid, SIGMA_UV * size)
    if lids.any():  # on the lids' bounding box, 4 σ wider (a 20th of the map): the same values, 0.8 s less
        sigma = LID_SIGMA_UV * size
        box = _bounding_box(lids > 0, int(4 * sigma) + 1)
        low[box] += lids[box][..., None] * (_lid_background(log_ratio[box], valid[box], sigma) - low[box])
    high = (log_ratio - low) * valid[..., None]
    lightness = high.mean(-1, keepdims=True)  # log brightness against the skin round it
    darker = DARKER_BOUND + (LID_DARKER_BOUND - DARKER_BOUND) * lids[..., None]
    brightness = np.clip(lightness, -darker, LIGHTER_BOUND)
    pigment_share = np.clip(LIGHTER_BOUND / np.maximum(lightness, 1e-6), 0, 1)  # 1 up to the bound, then falling
    colour = np.clip(high - lightness, -CHROMA_BOUND, CHROMA_BOUND) * pigment_share
    detail = np.exp(brightness + colour).astype(np.float32)
    lip = np.zeros((size, size, 3), np.float32) if lips is None else lip_colour(log_ratio, valid, lips)
    # Fade towards every edge of the trusted area: the blurred weight, zero outside it, ramps over BLEND_UV.
    smooth = ndimage.gaussian_filter(weight, BLEND_UV * size / 2)
    weight = np.clip(2 * smooth - 1, 0, 1) * weight
    return DetailLayer(detail, weight.astype(np.float32), scale.reshape(size, size), lip)


def _seen_in_photo(mask: np.ndarray, xy: np.ndarray, seen: np.ndarray, idx: np.ndarray, size: int) -> np.ndarray:
    """(S, S): a photo-grid mask read at the texels the camera sees (xy their pixels, `seen` which of the
    candidate texels `idx` are in view), 0 elsewhere."""
    out = np.zeros(size * size, np.float32)
    out[idx] = _sample(mask.astype(np.float32), xy) * seen
    return out.reshape(size, size)


def apply_detail(diffuse: np.ndarray, layer: DetailLayer) -> np.ndarray:
    """diffuse · exp(lips) · detail ** weight, kept inside the albedo's range with its hue (skin.within_albedo_range)."""
    return skin.within_albedo_range(diffuse * np.exp(layer.lips) * layer.detail ** layer.weight[..., None])


def apply_specular_scale(specular: np.ndarray, layer: DetailLayer) -> np.ndarray:
    """The specular level map (S, S) dimmed by σ where the detail has weight: specular · (1 + (σ − 1) · weight)."""
    return (specular * (1 + (layer.specular_scale - 1) * layer.weight)).astype(np.float32)
