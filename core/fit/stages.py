"""Stages 1 and 2 of the reconstruction: the photometric fit of light, shape and skin, then the per-texel maps.

Stage 1 explains the photo with few numbers: pose/shape refinement, SH
ambient, the 20-light stage and a statistical (biophysical, per-region)
albedo, so shadows and shading go to the light, not the skin. Stage 2 then
frees the diffuse, specular and roughness maps per texel, held by symmetry,
consistency with stage 1, smoothness and the skin-colour prior.

Ambiguities and how they are resolved (stated because they decide the maps):
* albedo vs light intensity: the albedo lives on the biophysical skin
  manifold (model/skin.py), whose absolute level is fixed by the chromophore
  model, so the light takes the remaining scale;
* SH vs light stage: the SH is ambient only — its l ≥ 1 coefficients are
  penalised (w_sh_prior), so directional light goes to the stage, where it
  casts shadows; unused stage lights are driven to zero by an L1/L2 prior.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from ..common.config import ReconstructConfig
from ..common.device import pick
from ..common.progress import Guard, ProgressCallback
from ..io.image import Photo, srgb_to_linear
from ..model import lightstage, skin, uvmaps
from ..model.camera import project, rotation_from_axis_angle
from ..model.head import load_head_model
from ..model.sh import Y00
from ..render import RenderOptions, RenderScene, render
from ..render.crop import Crop, face_crop
from . import shape, silhouette
from .embedding import load_embedding
from .masks import skin_mask
from .solver import FitResult, landmark_offsets_world, landmark_weights

ROUGHNESS_STAGE1 = 0.45
SPECULAR_STAGE1 = 0.5


def robust(residual: torch.Tensor, scale: float = 0.05) -> torch.Tensor:
    """Charbonnier penalty: quadratic for small errors, linear for outliers (hair, occluders)."""
    return torch.sqrt(residual ** 2 + scale ** 2) - scale


class Reconstruction:
    """State shared by the stages of one run."""

    def __init__(self, photo: Photo, config: ReconstructConfig, progress: ProgressCallback | None,
                 cancel: threading.Event | None) -> None:
        self.photo, self.config, self.progress, self.cancel = photo, config, progress, cancel
        self.device = pick(config.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.model = load_head_model(device=self.device)
        self.faces = self.model.faces.long()
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = list(photo.warnings)
        self.raster = uvmaps.rasterize_uv(self.model.uvs.cpu().numpy(), self.model.face_uvs.cpu().numpy(), config.texture_size)

    def tensor(self, array: np.ndarray | float, grad: bool = False) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device).clone()
        return t.requires_grad_(grad)

    # ----------------------------------------------------------------- geometry
    def init_geometry(self, fit0: FitResult) -> None:
        """Stage-1 variables around the stage-0 fit: a rotation correction, a translation, a focal scale, shape."""
        self.R0 = self.tensor(fit0.rotation)
        self.t0 = self.tensor(fit0.translation)
        self.world_from_camera = self.tensor(fit0.world_from_camera)
        self.K_full = np.asarray(fit0.K, np.float64)
        self.omega = self.tensor(np.zeros(3), grad=True)
        self.shift = self.tensor(np.zeros(3), grad=True)
        self.log_focal = self.tensor(0.0, grad=True)
        self.identity = self.tensor(fit0.identity, grad=True)
        self.expression = self.tensor(fit0.expression, grad=True)

    def rotation(self) -> torch.Tensor:
        return rotation_from_axis_angle(self.omega.double()).to(self.R0) @ self.R0

    def translation(self) -> torch.Tensor:
        return self.t0 + self.shift

    def world_vertices(self) -> torch.Tensor:
        model_space = self.model.evaluate(self.identity, self.expression.clamp(0, 1))
        return model_space @ self.rotation().T + self.translation()

    def camera_K(self, crop: Crop) -> torch.Tensor:
        K = self.tensor(crop.K(self.K_full))
        scale = torch.exp(self.log_focal)
        return torch.stack([K[0] * torch.stack([scale, scale.new_ones(()), scale.new_ones(())]),
                            K[1] * torch.stack([scale.new_ones(()), scale, scale.new_ones(())]), K[2]])

    # ----------------------------------------------------------------- appearance
    def init_appearance(self, target: np.ndarray, mask: np.ndarray) -> None:
        """Start the skin from the photo's colour and the light from its brightness (a quarter ambient).

        Under grey light the skin's chromaticity alone fixes melanin and haemoglobin (skin.from_colour),
        hence the albedo's level and the light's; starting there keeps the optimiser near that answer.
        """
        regions = self.model.region_weights
        self.region_w = regions / regions.sum(0).clamp_min(1.0)
        n_regions = regions.shape[0]
        colour = (target * mask[..., None]).sum((0, 1)) / max(float(mask.sum()), 1.0)
        melanin0, haemoglobin0 = skin.from_colour(torch.as_tensor(colour, dtype=torch.float64))
        self.melanin = self.tensor(np.r_[melanin0, np.zeros(n_regions)], grad=True)
        self.haemoglobin = self.tensor(np.r_[haemoglobin0, np.zeros(n_regions)], grad=True)
        self.spec_level = self.tensor(np.r_[SPECULAR_STAGE1, np.zeros(n_regions)], grad=True)
        level = float(colour.mean())
        albedo0 = float(skin.skin_albedo(torch.tensor(melanin0), torch.tensor(haemoglobin0)).mean())
        irradiance = math.pi * level / max(albedo0, 1e-3)
        n_sh = self.config.sh_bands ** 2
        sh = np.zeros((3, n_sh))
        sh[:, 0] = 0.25 * irradiance / math.pi / Y00
        self.sh = self.tensor(sh, grad=True)
        centre = self.translation().detach()
        camera_dir = torch.nn.functional.normalize(self.world_from_camera[:3, 3] - centre, dim=0)
        stage = lightstage.default_stage(centre)
        facing = (lightstage.centroids(stage) - centre) @ camera_dir
        front = (facing > 0).float()[:, None]
        stage.i = (0.75 * irradiance * front / front.sum()).expand(-1, 3).clone() + 1e-3
        self.stage_centre = centre
        self.light_raw = {k: v.detach().clone().requires_grad_(True) for k, v in lightstage.to_raw(stage).items()}

    def light_stage(self) -> lightstage.LightStage:
        return lightstage.from_raw(self.light_raw, self.stage_centre)

    def statistical_maps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage-1 textures: biophysical albedo and specular level per region, blended by region weights."""
        def per_vertex(values: torch.Tensor) -> torch.Tensor:
            return values[0] + values[1:] @ self.region_w

        albedo = skin.skin_albedo(per_vertex(self.melanin), per_vertex(self.haemoglobin))
        spec = per_vertex(self.spec_level).clamp(0, 1)[:, None]
        diffuse = uvmaps.vertex_to_texture(albedo, self.faces, self.raster)
        specular = uvmaps.vertex_to_texture(spec, self.faces, self.raster)
        roughness = torch.full_like(specular, ROUGHNESS_STAGE1)
        return diffuse, specular, roughness

    def scene(self, crop: Crop, background: torch.Tensor, maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
              ) -> RenderScene:
        diffuse, specular, roughness = maps
        return RenderScene(verts=self.world_vertices(), faces=self.faces, uvs=self.model.uvs, face_uvs=self.model.face_uvs,
                           diffuse=diffuse, specular=specular, roughness=roughness, K=self.camera_K(crop),
                           world_from_camera=self.world_from_camera, width=crop.size, height=crop.size,
                           sh=self.sh, stage=self.light_stage(), background=background)

    # ----------------------------------------------------------------- losses
    def landmark_loss(self, crop: Crop, detected: torch.Tensor, scale: float) -> torch.Tensor:
        if not hasattr(self, "_embedding"):
            emb = load_embedding()
            keep = np.setdiff1d(np.arange(len(emb.faces)), emb.contour)
            self._embedding = (torch.as_tensor(emb.faces[keep], device=self.device).long(),
                               self.tensor(emb.bary[keep]), self.tensor(landmark_weights()[keep]), torch.as_tensor(keep))
        faces, bary, weights, keep = self._embedding
        verts = self.world_vertices()
        points = (verts[self.faces[faces]] * bary[..., None]).sum(1)
        # geom hook: where MediaPipe really puts each landmark on this head (learned correspondence, fit/solver.py)
        offsets = landmark_offsets_world(self.identity, self.expression.clamp(0, 1), self.rotation(), self.translation(),
                                         self.world_from_camera[:3, 3])
        if offsets is not None:
            points = points + offsets[keep.to(self.device)]
        uv, _ = project(points, self.camera_K(crop), self.world_from_camera)
        target = detected[keep]
        return (weights * robust((uv - target).norm(dim=-1) / scale, 0.01)).sum() / weights.sum()

    def photometric(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Robust error in a gamma-2.2 space (close to how the photo's sRGB values are judged)."""
        def encode(x: torch.Tensor) -> torch.Tensor:
            return x.clamp_min(1e-4) ** (1 / 2.2)

        return (robust(encode(image) - encode(target), 0.02).sum(-1) * mask).sum() / mask.sum().clamp_min(1.0)

    def prior_loss(self) -> torch.Tensor:
        """Coefficient priors, plus the light priors that settle the albedo/light-intensity ambiguity.

        Both light priors are blind to overall brightness (an L1 norm would dim the lights and brighten
        the skin to match, lightening every skin tone). The grey-light prior leaves the photo's colour
        to the skin, and on the biophysical skin model colour fixes melanin and so brightness.
        """
        c = self.config
        i = lightstage.from_raw(self.light_raw, self.stage_centre).i
        sparsity = i.abs().sum() / i.norm().clamp_min(1e-8)  # L1/L2: few lights, any brightness
        return (c.w_identity * (self.identity ** 2).sum() + c.w_expression * self.expression.abs().sum()
                + c.w_light_sparsity * sparsity + c.w_light_colour * (_tint(i) + _tint(self.sh[:, 0]))
                + c.w_sh_prior * (self.sh[:, 1:] ** 2).sum()
                + 1e-2 * ((self.melanin[1:] ** 2).sum() + (self.haemoglobin[1:] ** 2).sum() + (self.spec_level[1:] ** 2).sum()))


def _tint(rgb: torch.Tensor) -> torch.Tensor:
    """Squared chroma of colours (..., 3) relative to their total energy (0 for greys, scale-free)."""
    return ((rgb - rgb.mean(-1, keepdim=True)) ** 2).sum() / (rgb ** 2).sum().clamp_min(1e-8)


def _levels(config: ReconstructConfig, steps: int) -> list[int]:
    """Coarse-to-fine crop sizes for each step: the first third at half resolution."""
    coarse = max(32, config.render_size // 2)
    return [coarse if k < steps // 3 else config.render_size for k in range(steps)]


def crop_targets(run: Reconstruction, points: np.ndarray, size: int, brows: bool = False
                 ) -> tuple[Crop, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The face crop at `size` px and, on its grid, the linear photo, the skin mask and the landmarks."""
    crop = face_crop(points, size)
    linear = srgb_to_linear(run.photo.pixels)
    target = run.tensor(crop.cut(linear))
    mask = run.tensor(crop.cut(skin_mask(points, run.photo.width, run.photo.height, brows=brows)))
    detected = run.tensor((points - [crop.x0, crop.y0]) * size / crop.side)
    return crop, target, mask, detected


def stage_lighting(run: Reconstruction, points: np.ndarray) -> None:
    """Stage 1: pose/shape refinement, SH, light stage and statistical albedo against the photo."""
    steps = run.config.steps.lighting
    crop, target, mask, _ = crop_targets(run, points, run.config.render_size)
    run.init_appearance(target.cpu().numpy(), mask.cpu().numpy())
    lr = run.config.learning_rate
    groups = [
        {"params": [run.omega, run.shift, run.log_focal], "lr": 0.1 * lr},
        {"params": [run.identity, run.expression], "lr": lr},
        {"params": [run.sh, run.melanin, run.haemoglobin, run.spec_level], "lr": 2 * lr},
        {"params": list(run.light_raw.values()), "lr": 5 * lr},
    ]
    optimizer = torch.optim.Adam(groups)
    params = [p for g in groups for p in g["params"]]
    guard = Guard("lighting", steps, run.progress, run.cancel, params, optimizer)
    options = RenderOptions(spp=run.config.spp, light_samples=run.config.shadow_samples, edge_sampling=True)
    cache: dict[int, tuple] = {}  # type: ignore[type-arg]
    # geom hook: the jaw and cheek outline against the background, two-sided (fit/silhouette.py)
    sil = silhouette.outline(run.photo.pixels, points, trust=getattr(run, "outline_trust", None)) if silhouette.ENABLED else None
    for step, size in enumerate(_levels(run.config, steps)):
        if size not in cache:
            cache[size] = crop_targets(run, points, size)
            if sil is not None:
                cache[size] = (*cache[size], *(run.tensor(a) for a in sil.on(cache[size][0])))
        crop, target, mask, detected, *silhouette_targets = cache[size]
        optimizer.zero_grad(set_to_none=True)
        out = render(run.scene(crop, target, run.statistical_maps()), options, run.generator)
        scale = float(np.ptp(detected[:, 0].cpu().numpy()))
        loss = (run.photometric(out.image, target, mask) + run.config.w_landmarks * run.landmark_loss(crop, detected, scale)
                + run.prior_loss())
        if silhouette_targets:  # geom hook
            coverage, weight = silhouette_targets
            loss = loss + silhouette.WEIGHT * (weight * (out.alpha - coverage) ** 2).sum() / weight.sum().clamp_min(1.0)
        loss.backward()
        if guard.step(step, loss):
            optimizer.step()
            with torch.no_grad():
                run.expression.clamp_(0, 1)


def stage_maps(run: Reconstruction, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 2: per-texel diffuse, specular and roughness, regularised; returns the maps and the seen-texel mask."""
    c = run.config
    steps = c.steps.maps
    crop, target, mask, _ = crop_targets(run, points, c.render_size, brows=True)
    with torch.no_grad():
        stat = [m.detach().clone() for m in run.statistical_maps()]
    maps = [m.clone().requires_grad_(True) for m in stat]
    mirror = run.tensor(np.nan_to_num(uvmaps.mirror_uv(run.raster, run.model.faces.cpu().numpy(), run.model.uvs.cpu().numpy(),
                                                        run.model.face_uvs.cpu().numpy(), run.model.symmetry.cpu().numpy()), nan=-1.0))
    has_mirror = mirror[..., 0] >= 0
    inside = torch.as_tensor(run.raster.inside, device=run.device)
    frozen = [p for p in [run.omega, run.shift, run.log_focal, run.identity, run.expression, run.sh,
                          *run.light_raw.values()]]
    for p in frozen:
        p.requires_grad_(False)
    # geom hook: identity and expression may keep moving with the maps, held to where stage 1 left them (fit/shape.py)
    geometry = [run.identity, run.expression] if shape.STAGE2_GEOMETRY else []
    anchor = [g.detach().clone() for g in geometry]
    for p in geometry:
        p.requires_grad_(True)
    options = RenderOptions(spp=c.spp, light_samples=c.shadow_samples, edge_sampling=bool(geometry))
    seen = torch.zeros(inside.shape, dtype=torch.bool, device=run.device)
    groups = [{"params": maps[:1], "lr": 2 * c.learning_rate}, {"params": maps[1:], "lr": 2 * c.learning_rate}]
    if geometry:
        groups.append({"params": geometry, "lr": shape.STAGE2_LR_SCALE * 2 * c.learning_rate})
    optimizer = torch.optim.Adam(groups)
    guard = Guard("maps", steps, run.progress, run.cancel, maps + geometry, optimizer)
    bounds = [(0.003, 0.95), (0.0, 1.0), (0.15, 1.0)]
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        out = render(run.scene(crop, target, tuple(maps)), options, run.generator)  # type: ignore[arg-type]
        data = run.photometric(out.image, target, mask)
        if step == 0:
            data.backward(retain_graph=True)
            seen = maps[0].grad.abs().sum(-1) > 0  # type: ignore[union-attr]
            optimizer.zero_grad(set_to_none=True)
        reg = torch.zeros((), device=run.device)
        for k, (m, s) in enumerate(zip(maps, stat)):
            mirrored = uvmaps.sample_texture(m, mirror.clamp(0, 1))
            sym = ((m - mirrored) ** 2).sum(-1)[has_mirror].mean()
            tv = ((m[1:] - m[:-1]) ** 2).mean() + ((m[:, 1:] - m[:, :-1]) ** 2).mean()
            cons = (((m - s) ** 2).sum(-1) * inside).mean()
            reg = reg + c.w_symmetry * sym + c.w_smoothness * tv * m.shape[0] + c.w_consistency * cons
        reg = reg + c.w_skin_prior * skin.skin_prior(maps[0][inside])
        if geometry:
            reg = reg + shape.anchor_prior(*geometry, *anchor)
        loss = data + reg
        loss.backward()
        if guard.step(step, loss):
            optimizer.step()
            with torch.no_grad():
                for m, (lo, hi) in zip(maps, bounds):
                    m.clamp_(lo, hi)
                run.expression.clamp_(0, 1)
    with torch.no_grad():
        grown = torch.nn.functional.max_pool2d(seen[None, None].float(), 5, 1, 2)[0, 0] > 0
        filled = [uvmaps.fill_unseen(m, grown, torch.where(has_mirror[..., None], mirror, torch.nan), s) for m, s in zip(maps, stat)]
    return filled[0], filled[1], filled[2], grown


