"""Stages 1 and 2 of the reconstruction: the photometric fit of light, shape and skin, then the per-texel maps.

Stage 1 explains the photo with few numbers: pose/shape refinement, SH
ambient, the 20-light stage and a statistical (biophysical, per-region)
albedo, so shadows and shading go to the light, not the skin. Stage 2 then
frees the diffuse, specular and roughness maps per texel, held by symmetry,
consistency with stage 1, smoothness and the skin-colour prior.

Ambiguities and how they are resolved (stated because they decide the maps; docs/skin.md measures each cue):
* albedo vs light intensity: skin's specular reflectance is the same for every skin tone, so the specular
  level is held in skin's measured range (model/skin.py SPECULAR_RANGE) and visible highlights measure the
  light; the sclera and the teeth, near-white references (`white_references`, measured by fit/references.py at
  each settle_scale), measure it where the eyes are open or a smile shows teeth; the biophysical chromophore
  model, whose colour loosely fixes lightness, is a prior (its brightness offset `brightness` is free but pulled to 0);
* light colour vs skin colour: each light is held near grey on its own (not only the sum), dim lights are
  switched off after stage 1, and the SH's directional terms are held grey, so a coloured light cannot
  survive by being faint or by hiding in the ambient;
* SH vs light stage: the SH is ambient only — its l ≥ 1 coefficients are penalised (w_sh_prior), so
  directional light goes to the stage, where it casts shadows; unused stage lights are driven to zero by
  an L1/L2 prior;
* per-texel colour vs light: stage 2's albedo is smooth chromophore maps (melanin, haemoglobin at a quarter
  of the texture's resolution) times a grey detail layer bounded to ±DETAIL_MAX in log, so a texel can
  darken or lighten a little but never take the light's hue or a shadow's full depth;
* specular level and roughness vs shading: one photo shows a highlight at a few places only, so they too are
  smooth maps at a quarter of the resolution: fitted per texel they took up shading errors in blotches that
  relit shots showed as patchy highlights.
Texels the photo does not show (under hair, the far side of a turned head) keep what the regularisers carry
there (symmetry, smoothness, consistency with stage 1): no seam where the seen region ends. Replacing them
by the mirror texel or the statistical map left hard edges in every relit shot, and was further from the
truth under a synthetic lock of hair (albedo RMSE 0.068 against 0.057 now).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np
import torch

from ..common.config import ReconstructConfig
from ..common.device import pick
from ..common.progress import Guard, ProgressCallback
from ..io.image import Photo, Window
from ..model import lightstage, skin, uvmaps
from ..model.camera import project, rotation_from_axis_angle
from ..model.head import load_head_model
from ..model.sh import Y00
from ..render import RenderOptions, RenderScene, render
from ..render.crop import Crop, face_crop
from . import silhouette
from .embedding import load_embedding
from .references import measure_references
from .solver import FitResult, landmark_offsets_world, landmark_weights
from .teeth import TEETH_SHARE, TeethLight
from .working import crop_skin_mask, face_window

log = logging.getLogger(__name__)
DETAIL_MAX = 0.25  # stage 2's grey detail layer: albedo × exp(±0.25) at most
CHROMOPHORE_DOWNSCALE = 4  # stage 2's chromophore, specular and roughness maps have texture_size / 4 texels a side
LIGHT_FLOOR = 0.01  # lights delivering less than this share of the stage's irradiance are switched off
LIGHT_TINT_MAX = 0.15  # largest relative deviation of a light's channel from its mean after stage 1
SCALE_SEARCH = 1.5  # settle_scale tries light scales within exp(±1.5) each time
SCALE_STEPS = (0.2, 0.4, 0.6, 0.8)  # fractions of stage 1 after which the scale is settled
ALBEDO_MAX = 0.9  # settle_scale never picks a light scale that would make any channel of the skin's albedo brighter
# ... nor darker in any channel than the darkest skin of the chromophore model (melanin at its maximum): lights so
# bright that the highlights alone outshine the photo are too bright, whatever a white reference says
DARKEST_SKIN = tuple(float(c) for c in skin.skin_albedo(torch.tensor(skin.MELANIN_MAX), torch.tensor(1.0)))
BRIGHT_QUANTILE = 0.97  # ... nor one under which more than 3 % of the skin's pixels would need an albedo above
BRIGHT_ALBEDO_MAX = skin.ALBEDO_RANGE[1]  # this, the delivered map's ceiling: the mean alone hides a too-dark shading


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
        self.face: Window | None = None  # the photo around the face at working resolution (fit/working.py)
        self.raster = uvmaps.rasterize_uv(self.model.uvs.cpu().numpy(), self.model.face_uvs.cpu().numpy(), config.texture_size)
        # 1 = occluded, the fit ignores it: set by the pipeline on the face window's grid (fit/occlusion.py); a
        # photo-grid (H, W) array works too (Crop.cut reads either)
        self.occlusion: Window | np.ndarray | None = None

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
        # (V, 3) model-space offsets no unit of the model reaches (the lips' edges, fit/lips.py shape_opening)
        self.corrective = torch.zeros_like(self.model.evaluate(self.identity.detach(), self.expression.detach()))

    def rotation(self) -> torch.Tensor:
        return rotation_from_axis_angle(self.omega.double()).to(self.R0) @ self.R0

    def translation(self) -> torch.Tensor:
        return self.t0 + self.shift

    def world_vertices(self) -> torch.Tensor:
        model_space = self.model.evaluate(self.identity, self.expression.clamp(0, 1)) + self.corrective
        return model_space @ self.rotation().T + self.translation()

    def camera_K(self, crop: Crop) -> torch.Tensor:
        K = self.tensor(crop.K(self.K_full))
        scale = torch.exp(self.log_focal)
        return torch.stack([K[0] * torch.stack([scale, scale.new_ones(()), scale.new_ones(())]),
                            K[1] * torch.stack([scale.new_ones(()), scale, scale.new_ones(())]), K[2]])

    # ----------------------------------------------------------------- appearance
    def init_appearance(self, target: np.ndarray, mask: np.ndarray) -> None:
        """Start the skin from the photo's colour and the light from its brightness (a quarter ambient).

        Under grey light the skin's chromaticity gives melanin and haemoglobin (skin.from_colour), hence an
        albedo level and a light level to start from; the specular level and roughness start at skin's
        typical values, inside the ranges they are held in.
        """
        regions = self.model.region_weights
        self.region_w = regions / regions.sum(0).clamp_min(1.0)
        n_regions = regions.shape[0]
        colour = (target * mask[..., None]).sum((0, 1)) / max(float(mask.sum()), 1.0)
        melanin0, haemoglobin0 = skin.from_colour(torch.as_tensor(colour, dtype=torch.float64))
        self.melanin = self.tensor(np.r_[melanin0, np.zeros(n_regions)], grad=True)
        self.haemoglobin = self.tensor(np.r_[haemoglobin0, np.zeros(n_regions)], grad=True)
        self.brightness = self.tensor(0.0, grad=True)  # log offset of the albedo from the chromophore model's
        self.spec_raw = self.tensor(np.r_[skin.unbounded(skin.SPECULAR_LEVEL, *skin.SPECULAR_RANGE), np.zeros(n_regions)],
                                    grad=True)
        self.rough_raw = self.tensor(np.r_[skin.unbounded(skin.ROUGHNESS, *skin.ROUGHNESS_RANGE), np.zeros(n_regions)],
                                     grad=True)
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
        self.white_references: list[Callable[[Reconstruction], tuple[torch.Tensor, torch.Tensor, float, float]]] = []

    def light_stage(self) -> lightstage.LightStage:
        return lightstage.from_raw(self.light_raw, self.stage_centre)

    def per_vertex(self, values: torch.Tensor) -> torch.Tensor:
        """A global value plus per-region offsets (values[0], values[1:]) blended by the region weights, (V,)."""
        return values[0] + values[1:] @ self.region_w

    def skin_albedo(self) -> torch.Tensor:
        """The skin's global albedo (3,), float64: the chromophore model's colour times the brightness offset."""
        return (skin.skin_albedo(self.melanin[0].detach().double(), self.haemoglobin[0].detach().double())
                * torch.exp(self.brightness.detach().double()))

    def statistical_maps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage-1 textures: biophysical albedo (times the brightness offset), specular level and roughness in
        skin's ranges, each a global value plus per-region offsets blended by the region weights."""
        albedo = skin.skin_albedo(self.per_vertex(self.melanin), self.per_vertex(self.haemoglobin)) * torch.exp(self.brightness)
        spec = skin.bounded(self.per_vertex(self.spec_raw), *skin.SPECULAR_RANGE)[:, None]
        rough = skin.bounded(self.per_vertex(self.rough_raw), *skin.ROUGHNESS_RANGE)[:, None]
        # one interpolation of all five channels: the texel gathers are most of its cost, paid once, not thrice
        maps = uvmaps.vertex_to_texture(torch.cat([albedo, spec, rough], -1), self.faces, self.raster)
        return maps[..., :3], maps[..., 3:4], maps[..., 4:]

    def chromophore_maps(self) -> torch.Tensor:
        """Stage 1's melanin and haemoglobin as a texture (T, T, 2)."""
        values = torch.stack([self.per_vertex(self.melanin), self.per_vertex(self.haemoglobin)], -1)
        return uvmaps.vertex_to_texture(values, self.faces, self.raster)

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
        # where MediaPipe really puts each landmark on this head (learned correspondence, fit/solver.py)
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
        """Coefficient priors, plus the light priors that keep the lights plausible.

        The light priors are blind to overall brightness (an L1 norm would dim the lights and brighten the skin
        to match): the albedo's scale comes from the specular level held in skin's range, the white references
        and, weakly (w_brightness), the chromophore model. Each light is held grey relative to its own
        strength, as are the SH's directional terms relative to the ambient.
        """
        c = self.config
        i = lightstage.from_raw(self.light_raw, self.stage_centre).i
        sparsity = i.abs().sum() / i.norm().clamp_min(1e-8)  # L1/L2: few lights, any brightness
        regional = ((self.melanin[1:] ** 2).sum() + (self.haemoglobin[1:] ** 2).sum() + (self.spec_raw[1:] ** 2).sum()
                    + (self.rough_raw[1:] ** 2).sum())
        return (c.w_identity * (self.identity ** 2).sum() + c.w_expression * self.expression.abs().sum()
                + c.w_light_sparsity * sparsity + c.w_light_colour * (_light_tint(i) + _sh_tint(self.sh))
                + c.w_sh_prior * (self.sh[:, 1:] ** 2).sum() + 1e-2 * regional
                + c.w_brightness * self.brightness ** 2 + c.w_white_reference * self.white_reference_loss())

    def white_reference_loss(self) -> torch.Tensor:
        """Sum of skin.white_reference_loss over the registered references (sclera, teeth); 0 without any.

        Each entry of `white_references` returns (observed linear colour (3,), rendered shading at albedo 1
        (3,), known albedo, its log tolerance) under the current lights, differentiable in them.
        """
        total = torch.zeros((), device=self.device)
        for reference in self.white_references:
            observed, shading, albedo, tolerance = reference(self)
            total = total + skin.white_reference_loss(observed, shading, albedo, tolerance)
        return total

    def settle_scale(self, crop: Crop, target: torch.Tensor, mask: torch.Tensor, points: np.ndarray | None = None,
                     bright_end: bool = True) -> float:
        """Settle the albedo/light-intensity scale from the highlights: the physics cue of skin's fixed F0.

        Scaling every light (stage and SH) by s scales the specular image by s, since the specular level is held
        in skin's range; the diffuse image then has to explain what the highlights leave, target − s·specular,
        which it does best with per-channel albedo factors g(s) (closed form over the skin mask). The loss of
        g(s)·diffuse + s·specular, plus the brightness prior, is evaluated for a grid of s on the passes of one
        render (no re-render); the best (s, g) is applied: lights × s, the albedo's colour × g/s, put back on the
        chromophore manifold (skin.from_colour) with the rest of its level in `brightness`. Returns s.

        With landmarks (`points`, photo pixels) the sclera and the teeth are measured first (fit/references.py) and
        replace `white_references`; the first plausible one is kept, its loss joins the grid's, and the scale it
        implies on its own joins the grid.

        `bright_end`: a scale is also implausible if more than 3 % of the skin's pixels would need an albedo above
        BRIGHT_ALBEDO_MAX. That test reads the fitted shading pixel by pixel, so it only means something once the
        lights have their shape: stage 1 asks for it at its last settle. At the first, after a few steps from the
        default stage, the bright end was 2.3× the mean; the test then raised the lights 2.5× and later settles
        kept them there (a synthetic head's albedo came back 2.4× too dark).
        """
        candidates = self.white_references if points is None else measure_references(self, points,
                                                                                     self.statistical_maps())
        with torch.no_grad():
            out = render(self.scene(crop, target, self.statistical_maps()),
                         RenderOptions(spp=self.config.spp, light_samples=self.config.shadow_samples, edge_sampling=False,
                                       return_passes=True, environment_samples=self.config.world_samples), self.generator)
            passes, alpha = out.passes, out.alpha[..., None]
            diffuse = alpha * passes["albedo"] * (passes["diffuse"] + passes["ambient"])
            specular = alpha * passes["specular"]
            weight = (mask[..., None] * alpha).expand_as(diffuse)
            outside = (1 - alpha) * target
            k = self.brightness.detach()
            best = (float("inf"), 1.0, torch.ones(3, device=self.device))
            skin_colour = self.skin_albedo()
            darkest = torch.as_tensor(DARKEST_SKIN, dtype=skin_colour.dtype, device=skin_colour.device)
            lit = alpha * (passes["diffuse"] + passes["ambient"])  # the shading at albedo 1
            skin_pixels = (mask * alpha[..., 0] > 0.5) & (lit.min(-1).values > 1e-3)

            def gain_at(s: torch.Tensor) -> tuple[torch.Tensor, bool]:  # the albedo's colour gain, and whether it is skin
                left = target - outside - s * specular  # what the diffuse image has to explain
                gain = (left * diffuse * weight).sum((0, 1)) / (diffuse ** 2 * weight).sum((0, 1)).clamp_min(1e-12)
                gain = gain.clamp(0.05, 20.0)
                albedo = skin_colour * (gain / s).double()
                if float(albedo.max()) > ALBEDO_MAX or bool((albedo < darkest).any()):  # no skin reflects more (less)
                    return gain, False
                if not bright_end:
                    return gain, True
                # The albedo each skin pixel needs at this light level: where the fitted shading is too dark the mean
                # stays plausible while the bright end asks for more than any skin reflects (clipped later, or painted
                # into a too-red map), so the bright end must fit too.
                needed = (left / (s * lit).clamp_min(1e-6))[skin_pixels].max(-1).values
                return gain, needed.numel() == 0 or float(torch.quantile(needed, BRIGHT_QUANTILE)) <= BRIGHT_ALBEDO_MAX

            # A reference whose light level would make the photo's skin brighter (or darker) than any skin is not the
            # near-white surface it stands for (a sclera in the lids' shadow, behind glasses, lashes; the lips' rim
            # read as teeth): it is dropped. Of the rest, the first (the most trusted: fit/references.py) is kept.
            kept, references, implied = [], [], []
            for reference in candidates:  # measured as asked for: the teeth only where the sclera is dropped or missing
                observed, shading, albedo, tolerance = reference(self)
                level = float((observed / shading).mean() / albedo)
                if not gain_at(torch.tensor(level, device=self.device))[1]:
                    log.info("white reference dropped: at the light level it implies (× %.3f) the photo's skin would "
                             "be no skin (brighter than %.2f, or darker than the darkest skin)", level, ALBEDO_MAX)
                    continue
                kept.append(reference)
                references.append((observed, shading, albedo, tolerance))
                implied.append(level)
                break
            self.white_references = kept
            grid = torch.exp(torch.linspace(-SCALE_SEARCH, SCALE_SEARCH, 31, device=self.device))
            grid = torch.cat([grid, torch.tensor(implied, device=self.device, dtype=grid.dtype).clamp(
                math.exp(-SCALE_SEARCH), math.exp(SCALE_SEARCH))])
            for s in grid:
                gain, plausible = gain_at(s)
                if not plausible:
                    continue
                level = torch.log(gain.mean() / s)
                loss = self.photometric(outside + gain * diffuse + s * specular, target, mask) + self.config.w_brightness * (k + level) ** 2
                for observed, shading, albedo, tolerance in references:
                    loss = loss + self.config.w_white_reference * skin.white_reference_loss(observed, s * shading, albedo,
                                                                                            tolerance)
                if float(loss) < best[0]:
                    best = (float(loss), float(s), gain / s)
            _, scale, change = best
            colour = skin_colour * change.double()
            melanin, haemoglobin = skin.from_colour(colour)
            model = skin.skin_albedo(torch.tensor(melanin, dtype=torch.float64), torch.tensor(haemoglobin, dtype=torch.float64))
            self.melanin[0] = melanin
            self.haemoglobin[0] = haemoglobin
            self.brightness.fill_(float(torch.log(colour.mean() / model.mean())))
            stage = self.light_stage()
            stage.i = stage.i * scale
            self.light_raw["i"].copy_(lightstage.to_raw(stage)["i"])
            self.sh.mul_(scale)
        log.debug("settle_scale: lights × %.3f, albedo colour × %s, references imply × %s", scale, change.tolist(), implied)
        return scale

    def prune_lights(self) -> None:
        """Switch off lights that deliver under LIGHT_FLOOR of the stage's irradiance and pull every light's colour
        to within LIGHT_TINT_MAX of grey (a faint or strongly tinted light is the fit's way to paint colour)."""
        with torch.no_grad():
            stage = self.light_stage()
            i = stage.i.clone()
            energy = i.mean(-1)
            i[energy < LIGHT_FLOOR * energy.sum()] = 0.0
            mean = i.mean(-1, keepdim=True)
            deviation = (i - mean) / mean.clamp_min(1e-12)
            i = mean * (1 + deviation.clamp(-LIGHT_TINT_MAX, LIGHT_TINT_MAX))
            stage.i = i
            raw = lightstage.to_raw(stage)
            self.light_raw["i"].copy_(torch.where(i > 0, raw["i"], torch.full_like(raw["i"], -30.0)))


