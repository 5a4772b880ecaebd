"""Stages 0 → 1 → 2 of the reconstruction, with progress, cancel, NaN rollback and a seed: orchestration only.

Stage 0 (fit/solver.py) places the head from landmarks; stages 1 and 2
(fit/stages.py) fit light, shape and skin to the photo. This module runs them
in order, times them, and assembles the Result, whose render.png is made by
apps/rerender.py exactly as a later re-render of the saved folder will be.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import torch

from ..apps.rerender import render_result
from ..common.config import ReconstructConfig
from ..common.device import deterministic, pick
from ..common.metrics import psnr
from ..common.progress import ProgressCallback
from ..common.versions import result_versions
from ..io.image import linear_to_srgb, load_photo
from ..io.report import draw_landmarks, light_diagram, make_report
from ..io.result import Result
from ..model import lightstage, uvmaps
from ..render.crop import Crop, final_crop
from . import shape
from .landmarks import detect
from .masks import skin_mask
from .solver import FitOptions, FitResult, fit_landmarks
from .stages import Reconstruction, crop_targets, stage_lighting, stage_maps


def _assemble(run: Reconstruction, fit0: FitResult, points: np.ndarray, maps: tuple[torch.Tensor, ...]) -> Result:
    """Assemble the Result, then render it exactly as a later re-render of the saved folder will."""
    stage = run.light_stage()
    with torch.no_grad():
        vertices = run.world_vertices()
        rotation, translation = run.rotation(), run.translation()
        K = run.camera_K(Crop(0.0, 0.0, 1.0, 1)).cpu().numpy()
    inside = run.raster.inside

    def texture(m: torch.Tensor) -> np.ndarray:
        return uvmaps.dilate_into_gutter(m.detach().cpu().numpy(), inside)

    diffuse, specular, roughness = (texture(m) for m in maps)
    stage_np = {k: v.detach().cpu().numpy() for k, v in lightstage.as_dict(stage).items()}
    h, w = run.photo.height, run.photo.width
    result = Result(
        photo_srgb=run.photo.pixels, K=K, world_from_camera=run.world_from_camera.cpu().numpy(),
        identity=run.identity.detach().cpu().numpy(), expression=run.expression.detach().clamp(0, 1).cpu().numpy(),
        expression_names=list(run.model.expression_names), rotation=rotation.cpu().numpy(), translation=translation.cpu().numpy(),
        vertices=vertices.cpu().numpy(), faces=run.model.faces.cpu().numpy(), uvs=run.model.uvs.cpu().numpy(),
        face_uvs=run.model.face_uvs.cpu().numpy(), source_vertex_ids=run.model.source_vertex_ids.cpu().numpy(),
        sh=run.sh.detach().cpu().numpy(), stage=stage_np, lights=lightstage.blender_lights(stage),
        diffuse=diffuse, specular=specular[..., 0], roughness=roughness[..., 0],
        render=np.zeros((h, w, 3), np.float32), mask=np.zeros((h, w), np.float32), seed=run.config.seed,
        quality=run.config.quality, timings=run.timings, versions=result_versions(), warnings=run.warnings,
        render_crop=dataclasses.astuple(final_crop(points)),
    )
    image, alpha, out = render_result(result, passes=True, device=str(run.device))
    result.render, result.mask = image, alpha
    mask = skin_mask(points, w, h)
    rendered_srgb = linear_to_srgb(image)
    result.metrics = {"psnr_masked": psnr(rendered_srgb, run.photo.pixels, mask), "landmark_error_px": fit0.reprojection_error_px}
    directions = lightstage.centroids(stage).detach().cpu().numpy() - stage_np["centre"]
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shading = (out.passes["diffuse"] + out.passes["ambient"]).cpu().numpy()
    shadow = out.passes["shadow"].cpu().numpy()
    result.extra_images["report"] = make_report([
        ("photo", run.photo.pixels), ("re-render", rendered_srgb),
        ("difference x4", np.clip(np.abs(rendered_srgb - run.photo.pixels) * 4, 0, 1) * mask[..., None]),
        ("diffuse albedo", linear_to_srgb(diffuse)), ("specular level", specular[..., 0]), ("roughness", roughness[..., 0]),
        ("shading only", linear_to_srgb(shading / max(float(shading.max()), 1e-6))),
        ("shadows only", shadow.mean(-1) if shadow.ndim == 3 else shadow),
        ("light stage", light_diagram(directions, stage_np["i"])), ("skin mask", mask),
    ])
    return result


def _fit_options(config: ReconstructConfig, photo: object) -> FitOptions:
    """Stage-0 options: the config's, with the photo's 35 mm-equivalent EXIF focal length as a strong prior if known."""
    options = FitOptions.from_config(config)
    exif_mm = getattr(photo, "exif_focal_35mm", None)
    if exif_mm is not None and float(exif_mm) > 0:
        options = dataclasses.replace(options, focal_mm=float(exif_mm), focal_known=True)
    return options


def _focal_entry(result: Result, fit0: FitResult) -> dict[str, object]:
    """scene.json camera fields: the final focal length, where it came from and its 1-σ relative uncertainty."""
    focal_mm = float(result.K[0, 0]) * 36.0 / max(result.width, result.height)
    uncertainty = 100.0 * fit0.focal_log_std
    return {"focal_mm": round(focal_mm, 3), "focal_source": fit0.focal_source,
            "focal_uncertainty_pct": round(uncertainty, 2) if np.isfinite(uncertainty) else None}


def reconstruct(photo_path: str, config: ReconstructConfig, progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> Result:
    """Reconstruct one photo; raises FaceStageError (incl. Cancelled) on user-facing problems. Writes nothing."""
    with deterministic(pick(config.device)):
        return _reconstruct(photo_path, config, progress, cancel)


def _reconstruct(photo_path: str, config: ReconstructConfig, progress: ProgressCallback | None,
                 cancel: threading.Event | None) -> Result:
    start = time.perf_counter()
    photo = load_photo(photo_path)
    detected = detect(photo.pixels, str(photo_path), config.face_index)
    run = Reconstruction(photo, config, progress, cancel)
    run.warnings += detected.warnings
    run.timings["load"] = time.perf_counter() - start
    mark = time.perf_counter()
    options = _fit_options(config, photo)  # geom: the photo's EXIF focal length, when it has one
    fit0 = fit_landmarks(detected.points, photo.width, photo.height, run.model, config, progress, cancel, options=options)
    run.init_geometry(fit0)
    if fit0.focal_source == "exif":  # geom: a focal length the photo states is kept, not re-fitted photometrically
        run.log_focal.requires_grad_(False)
    run.timings["landmarks"] = time.perf_counter() - mark
    points = detected.points
    mark = time.perf_counter()
    if config.stages != "landmarks":
        stage_lighting(run, points)
        with torch.no_grad():  # geom hook: the calibrated pull of the identity towards the mean head (fit/shape.py)
            run.identity.copy_(shape.shrink(run.identity))
    else:
        crop, target, mask, _ = crop_targets(run, points, 64)
        run.init_appearance(target.cpu().numpy(), mask.cpu().numpy())
    run.timings["lighting"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with torch.no_grad():
        maps = run.statistical_maps()
    if config.stages == "full":
        maps = stage_maps(run, points)[:3]
    run.timings["maps"] = time.perf_counter() - mark
    mark = time.perf_counter()
    result = _assemble(run, fit0, points, maps)
    result.focal = _focal_entry(result, fit0)  # geom: scene.json camera.focal_* fields
    result.extra_images["landmarks"] = draw_landmarks(photo.pixels, detected.points, fit0.landmarks_px)
    run.timings["output"] = time.perf_counter() - mark
    run.timings["total"] = time.perf_counter() - start
    return result
