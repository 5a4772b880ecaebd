"""Re-rendering a finished reconstruction over its photo, and its attribute passes.

render.png, relit.png, the caricature render and the passes all come from
`render_result`: it renders the stored face crop with a generator seeded by the
result's seed, so re-rendering an unchanged result reproduces render.png (the
pipeline makes render.png with this very function).

The composite rule: the rendered head replaces the photo only where the face is
visible, alpha = coverage × (1 − occlusion), so the photo's hair, glasses and
hands stay in front and the render never ends at an edge of its crop (the
visible face lies well inside the crop, core/render/crop.py). face.blend's
compositor applies the same rule (scene/compositing.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy import ndimage

from ..io.image import srgb_to_linear
from ..io.result import Result
from ..model import lightstage
from ..model.emitters import Emitters
from ..render import RenderOutput, RenderScene
from ..render.crop import Crop, paste, paste_over, regrid, scale_under
from ..render.tiles import final_options, render_tiled
from .parts import result_parts

FINAL_WORLD_SAMPLES = 16  # world directions (diffuse and glossy each): occlusion and reflection of the SH, as in Cycles
SHADING_SIZE = 256  # crop pixels of the shading renders that relight the photo around the face (shading is smooth)
SHADING_BLUR = 0.02  # their smoothing, a fraction of the crop's side
SHADING_RATIO_MAX = 8.0  # a deep shadow of the fitted lighting brightens the photo at most this much
FACE_STRIP_INTERIOR = 0.95  # the head's smoothed coverage above which its rendered surface relights a face strip
SILHOUETTE_RAMP = 0.04  # a relit face fades into the relit photo over this fraction of the crop inside its outline
PASS_NAMES = ("albedo", "diffuse", "ambient", "specular", "shadow")
# A relit shot's sample budget, × the final render's (render/tiles.py). The fitted lighting is many broad lights and
# a bright world, and render.png's noise is far below its error (two seeds 41 dB apart on smile_woman_teeth's
# 789-px crop, 4 spp × 1 light sample). A relit shot has one or two small lights over a dim world: at the same
# samples its two seeds were 28.6 dB apart, a grain over the whole face and the teeth that the sheets showed;
# at 4 × the budget (4 × 4) 37.4 dB, 5 → 16 s for that crop.
RELIT_BUDGET = 4.0


def render_crop(result: Result, crop: Crop, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[type-arg]
                vertices: np.ndarray | None = None, passes: bool = False, device: str = "cpu",
                lights: Emitters | None = None, environment: np.ndarray | None = None,
                environment_samples: int = FINAL_WORLD_SAMPLES, background: np.ndarray | None = None,
                budget_scale: float = 1.0) -> RenderOutput:
    """Render a Result's face in `crop` (usually its render_crop) over the photo under it (`background`, the linear
    photo on the crop's grid, is cut here unless given), with nothing composited into the full-resolution photo:
    what a caller that only reads the crop needs (the detail layer's view). Other arguments as for
    `render_result`."""
    scene = render_crop_scene(result, crop, stage, sh, vertices, device, lights, environment, background)
    generator = torch.Generator(device=torch.device(device)).manual_seed(int(result.seed))
    with torch.no_grad():
        return render_tiled(scene, final_options(crop.size, passes, environment_samples, budget_scale), generator)


def render_crop_scene(result: Result, crop: Crop, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[type-arg]
                      vertices: np.ndarray | None = None, device: str = "cpu", lights: Emitters | None = None,
                      environment: np.ndarray | None = None, background: np.ndarray | None = None) -> RenderScene:
    """The scene render_crop renders: a Result's face, eyes and mouth, lights and world, seen through `crop`."""
    dev = torch.device(device)

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, np.float32), device=dev)

    values = stage if stage is not None else result.stage
    return RenderScene(
        verts=t(result.vertices if vertices is None else vertices), faces=torch.as_tensor(result.faces, device=dev).long(),
        uvs=t(result.uvs), face_uvs=torch.as_tensor(result.face_uvs, device=dev).long(), diffuse=t(result.diffuse),
        specular=t(result.specular)[..., None], roughness=t(result.roughness)[..., None], K=t(crop.K(result.K)),
        world_from_camera=t(result.world_from_camera), width=crop.size, height=crop.size,
        sh=None if environment is not None else t(result.sh if sh is None else sh), stage=lightstage.from_dict(values, device=dev),
        background=t(crop.cut(result.photo_srgb, linear=True) if background is None else background), lights=lights,
        environment=None if environment is None else t(environment), parts=result_parts(result, dev, vertices))


