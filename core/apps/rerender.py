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

import numpy as np
import torch

from ..io.image import srgb_to_linear
from ..io.result import Result
from ..model import lightstage
from ..model.emitters import Emitters
from ..render import RenderOutput, RenderScene
from ..render.crop import Crop, paste, paste_over
from ..render.tiles import final_options, render_tiled
from .parts import result_parts

FINAL_WORLD_SAMPLES = 16  # world directions (diffuse and glossy each): occlusion and reflection of the SH, as in Cycles
PASS_NAMES = ("albedo", "diffuse", "ambient", "specular", "shadow")


def render_result(result: Result, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[type-arg]
                  vertices: np.ndarray | None = None, passes: bool = False,
                  device: str = "cpu", lights: Emitters | None = None, environment: np.ndarray | None = None,
                  environment_samples: int = FINAL_WORLD_SAMPLES) -> tuple[np.ndarray, np.ndarray, RenderOutput]:
    """Re-render a Result (optionally with another light stage, SH or mesh) at photo resolution.

    Returns the linear image composited over the full-resolution photo (only where the face is visible), its
    alpha (coverage × visibility; mask.png), and the crop's RenderOutput. The crop is rendered at crop.size (the
    face's own pixel density, at most 2048 px) in tiles with a fixed sample budget (render/tiles.py); the
    visibility (1 − occlusion) is read on the crop's grid too, so only the photo pixels under the crop are touched.
    `lights` (extra emitters, e.g. a relight rig's) and `environment` (an equirect world image, which replaces
    the SH) come from core/apps/rig.py; environment_samples > 0 samples the world with shadow rays
    (RenderOptions.environment_samples).
    """
    dev = torch.device(device)

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, np.float32), device=dev)

    crop = Crop(*result.render_crop)
    background = crop.cut(result.photo_srgb, linear=True)
    values = stage if stage is not None else result.stage
    scene = RenderScene(
        verts=t(result.vertices if vertices is None else vertices), faces=torch.as_tensor(result.faces, device=dev).long(),
        uvs=t(result.uvs), face_uvs=torch.as_tensor(result.face_uvs, device=dev).long(), diffuse=t(result.diffuse),
        specular=t(result.specular)[..., None], roughness=t(result.roughness)[..., None], K=t(crop.K(result.K)),
        world_from_camera=t(result.world_from_camera), width=crop.size, height=crop.size,
        sh=None if environment is not None else t(result.sh if sh is None else sh), stage=lightstage.from_dict(values, device=dev),
        background=t(background), lights=lights, environment=None if environment is None else t(environment),
        parts=result_parts(result, dev, vertices))
    generator = torch.Generator(device=dev).manual_seed(int(result.seed))
    with torch.no_grad():
        out = render_tiled(scene, final_options(crop.size, passes, environment_samples), generator)
    h, w = result.height, result.width
    coverage = out.alpha.cpu().numpy()
    premultiplied = out.image.cpu().numpy() - (1.0 - coverage[..., None]) * background  # alpha · surface
    if result.occlusion is not None:  # occlusion.png (full resolution, uint8 or float) read under the crop only
        visible = 1.0 - crop.cut(result.occlusion)
        coverage, premultiplied = coverage * visible, premultiplied * visible[..., None]
    image = paste_over(crop, premultiplied, coverage, srgb_to_linear(result.photo_srgb), in_place=True)
    alpha = paste(crop, coverage, h, w, np.zeros((h, w), np.float32), in_place=True)
    return image, alpha, out


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
