"""The final, full-resolution render of a face crop: tiled, with a fixed sample budget, whatever its size.

render.png, relit.png and the caricature render show the face at the
resolution its pixels occupy in the photo, up to crop.FINAL_MAX_SIDE (2048 px)
across. Rendered in one piece, the renderer's per-sample tensors (shading
points × lights × light samples) would take many gigabytes at that size, and
the time would grow with the photo. So:

* `final_options` keeps the number of shading samples of a final render near
  FINAL_SAMPLE_BUDGET: a small crop gets FINAL_SPP × FINAL_LIGHT_SAMPLES per
  pixel (as before), a large one fewer per pixel, down to one; the world's
  samples shrink with the light samples. The noise per
  unit of face area stays about the same, and a 48 MP photo's final render
  costs what a 2 MP one's does. A caller may scale the budget (`budget_scale`):
  relit shots do (core/apps/rerender.py RELIT_BUDGET).
* `render_tiled` renders the crop in tiles of at most TILE_SHADOW_RAYS shadow
  rays, each with the crop's camera shifted to the tile, one BVH for all and
  the caller's generator drawn in tile order, so the result is deterministic
  and memory is bounded by a tile.
"""

from __future__ import annotations

import dataclasses

import torch

from .raytrace import Bvh
from .renderer import RenderOptions, RenderOutput, RenderScene, render, scene_mesh

FINAL_SPP = 4
FINAL_LIGHT_SAMPLES = 4
# pixels × spp × light samples of one final render: every sample up to a 512 px crop (a 2 MP portrait's face is
# ~450 px), fewer per pixel above, so a 48 MP photo's face costs what a 2 MP one's does (768: 4x as much at 48 MP)
FINAL_BUDGET_SIDE = 512
FINAL_SAMPLE_BUDGET = FINAL_BUDGET_SIDE ** 2 * FINAL_SPP * FINAL_LIGHT_SAMPLES
TILE_SHADOW_RAYS = 1 << 22  # shadow rays (shading points × lights × light samples) a tile may need at most
LIGHTS = 20  # a tile is sized for the light stage's 20 lights (plus the world's samples, diffuse and glossy)


def final_samples(size: int, budget_scale: float = 1.0) -> tuple[int, int]:
    """(spp, light samples) of the final render of a size × size crop within budget_scale × FINAL_SAMPLE_BUDGET."""
    per_pixel = budget_scale * FINAL_SAMPLE_BUDGET / (size * size)
    for spp, light_samples in ((FINAL_SPP, FINAL_LIGHT_SAMPLES), (FINAL_SPP, 2), (FINAL_SPP, 1), (2, 1)):
        if spp * light_samples <= per_pixel:
            return spp, light_samples
    return 1, 1


def final_options(size: int, passes: bool = False, environment_samples: int = 0,
                  budget_scale: float = 1.0) -> RenderOptions:
    """The render options of a final (non-differentiated) render of a size × size crop.

    The world's directions take the same share of the budget as the light samples (at least one): they are
    shadow rays too, 2 × 16 per sample against the lights' 4 each, and left at full count they made a 48 MP
    photo's final render four times a 2 MP one's."""
    spp, light_samples = final_samples(size, budget_scale)
    world = max(1, environment_samples * light_samples // FINAL_LIGHT_SAMPLES) if environment_samples > 0 else 0
    return RenderOptions(spp=spp, light_samples=light_samples, edge_sampling=False, return_passes=passes,
                         environment_samples=world)


def _tile_rows(scene: RenderScene, options: RenderOptions) -> int:
    """Rows per tile: full-width bands of at most TILE_SHADOW_RAYS shadow rays (at full coverage)."""
    rays_per_row = scene.width * options.spp * (LIGHTS * options.light_samples + 2 * options.environment_samples)
    return max(1, min(scene.height, TILE_SHADOW_RAYS // max(1, rays_per_row)))


def render_tiled(scene: RenderScene, options: RenderOptions, generator: torch.Generator | None = None) -> RenderOutput:
    """`render(scene, options, generator)` computed in full-width bands; one band when the crop is small enough.

    Only for renders without gradients (edge sampling off): each band is an independent render of its rows."""
    rows = _tile_rows(scene, options)
    if rows >= scene.height:
        return render(scene, options, generator)
    bvh = Bvh(*scene_mesh(scene))  # the head and its parts (eyes, teeth), as render() builds it
    images, alphas, passes = [], [], {}
    for top in range(0, scene.height, rows):
        height = min(rows, scene.height - top)
        K = scene.K.clone()
        K[1, 2] = K[1, 2] - top
        background = scene.background
        if background is not None and background.ndim == 3:
            background = background[top:top + height]
        band = dataclasses.replace(scene, K=K, height=height, background=background)
        out = render(band, options, generator, bvh=bvh)
        images.append(out.image)
        alphas.append(out.alpha)
        for name, value in out.passes.items():
            passes.setdefault(name, []).append(value)
    return RenderOutput(torch.cat(images), torch.cat(alphas), {name: torch.cat(parts) for name, parts in passes.items()})