def render_result(result: Result, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[type-arg]
                  vertices: np.ndarray | None = None, passes: bool = False,
                  device: str = "cpu", lights: Emitters | None = None, environment: np.ndarray | None = None,
                  environment_samples: int = FINAL_WORLD_SAMPLES, relight_photo: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, RenderOutput]:
    """Re-render a Result (optionally with another light stage, SH or mesh) at photo resolution.

    Returns the linear image composited over the full-resolution photo (only where the face is visible), its
    alpha (coverage × visibility; mask.png), and the crop's RenderOutput. The crop is rendered at crop.size (the
    face's own pixel density, at most 2048 px) in tiles with a fixed sample budget (render/tiles.py); the
    visibility (1 − occlusion) is read on the crop's grid too, so only the photo pixels under the crop are touched.
    `lights` (extra emitters, e.g. a relight rig's) and `environment` (an equirect world image, which replaces
    the SH) come from core/apps/rig.py; environment_samples > 0 samples the world with shadow rays
    (RenderOptions.environment_samples). With `relight_photo` (a relit shot), the photo the face is laid over is
    relit too wherever the head is (`photo_relighting`), and the face is rendered with RELIT_BUDGET × the samples.
    A relit face also fades into that relit photo over SILHOUETTE_RAMP inside its outline: where the fitted head is
    narrower than the photo's face oval (8-13 % of the visible face on pale_redhead_frontal, dark_man_smile and
    glasses_beard_man), it ended in a hard line down the temple or across the jaw. render.png (the photo as lit)
    and face.blend keep the hard composite: the ramp would mix the photo into the scores and into Blender's
    relit shots, whose photo is not relit (accuracy scenes 0 and 2: −0.3 and −0.4 dB relit in Cycles).
    """
    crop = Crop(*result.render_crop)
    background = crop.cut(result.photo_srgb, linear=True)
    out = render_crop(result, crop, stage, sh, vertices, passes, device, lights, environment, environment_samples,
                      background, RELIT_BUDGET if relight_photo else 1.0)
    h, w = result.height, result.width
    head = out.alpha.cpu().numpy()  # the head's own coverage, before any visibility
    coverage = head
    premultiplied = out.image.cpu().numpy() - (1.0 - coverage[..., None]) * background  # alpha · surface
    if result.occlusion is not None:  # occlusion.png (full resolution, uint8 or float) read under the crop only
        visible = 1.0 - crop.cut(result.occlusion)
        coverage, premultiplied = coverage * visible, premultiplied * visible[..., None]
    photo = srgb_to_linear(result.photo_srgb)
    if relight_photo:
        scale_under(crop, photo_relighting(result, crop, stage, sh, lights, environment, device), photo)
        inside = ndimage.distance_transform_edt(head > 0.5)  # crop pixels into the head
        fade = np.clip(inside / max(SILHOUETTE_RAMP * crop.size, 1.0), 0.0, 1.0)
        coverage, premultiplied = coverage * fade, premultiplied * fade[..., None]
    image = paste_over(crop, premultiplied, coverage, photo, in_place=True)
    alpha = paste(crop, coverage, h, w, np.zeros((h, w), np.float32), in_place=True)
    return image, alpha, out