def _light_tint(i: torch.Tensor) -> torch.Tensor:
    """Mean over lights of each light's squared chroma relative to its own energy (lights under 1 % of the
    brightest barely count: they are switched off after stage 1)."""
    energy = (i ** 2).sum(-1)
    floor = (1e-2 * energy.max().detach()).clamp_min(1e-12)
    chroma = ((i - i.mean(-1, keepdim=True)) ** 2).sum(-1)
    return (chroma / (energy + floor)).sum() / (energy / (energy + floor)).sum().clamp_min(1.0)


def _sh_tint(sh: torch.Tensor) -> torch.Tensor:
    """Squared chroma of all SH coefficients (3, n) relative to the ambient (DC) energy: a grey environment."""
    return ((sh - sh.mean(0, keepdim=True)) ** 2).sum() / (sh[:, 0] ** 2).sum().clamp_min(1e-8)


def _levels(config: ReconstructConfig, steps: int) -> list[int]:
    """Coarse-to-fine crop sizes for each step: the first third at half resolution."""
    coarse = max(32, config.render_size // 2)
    return [coarse if k < steps // 3 else config.render_size for k in range(steps)]


def crop_targets(run: Reconstruction, points: np.ndarray, size: int, brows: bool = False
                 ) -> tuple[Crop, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The face crop at `size` px and, on its grid, the linear photo, the skin mask and the landmarks."""
    crop = face_crop(points, size)
    if run.face is None:
        run.face = face_window(run.photo, points, run.config.render_size)
    target = run.tensor(crop.cut(run.face))
    skin = crop_skin_mask(crop, points, brows=brows)
    if run.occlusion is not None:  # hair, glasses, hands (fit/occlusion.py) never reach the photometric losses:
        # a crop pixel is dropped when any photo pixel it averages or interpolates is occluded (exact zeros elsewhere)
        skin = np.where(crop.cut(run.occlusion) > 0.0, 0.0, skin).astype(np.float32)
    mask = run.tensor(skin)
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
        {"params": [run.sh, run.melanin, run.haemoglobin, run.brightness, run.spec_raw, run.rough_raw], "lr": 2 * lr},
        {"params": list(run.light_raw.values()), "lr": 5 * lr},
    ]
    optimizer = torch.optim.Adam(groups)
    params = [p for g in groups for p in g["params"]]
    guard = Guard("lighting", steps, run.progress, run.cancel, params, optimizer)
    options = RenderOptions(spp=run.config.spp, light_samples=run.config.shadow_samples, edge_sampling=True,
                            environment_samples=run.config.world_samples)
    cache: dict[int, tuple] = {}  # type: ignore[type-arg]
    settle_at = {int(f * steps) for f in SCALE_STEPS}
    # the jaw and cheek outline against the background, two-sided (fit/silhouette.py; off until measured)
    sil = silhouette.outline(run.photo.pixels, points, trust=getattr(run, "outline_trust", None)) if silhouette.ENABLED else None
    teeth = TeethLight.measure(run, points)  # the teeth tell a frontal key from an ambient light (fit/teeth.py)
    for step, size in enumerate(_levels(run.config, steps)):
        if size not in cache:
            cache[size] = crop_targets(run, points, size)
            if sil is not None:
                cache[size] = (*cache[size], *(run.tensor(a) for a in sil.on(cache[size][0])))
        crop, target, mask, detected, *silhouette_targets = cache[size]
        if step in settle_at:
            run.settle_scale(crop, target, mask, points, bright_end=step == max(settle_at))
        optimizer.zero_grad(set_to_none=True)
        maps = run.statistical_maps()
        out = render(run.scene(crop, target, maps), options, run.generator, pixel_mask=mask > 0)
        scale = float(np.ptp(detected[:, 0].cpu().numpy()))
        loss = (run.photometric(out.image, target, mask) + run.config.w_landmarks * run.landmark_loss(crop, detected, scale)
                + run.prior_loss())
        if teeth is not None:
            loss = loss + TEETH_SHARE * teeth.loss(run, maps)
        if silhouette_targets:
            coverage, weight = silhouette_targets
            loss = loss + silhouette.WEIGHT * (weight * (out.alpha - coverage) ** 2).sum() / weight.sum().clamp_min(1.0)
        loss.backward()
        if guard.step(step, loss):
            optimizer.step()
            with torch.no_grad():
                run.expression.clamp_(0, 1)
    run.prune_lights()


def stage_maps(run: Reconstruction, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 2: per-texel maps, regularised; returns diffuse, specular, roughness and the seen-texel mask.

    The diffuse albedo is skin.skin_albedo of smooth melanin/haemoglobin maps (a quarter of the texture's
    resolution, upsampled bilinearly) times exp(brightness + detail), detail a grey per-texel layer bounded
    to ±DETAIL_MAX; specular level and roughness are as smooth, inside skin's ranges. Lights, SH, pose and
    shape are fixed. Unseen texels are not replaced (module docstring); the mask says which were seen.
    """
    c = run.config
    steps = c.steps.maps
    crop, target, mask, _ = crop_targets(run, points, c.render_size, brows=True)
    size = run.raster.inside.shape[0]
    low = max(8, size // CHROMOPHORE_DOWNSCALE)
    inside_np = run.raster.inside

    def low_res(m: torch.Tensor) -> torch.Tensor:  # a parameter map at a quarter of the texture's resolution
        return torch.nn.functional.interpolate(m.permute(2, 0, 1)[None], size=(low, low), mode="area")[0].permute(1, 2, 0)

    def unbounded(m: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:  # inverse of skin.bounded
        return torch.logit(((m - bounds[0]) / (bounds[1] - bounds[0])).clamp(1e-3, 1 - 1e-3))

    with torch.no_grad():
        stat = [m.detach().clone() for m in run.statistical_maps()]
        chrom0 = run.tensor(uvmaps.dilate_into_gutter(run.chromophore_maps().cpu().numpy(), inside_np))
        chromophores = low_res(chrom0).requires_grad_(True)
        spec_raw = low_res(unbounded(stat[1], skin.SPECULAR_RANGE)).requires_grad_(True)
        rough_raw = low_res(unbounded(stat[2], skin.ROUGHNESS_RANGE)).requires_grad_(True)
    detail = torch.zeros(size, size, 1, device=run.device, requires_grad=True)
    params = [chromophores, detail, spec_raw, rough_raw]
    brightness = run.brightness.detach()

    def full(chrom: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(chrom.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                               align_corners=False)[0].permute(1, 2, 0)

    def maps_of() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        chrom = full(chromophores)
        diffuse = skin.skin_albedo(chrom[..., 0], chrom[..., 1]) * torch.exp(brightness + DETAIL_MAX * torch.tanh(detail))
        return (diffuse, skin.bounded(full(spec_raw), *skin.SPECULAR_RANGE), skin.bounded(full(rough_raw), *skin.ROUGHNESS_RANGE),
                chrom)

    mirror = run.tensor(uvmaps.mirror_uv(run.raster, run.model.faces.cpu().numpy(), run.model.uvs.cpu().numpy(),
                                         run.model.face_uvs.cpu().numpy(), run.model.symmetry.cpu().numpy()))
    pairs = uvmaps.MirrorPairs(mirror)
    inside = torch.as_tensor(inside_np, device=run.device)
    frozen = [p for p in [run.omega, run.shift, run.log_focal, run.identity, run.expression, run.sh, run.brightness,
                          *run.light_raw.values()]]
    for p in frozen:
        p.requires_grad_(False)
    options = RenderOptions(spp=c.spp, light_samples=c.shadow_samples, edge_sampling=False,
                            environment_samples=c.world_samples)
    seen = torch.zeros(inside.shape, dtype=torch.bool, device=run.device)
    optimizer = torch.optim.Adam([{"params": params[:2], "lr": 2 * c.learning_rate},
                                  {"params": params[2:], "lr": 10 * c.learning_rate}])
    guard = Guard("maps", steps, run.progress, run.cancel, params, optimizer)

    def symmetric_smooth(m: torch.Tensor, scale: float) -> torch.Tensor:
        sym = pairs.squared_difference(m).mean()
        tv = ((m[1:] - m[:-1]) ** 2).mean() + ((m[:, 1:] - m[:, :-1]) ** 2).mean()
        return c.w_symmetry * sym + c.w_smoothness * tv * m.shape[0] * scale

    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        diffuse, specular, roughness, chrom = maps_of()
        out = render(run.scene(crop, target, (diffuse, specular, roughness)), options, run.generator,
                     pixel_mask=mask > 0)
        data = run.photometric(out.image, target, mask)
        if step == 0:
            data.backward(retain_graph=True)
            seen = detail.grad.abs().sum(-1) > 0  # type: ignore[union-attr]
            optimizer.zero_grad(set_to_none=True)
        log_detail = DETAIL_MAX * torch.tanh(detail)
        reg = (symmetric_smooth(chrom, 1.0) + symmetric_smooth(specular, 1.0) + symmetric_smooth(roughness, 1.0)
               + symmetric_smooth(log_detail, 0.25) + c.w_detail * (log_detail[..., 0] ** 2)[inside].mean()
               + c.w_consistency * ((((chrom - chrom0) ** 2).sum(-1) + ((specular - stat[1]) ** 2).sum(-1)
                                     + ((roughness - stat[2]) ** 2).sum(-1)) * inside).mean()
               + c.w_skin_prior * skin.range_penalty(chrom[..., 0][inside], chrom[..., 1][inside]))
        loss = data + reg
        loss.backward()
        if guard.step(step, loss):
            optimizer.step()
    with torch.no_grad():
        diffuse, specular, roughness, _ = maps_of()
        grown = torch.nn.functional.max_pool2d(seen[None, None].float(), 5, 1, 2)[0, 0] > 0
    return diffuse, specular, roughness, grown
