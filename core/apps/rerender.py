"""Re-rendering a finished reconstruction over its photo, and its attribute passes.

render.png, relit.png, the caricature render and the passes all come from
`render_result`: it renders the stored face crop with a generator seeded by the
result's seed, so re-rendering an unchanged result reproduces render.png (the
pipeline makes render.png with this very function).
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.image import srgb_to_linear
from ..io.result import Result
from ..model import lightstage
from ..render import RenderOptions, RenderOutput, RenderScene, render
from ..render.crop import Crop, paste
from .parts import result_parts

FINAL_SPP = 4
FINAL_LIGHT_SAMPLES = 4
PASS_NAMES = ("albedo", "diffuse", "ambient", "specular", "shadow")


def render_result(result: Result, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[type-arg]
                  vertices: np.ndarray | None = None, passes: bool = False,
                  device: str = "cpu") -> tuple[np.ndarray, np.ndarray, RenderOutput]:
    """Re-render a Result (optionally with another light stage, SH or mesh) at photo resolution.

    Returns the linear image composited over the photo, the coverage alpha, and the crop's RenderOutput.
    """
    dev = torch.device(device)

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, np.float32), device=dev)

    crop = Crop(*result.render_crop)
    linear = srgb_to_linear(result.photo_srgb)
    values = stage if stage is not None else result.stage
    scene = RenderScene(
        verts=t(result.vertices if vertices is None else vertices), faces=torch.as_tensor(result.faces, device=dev).long(),
        uvs=t(result.uvs), face_uvs=torch.as_tensor(result.face_uvs, device=dev).long(), diffuse=t(result.diffuse),
        specular=t(result.specular)[..., None], roughness=t(result.roughness)[..., None], K=t(crop.K(result.K)),
        world_from_camera=t(result.world_from_camera), width=crop.size, height=crop.size,
        sh=t(result.sh if sh is None else sh), stage=lightstage.from_dict(values, device=dev), background=t(crop.cut(linear)),
        parts=result_parts(result, dev, vertices))
    generator = torch.Generator(device=dev).manual_seed(int(result.seed))
    with torch.no_grad():
        out = render(scene, RenderOptions(spp=FINAL_SPP, light_samples=FINAL_LIGHT_SAMPLES, edge_sampling=False,
                                          return_passes=passes), generator)
    h, w = result.height, result.width
    image = paste(crop, out.image.cpu().numpy(), h, w, linear)
    alpha = paste(crop, out.alpha.cpu().numpy(), h, w, np.zeros((h, w), np.float32))
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
                             else np.zeros((h, w, *data.shape[2:]), np.float32))
    layers["alpha"] = alpha
    layers["composite"] = image
    return layers