def photo_relighting(result: Result, crop: Crop, stage: dict | None, sh: np.ndarray | None,  # type: ignore[type-arg]
                     lights: Emitters | None, environment: np.ndarray | None, device: str) -> np.ndarray:
    """(crop.size, crop.size, 3): what relights the photo around the visible face in a relit shot.

    The photo stays in front wherever the face is not visible: hair, glasses, a beard, the forehead above the
    face oval, the temples and ears. Left as photographed, those kept the photo's lighting beside a relit face:
    a hard bright forehead under a dark relit one. So they are scaled by the head's own diffuse shading under
    the new lighting over its shading under the fitted one (two small renders, smoothed, since shading is),
    fading to 1 off the head, where nothing tells how the light changed.

    The visible face (1 − occlusion) counts as head too. Where the fitted head is narrower than the photo's face
    oval, the photo shows between the two (8-13 % of the visible face on pale_redhead_frontal, dark_man_smile and
    glasses_beard_man), and those strips kept most of the old light beside the relit face: a bright band down each
    temple or jaw. That photo is skin, highlights included, so it takes the whole rendered surface's ratio
    (diffuse and specular), from the head's nearest pixel clear of its grazing rim."""
    small = dataclasses.replace(crop, size=min(crop.size, SHADING_SIZE))
    sigma = SHADING_BLUR * small.size
    background = small.cut(result.photo_srgb, linear=True)

    def smoothed(**changes: object) -> tuple[np.ndarray, ...]:
        """Diffuse irradiance and the whole surface, each smoothed over the head only, and the head's weight."""
        out = render_crop(result, small, passes=True, device=device, background=background, **changes)  # type: ignore[arg-type]
        cover = out.alpha.cpu().numpy()
        weight = np.maximum(ndimage.gaussian_filter(cover, sigma), 1e-6)
        irradiance = (out.passes["diffuse"] + out.passes["ambient"]).cpu().numpy() * cover[..., None]
        surface = out.image.cpu().numpy() - (1.0 - cover[..., None]) * background  # premultiplied
        return tuple(ndimage.gaussian_filter(x, (sigma, sigma, 0)) / weight[..., None] for x in (irradiance, surface)) \
            + (weight,)

    def ratio_of(relit: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        return np.clip(relit / np.maximum(fitted, 1e-6), 0.0, SHADING_RATIO_MAX)

    fitted, fitted_surface, on_head = smoothed()
    relit, relit_surface, _ = smoothed(stage=stage, sh=sh, lights=lights, environment=environment)
    ratio = ratio_of(relit, fitted)
    weight = np.clip(on_head, 0, 1)
    interior = on_head > FACE_STRIP_INTERIOR
    if result.occlusion is not None and interior.any():
        face = (small.cut(result.occlusion) < 0.5) & small.on_photo(result.height, result.width)
        strip = face & ~interior
        nearest = ndimage.distance_transform_edt(~interior, return_distances=False, return_indices=True)
        ratio[strip] = ratio_of(relit_surface, fitted_surface)[nearest[0], nearest[1]][strip]
        beyond = ndimage.distance_transform_edt(~face)  # 1 up to the face's edge, 0 from 2 σ beyond it
        weight = np.maximum(weight, np.clip(1.0 - beyond / (2.0 * sigma), 0, 1))
    return regrid((1.0 + weight[..., None] * (ratio - 1.0)).astype(np.float32), crop.size)


def pass_images(result: Result, device: str = "cpu") -> dict[str, np.ndarray]:
    """Attribute layers at photo resolution (linear) whose composition reproduces render.png:
    image = alpha · (albedo · (diffuse + ambient) + specular) + (1 − alpha) · photo."""
    image, alpha, out = render_result(result, passes=True, device=device)
    crop = Crop(*result.render_crop)
    h, w = result.height, result.width
    layers = {}
    for name in PASS_NAMES:
        data = out.passes[name].cpu().numpy()
        layers[name] = paste(crop, data, h, w, np.ones((h, w, *data.shape[2:]), np.float32) if name == "shadow"
                             else np.zeros((h, w, *data.shape[2:]), np.float32), in_place=True)
    layers["alpha"] = alpha
    layers["composite"] = image
    return layers
