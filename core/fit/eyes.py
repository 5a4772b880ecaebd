"""The eyes from the photo: where each eye looks (gaze), how large the iris is, and the eyeballs' colour, de-lit.

A face without irises reads as blind, so after the skin is fitted the eyes are
recovered in three cheap steps rather than inside the photometric stages:

* the eyelids: the blink, wide and squint units of each eye are refitted to
  MediaPipe's 16 eye-contour landmarks of that eye, everything else held (the
  whole-face stages leave the lid aperture ~20 % narrow: the contour is a few
  of their many landmarks, and the photometric term does not see the eyes),
  then opened to the contour's own outline (fit/lids.py);
* gaze and iris radius from MediaPipe's iris landmarks (468–472 the subject's
  right eye, 473–477 the left: centre, then the rim towards +X, up, −X, down
  of the head): each eyeball turns about its centre (model/head/parts.py) so
  that its iris centre and rim, a circle of radius r on the sphere, project onto
  them; a small least-squares problem with weak priors (gaze near straight
  ahead, r near the human 5.9 mm), solved per photo in milliseconds;
* the eye texture (eyes.png, the model's frontal-disc layout): the eye region
  is rendered once with the fitted light, pose and gaze, at 1.5 × the photo's
  pixel density, with passes; every pixel that sees an eyeball gives an albedo
  (photo − modelled specular) / modelled shading at its UV, which is splatted
  into the texture. Catch-lights the fitted light does not explain and deep
  shadow are left out. What no pixel sees (under the lids, the back) takes the
  eye's radial profile — the median albedo at the same distance from the iris
  centre over the pixels that were seen, from either eye — so the iris stays
  round and the sclera continues under the lids;
* the corneas' coat weight (eyes_coat.png, same layout): where the photo shows
  less reflection than the fitted world and lights give the coat (a grey veil
  over a dark iris, a catch-light where the photo has none), the coat gives
  way, down to COAT_FLOOR, and the texture is de-lit under what is left.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..apps.parts import EYE_TEXTURE_SIZE, MOUTH_TEXTURE_SIZE, render_parts
from ..apps.rerender import FINAL_WORLD_SAMPLES
from ..model.camera import project
from ..model.head import parts as head_parts
from ..render import RenderOptions, render
from ..render.crop import Crop, square_around
from .detail import specular_scale
from .embedding import load_embedding
from .landmarks import LEFT_EYE, RIGHT_EYE, interocular_px
from .stages import Reconstruction
from .teeth import run_mouth_vertices

log = logging.getLogger(__name__)

IRIS = ((473, 474, 475, 476, 477), (468, 469, 470, 471, 472))  # [left (+X), right]: centre, +X, up, −X, down
GAZE_PRIOR_DEG = 25.0  # σ of the prior pulling each eye towards straight ahead
VERGENCE_PRIOR_DEG = 4.0  # σ of the difference between the two eyes' yaw (and pitch)
IRIS_PRIOR = 0.08  # σ of log(iris radius / IRIS_RADIUS_M)
LANDMARK_NOISE = 0.05  # σ of an iris landmark, in iris radii
PROFILE_BINS = 48  # radial bins of the profile, over 0..PROFILE_MAX iris radii
PROFILE_MAX = 4.0
HIGHLIGHT_RATIO = 1.6  # a pixel brighter than this × its ring's median (and by 0.06) is an unexplained catch-light
# … on the cornea only (within this many iris radii of its centre): the catch-light is the cornea's mirror image of a
# light. Beyond it the rings mix white sclera with the lids' dark margins and lashes, their median is dark, and the
# test dropped the sclera itself: pale_redhead_frontal lost 20-36 % of its samples at 1.0-1.8 iris radii (median
# albedo 0.30-0.39, against 0.03-0.13 kept), and its eyes rendered with dark rings round the irises.
CORNEA_RADII = 1.1
MIN_SHADING = 0.2  # pixels lit less than this fraction of the eye's median shading are left out
PRIOR_SAMPLES = 0.3  # weight of the radial profile against the splatted photo samples, in samples per sample area
# A pupil is a hole: the darkest eyes' photos show it at 0.001-0.004 (linear), and a floor of 0.005 rendered
# it too light (the centre of the iris on dreadlocks_man_smile: 0.0043 in the photo, 0.0073 in render.png).
ALBEDO_RANGE = (0.001, 0.95)
# The least coat a cornea keeps where the photo shows less reflection than the fitted light gives: a wet eye under
# a new key light still gets a catch-light (15 % of a fitted one, 0.3-0.4 on a dark iris), while the wrong ones of
# the photo's fit fade (eye-crop PSNR on 7 captured runs within 0.01-0.5 dB of no floor).
COAT_FLOOR = 0.15
LIGHT_SAMPLES = 4  # shadow rays per light for the de-lighting render (the splat averages several pixels per texel)
# The de-lighting render shades as render.png and Cycles do: the world sampled with shadow rays, so the mouth's
# cavity is as occluded and the cornea's coat reflects the world as in the final image. With the SH unoccluded and
# no coat reflection (before), open_smile_man's cavity and tongue were de-lit under 9x the light the final render
# gives them (shading 0.50 against 0.056) and rendered black, and a dark iris kept the coat's 0.014 of reflected
# world on top of its photo colour: blue-grey eyes (dreadlocks_man_smile, fringe_shorthair_yaw).
# All of render.png's world directions: in deep shadow a noisy shading biases the de-lit albedo (pixels left dark
# by chance are dropped as unlit, lucky ones de-lit too dark); a mouth interior lit by the world alone came back
# at 0.48 / 0.83 / 0.98 of its albedo with 4 / 8 / 16 directions (tests/test_mouth.py). Cost: the two renders
# take about 2.3x as long as without the world (+9 s a photo on 2 cores).
DELIGHT_OPTIONS = RenderOptions(spp=1, light_samples=LIGHT_SAMPLES, jitter=False, edge_sampling=False,
                                return_passes=True, environment_samples=FINAL_WORLD_SAMPLES)


EYELID_UNITS = ("eyeBlinkLeft", "eyeWideLeft", "eyeSquintLeft", "eyeBlinkRight", "eyeWideRight", "eyeSquintRight")
EYELID_PRIOR = 0.05  # σ of a lid unit's change from the stages' value


def fit_eyelids(run: Reconstruction, points: np.ndarray) -> dict[str, float]:
    """Refit the lid units of run.expression (in place) to the eye-contour landmarks; returns the new weights.

    The embedded landmark points move linearly with the units, so the problem is six bounded weights
    against 32 reprojected points (errors in 1 % of the inter-ocular distance), with a weak pull towards
    the stages' values.
    """
    model, embedding = run.model, load_embedding()
    ids = np.array(LEFT_EYE + RIGHT_EYE)
    units = [model.expression_index(name) for name in EYELID_UNITS]
    with torch.no_grad():
        tri = run.faces[torch.as_tensor(embedding.faces[ids], device=run.device)]
        bary = run.tensor(embedding.bary[ids])
        start = run.expression.detach().clamp(0, 1)
        base = (run.model.evaluate(run.identity.detach(), start)[tri] * bary[..., None]).sum(1)
        deltas = (model.expression_basis[units][:, tri] * bary[None, ..., None]).sum(2)  # (6, N, 3)
        rotation, translation = run.rotation().detach(), run.translation().detach()
        K = run.camera_K(Crop(0.0, 0.0, 1.0, 1)).detach()
    target = run.tensor(points[ids])
    scale = 0.01 * max(interocular_px(points), 1.0)
    x0 = start[units].clone()
    x = x0.clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        moved = base + torch.einsum("k,knc->nc", x.clamp(0, 1) - x0, deltas)
        pixels = project(moved @ rotation.T + translation, K, run.world_from_camera)[0]
        return ((pixels - target) / scale).square().sum() + ((x - x0) / EYELID_PRIOR).square().sum() * 0.1

    _minimise(x, loss, 40)
    with torch.no_grad():
        run.expression[units] = x.detach().clamp(0, 1)
    lids = {name: float(v) for name, v in zip(EYELID_UNITS, x.detach().clamp(0, 1))}
    log.info("eyelids %s (were %s)", {k: round(v, 2) for k, v in lids.items()}, [round(float(v), 2) for v in x0])
    return lids


@dataclass
class GazeFit:
    gaze: np.ndarray  # (2, 2) [left, right] × (yaw, pitch) radians, head frame
    iris_radius_m: float
    error_px: float  # rms distance of the fitted iris points to the landmarks


@dataclass
class EyeFit:
    gaze: GazeFit
    texture: np.ndarray  # (S, S, 3) linear albedo, eyes.png layout
    seen: float  # fraction of the iris texels that photo pixels reached
    coat: np.ndarray | None = None  # (S, S) the cornea's coat weight, eyes.png layout (None: full everywhere)


def fit_gaze(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, rotation: np.ndarray,
             translation: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> GazeFit:
    """Gaze of both eyes and the iris radius from the 10 iris landmarks.

    points (478, 2) pixels; K, world_from_camera the photo's camera; rotation, translation the head pose
    (world = R·model + t); centres (2, 3) and radii (2,) the eyeballs [left, right] in model space.
    """
    dtype = torch.float64
    R = torch.as_tensor(rotation, dtype=dtype)
    t = torch.as_tensor(translation, dtype=dtype)
    Kt, wfc = torch.as_tensor(K, dtype=dtype), torch.as_tensor(world_from_camera, dtype=dtype)
    c = torch.as_tensor(centres, dtype=dtype)
    rho = torch.as_tensor(radii, dtype=dtype)
    observed = torch.as_tensor(points[np.array(IRIS)], dtype=dtype)  # (2, 5, 2)
    iris_px = float(np.linalg.norm(observed[:, 1:].numpy() - observed[:, :1].numpy(), axis=-1).mean())
    scale = max(LANDMARK_NOISE * iris_px, 0.2)  # residual unit: the landmarks' expected error
    angles = torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=dtype) * math.pi
    weights = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0], dtype=dtype)
    params = torch.zeros(5, dtype=dtype, requires_grad=True)  # yaw L, pitch L, yaw R, pitch R, log(r / r0)
    r0 = head_parts.IRIS_RADIUS_M

    def iris_pixels(x: torch.Tensor) -> torch.Tensor:
        gaze = x[:4].view(2, 2)
        r = r0 * torch.exp(x[4])
        depth = torch.sqrt((rho ** 2 - r ** 2).clamp_min(1e-8))  # (2,)
        local = torch.stack([torch.zeros(2, dtype=dtype), -depth, torch.zeros(2, dtype=dtype)], -1)[:, None]
        rim = torch.stack([r * torch.cos(angles), torch.zeros(4, dtype=dtype), r * torch.sin(angles)], -1)
        local = torch.cat([local, local + rim[None]], 1)  # (2, 5, 3)
        turned = local @ head_parts.gaze_rotation(gaze[:, 0], gaze[:, 1]).transpose(-1, -2) + c[:, None]
        world = turned @ R.T + t
        return project(world.reshape(-1, 3), Kt, wfc)[0].view(2, 5, 2)

    def loss() -> torch.Tensor:
        residual = ((iris_pixels(params) - observed) / scale * weights[None, :, None].sqrt()).square().sum()
        gaze = params[:4].view(2, 2)
        prior = (gaze / math.radians(GAZE_PRIOR_DEG)).square().sum()
        prior = prior + ((gaze[0] - gaze[1]) / math.radians(VERGENCE_PRIOR_DEG)).square().sum()
        return residual + prior + (params[4] / IRIS_PRIOR).square()

    _minimise(params, loss, 60)
    with torch.no_grad():
        error = float((iris_pixels(params) - observed).norm(dim=-1).square().mean().sqrt())
        x = params.detach().numpy()
    return GazeFit(gaze=x[:4].reshape(2, 2).copy(), iris_radius_m=float(r0 * math.exp(x[4])), error_px=error)


def _minimise(params: torch.Tensor, loss: Callable[[], torch.Tensor], iterations: int) -> None:
    """L-BFGS with a strong-Wolfe line search on a small, smooth least-squares problem (lids, gaze)."""
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)


def eye_crop(points: np.ndarray, density: float = 1.5, max_size: int = 512) -> Crop:
    """The square around both eyes' contours, 1.35 × their extent, rendered at `density` × the photo's pixels."""
    return square_around(points[list(LEFT_EYE) + list(RIGHT_EYE)], 1.35, density, 96, max_size)


def _inner(passes: dict[str, torch.Tensor], material: int, within: np.ndarray | None) -> np.ndarray:
    """(S, S) bool: the crop pixels whose first hit is `material`, not at its border (and inside `within`)."""
    mine = (passes["material"] == material).cpu().numpy()
    inner = ndimage.binary_erosion(mine, iterations=1, border_value=0)
    return inner if within is None else inner & within


def coat_samples(photo: np.ndarray, passes: dict[str, torch.Tensor], material: int = 1) -> np.ndarray:
    """(N,) σ in [COAT_FLOOR, 1] per `delit_samples` pixel: how much of the modelled coat reflection the photo can
    hold (fit/detail.specular_scale: at most 3/4 of its darkest channel).

    The fitted world and lights are a smooth fit to the skin's shading: the cornea mirrors them as a grey veil
    over the whole eye and as catch-lights where the photo has none (0.011 of white over an iris the photo shows
    at 0.001-0.005 on fringe_shorthair_yaw; catch-lights up to 2.9 where headwrap_woman_yaw's photo shows at most
    0.5). Left at full strength they clip the de-lit iris to the albedo floor and render grey-blue, glassy eyes."""
    inner = _inner(passes, material, None)
    return np.maximum(specular_scale(passes["specular"].cpu().numpy()[inner], photo[inner]), COAT_FLOOR)


def delit_samples(photo: np.ndarray, passes: dict[str, torch.Tensor], material: int,
                  within: np.ndarray | None = None, scale: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(uv (N, 2), albedo (N, 3), shading (N,), spacing) of the crop pixels whose first hit is `material`, not at
    its border (and inside `within`, (S, S) bool, if given); spacing is the median UV distance between
    horizontally neighbouring ones.

    albedo = (photo − scale·specular) / (diffuse + ambient), the inverse of the renderer's composition (`scale`
    (N,): the coat's share the photo shows, `coat_samples`; 1 when None); pixels next to another material mix two
    surfaces and are dropped.
    """
    inner = _inner(passes, material, within)
    shading = (passes["diffuse"] + passes["ambient"]).cpu().numpy()[inner]
    specular = passes["specular"].cpu().numpy()[inner]
    if scale is not None:
        specular = specular * scale[:, None]
    albedo = (photo[inner] - specular) / np.maximum(shading, 1e-4)
    uv = passes["uv"].cpu().numpy()
    pairs = inner[:, 1:] & inner[:, :-1]
    steps = np.linalg.norm(uv[:, 1:] - uv[:, :-1], axis=-1)[pairs]
    spacing = float(np.median(steps)) if len(steps) else 0.0
    return uv[inner], albedo, shading.mean(-1), spacing


def splat(uv: np.ndarray, values: np.ndarray, weights: np.ndarray, size: int, sigma: float = 0.8
          ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear splat of samples at UVs into (size, size) texture sums, smoothed by a Gaussian of `sigma`
    texels (about half the samples' spacing, so neighbouring samples meet): (Σ w·value (S, S, C), Σ w (S, S))."""
    x = uv[:, 0] * size - 0.5
    y = (1 - uv[:, 1]) * size - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    num = np.zeros((size, size, values.shape[1]))
    den = np.zeros((size, size))
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
        np.add.at(den, (yi, xi), w * weights)
        np.add.at(num, (yi, xi), (w * weights)[:, None] * values)
    num = np.stack([ndimage.gaussian_filter(num[..., k], sigma) for k in range(num.shape[-1])], -1)
    return num, ndimage.gaussian_filter(den, sigma)


def _eye_coordinates(uv: np.ndarray, iris_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(eye index 0 left / 1 right, distance from the iris centre in iris radii) of UVs."""
    eye = (uv[:, 0] < 0.5).astype(np.int64)
    centre = np.array(head_parts.EYE_UV_CENTRES)[eye]
    angle = np.linalg.norm(uv - centre, axis=1) / head_parts.EYE_UV_FRONT * 90.0
    return eye, angle / iris_deg


def radial_profiles(eye: np.ndarray, radius: np.ndarray, albedo: np.ndarray, default: np.ndarray) -> np.ndarray:
    """(2, PROFILE_BINS, 3) median albedo per eye and ring; rings no pixel saw take the other eye's, then the
    nearest seen ring's (the default profile where neither eye was seen at all)."""
    bins = np.clip((radius / PROFILE_MAX * PROFILE_BINS).astype(int), 0, PROFILE_BINS - 1)
    out = np.full((2, PROFILE_BINS, 3), np.nan)
    for e in range(2):
        for b in range(PROFILE_BINS):
            mine = (eye == e) & (bins == b)
            if mine.sum() >= 4:
                out[e, b] = np.median(albedo[mine], axis=0)
    for e in range(2):
        missing = np.isnan(out[e, :, 0])
        out[e, missing] = out[1 - e, missing]
    for e in range(2):
        seen = ~np.isnan(out[e, :, 0])
        if not seen.any():
            out[e] = default
            continue
        for k in range(3):
            out[e, :, k] = np.interp(np.arange(PROFILE_BINS), np.nonzero(seen)[0], out[e, seen, k])
    return out


def default_profile(iris_deg: float) -> np.ndarray:
    """(PROFILE_BINS, 3) the model's default eye along a radius, in iris radii."""
    size = EYE_TEXTURE_SIZE
    texture = head_parts.default_eye_texture(size, iris_deg)
    _, angle, _ = head_parts.eye_texture_angles(size)
    row = texture[size // 2, size // 2:]  # the left eye's disc centre is at u = 0.75: walk right from u = 0.5
    radius = angle[size // 2, size // 2:] / iris_deg
    centres = (np.arange(PROFILE_BINS) + 0.5) * PROFILE_MAX / PROFILE_BINS
    order = np.argsort(radius)
    return np.stack([np.interp(centres, radius[order], row[order, k]) for k in range(3)], -1)


def eye_texture(photo: np.ndarray, passes: dict[str, torch.Tensor], iris_deg: float, material: int = 1,
                size: int = EYE_TEXTURE_SIZE) -> tuple[np.ndarray, np.ndarray, float]:
    """The eye texture from a rendered crop's passes and the photo on the crop's grid (linear): see the module
    docstring. Returns (texture (S, S, 3), coat (S, S): the cornea's coat weight, fraction of iris texels seen)."""
    scale = coat_samples(photo, passes, material)
    uv, albedo, shading, spacing = delit_samples(photo, passes, material, scale=scale)
    default = default_profile(iris_deg)
    if len(uv) < 8:
        return head_parts.default_eye_texture(size, iris_deg), np.ones((size, size), np.float32), 0.0
    eye, radius = _eye_coordinates(uv, iris_deg)
    keep = np.ones(len(uv), bool)
    for e in range(2):
        mine = eye == e
        if mine.any():
            keep &= ~mine | (shading >= MIN_SHADING * np.median(shading[mine]))
    profiles = radial_profiles(eye[keep], radius[keep], albedo[keep], default)
    bins = np.clip((radius / PROFILE_MAX * PROFILE_BINS).astype(int), 0, PROFILE_BINS - 1)
    ring = profiles[eye, bins]
    luminance, ring_luminance = albedo.mean(-1), ring.mean(-1)
    keep &= ~((luminance > HIGHLIGHT_RATIO * ring_luminance) & (luminance > ring_luminance + 0.06)
              & (radius < CORNEA_RADII))
    profiles = radial_profiles(eye[keep], radius[keep], albedo[keep], default)
    albedo = np.clip(albedo, *ALBEDO_RANGE)
    step = float(np.clip(spacing * size, 1.0, 8.0))  # texels between neighbouring samples
    num, den = splat(uv[keep], albedo[keep], np.ones(int(keep.sum())), size, sigma=max(0.8, 0.6 * step))
    t_eye, angle, _ = head_parts.eye_texture_angles(size)
    t_radius = angle / iris_deg
    t_bins = np.clip((t_radius / PROFILE_MAX * PROFILE_BINS).astype(int), 0, PROFILE_BINS - 1)
    prior = profiles[t_eye, t_bins]
    weight = PRIOR_SAMPLES / step ** 2
    texture = (num + weight * prior) / (den + weight)[..., None]
    coat_num, coat_den = splat(uv, scale[:, None], np.ones(len(uv)), size, sigma=max(0.8, 0.6 * step))
    # What no pixel saw keeps the full coat, a seen texel its samples' σ: the texture's prior weight would pull a
    # seen iris's 0.36 to 0.51 (tests/test_eyes.py); the colour's prior is the seen rings' colour, the coat's is 1.
    coat = (coat_num[..., 0] + 0.05 * weight) / (coat_den + 0.05 * weight)
    iris = t_radius < 1.0
    return (np.clip(texture, *ALBEDO_RANGE).astype(np.float32), np.clip(coat, 0, 1).astype(np.float32),
            float((den[iris] > weight).mean()))


def eye_geometry(run: Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    """(centres (2, 3), radii (2,)) of the fitted identity's eyeballs, model space."""
    with torch.no_grad():
        eyes = run.model.eye_evaluate(run.identity.detach())
        return (run.model.eye_centres_of(eyes).cpu().double().numpy(),
                head_parts.eye_radius(run.model, eyes).cpu().double().numpy())


def fit_eyes(run: Reconstruction, points: np.ndarray, maps: tuple[torch.Tensor, ...],
             mouth_texture: np.ndarray | None = None, texture: bool = True) -> EyeFit:
    """Gaze, iris radius and (with `texture`) the eye texture for a reconstruction after its skin stages; its
    eyelids were refitted (fit_eyelids, fit/lids.open_lids) before the maps, which are painted on the lids where
    they end up."""
    centres, radii = eye_geometry(run)
    with torch.no_grad():
        K = run.camera_K(Crop(0.0, 0.0, 1.0, 1)).cpu().double().numpy()
        rotation, translation = run.rotation().cpu().double().numpy(), run.translation().cpu().double().numpy()
    gaze = fit_gaze(points, K, run.world_from_camera.cpu().double().numpy(), rotation, translation, centres, radii)
    iris_deg = head_parts.iris_angle_deg(gaze.iris_radius_m, float(radii.mean()))
    log.info("gaze L %s R %s deg, iris %.2f mm (%.1f deg), landmark error %.2f px",
             np.degrees(gaze.gaze[0]).round(1), np.degrees(gaze.gaze[1]).round(1), 1000 * gaze.iris_radius_m, iris_deg,
             gaze.error_px)
    if not texture:
        return EyeFit(gaze, head_parts.default_eye_texture(EYE_TEXTURE_SIZE, iris_deg), 0.0)
    crop = eye_crop(points)
    photo = crop.cut(run.photo.data, linear=True)
    with torch.no_grad():
        scene = run.scene(crop, run.tensor(photo), maps)  # type: ignore[arg-type]
        scene.parts = run_parts(run, gaze.gaze, head_parts.default_eye_texture(EYE_TEXTURE_SIZE, iris_deg),
                                mouth_texture)
        out = render(scene, DELIGHT_OPTIONS, run.generator)
    texture_map, coat, seen = eye_texture(photo, out.passes, iris_deg)
    return EyeFit(gaze, texture_map, seen, coat)


def run_parts(run: Reconstruction, gaze: np.ndarray, eye_texture_map: np.ndarray, mouth_texture: np.ndarray | None,
              teeth_shift: np.ndarray | None = None, tongue_shift: np.ndarray | None = None
              ) -> list:  # type: ignore[type-arg]
    """The renderer's eyes, teeth and mouth for the reconstruction's current pose, shape and expression."""
    model = run.model
    with torch.no_grad():
        eyes, mouth = run_part_vertices(run, gaze, teeth_shift, tongue_shift)
    if mouth_texture is None:
        mouth_texture = head_parts.default_mouth_texture(model, MOUTH_TEXTURE_SIZE)
    return render_parts(model, eyes, mouth, eye_texture_map, mouth_texture)


def run_part_vertices(run: Reconstruction, gaze: np.ndarray, teeth_shift: np.ndarray | None = None,
                      tongue_shift: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space (eye vertices, mouth vertices) for the reconstruction's current pose, shape and expression."""
    return run_eye_vertices(run, gaze), run_mouth_vertices(run, teeth_shift, tongue_shift)


def run_eye_vertices(run: Reconstruction, gaze: np.ndarray) -> torch.Tensor:
    """World-space eyeball vertices [left eye's, right eye's] for the reconstruction's pose and identity, turned
    by `gaze` (2, 2)."""
    model = run.model
    with torch.no_grad():
        eyes = head_parts.turned_eyes(model, model.eye_evaluate(run.identity.detach()), run.tensor(gaze))
        return eyes @ run.rotation().T + run.translation()
