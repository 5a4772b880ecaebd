"""Stages 0 → 1 → 2 of the reconstruction, with progress, cancel, NaN rollback and a seed: orchestration only.

Stage 0 (fit/solver.py) places the head from landmarks; stages 1 and 2
(fit/stages.py) fit light, shape and skin to the photo. This module runs them
in order, times them, and assembles the Result, whose render.png is made by
apps/rerender.py exactly as a later re-render of the saved folder will be.
The occlusion mask (fit/occlusion.py) is made from the photo before stage 1,
refined with stage 1's residual before stage 2, and the photo's own detail
(fit/detail.py) is laid onto the fitted albedo last.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
import threading
import time

import numpy as np
import torch

from ..apps.rerender import render_crop, render_result
from ..common.config import ReconstructConfig, texture_size_for
from ..common.device import deterministic, pick
from ..common.progress import ProgressCallback
from ..common.versions import result_versions
from ..io.image import Window, area_reduce, linear_to_srgb, load_photo
from ..io.report import draw_landmarks, light_diagram, make_report
from ..io.result import Result
from ..model import lightstage, skin, uvmaps
from ..render import RenderOptions, render
from ..render.crop import Crop, final_crop, regrid
from ..render.tiles import FINAL_BUDGET_SIDE
from .detail import (PhotoView, apply_detail, apply_specular_scale, detail_layer, lid_margins, photo_vermilion,
                     vermilion)
from .eyes import EyeFit, fit_eyelids, fit_eyes
from .landmarks import detect
from .lids import open_lids
from .lips import close_lips, open_lips, shape_opening
from .masks import skin_mask
from .mouth import MouthFit, fit_mouth
from .occlusion import (Occlusion, in_window, log_luminance_map, occlusion_mask, person_mask, photo_occlusion,
                        residual_map)
from .solver import FitOptions, FitResult, fit_landmarks
from .stages import Reconstruction, crop_targets, stage_lighting, stage_maps
from .working import face_psnr, face_window, inner_face_scores

PREVIEW_MAX_SIDE = 2048  # landmarks.png and the report's photo tiles: the photo area-averaged to at most this


def _assemble(run: Reconstruction, fit0: FitResult, points: np.ndarray, maps: tuple[torch.Tensor, ...],
              occluded: Occlusion | None, texture_size: int, eyes: EyeFit, mouth: MouthFit) -> Result:
    """Assemble the Result (maps brought to `texture_size`, the photo's detail on the albedo after a full fit), then
    render it exactly as a later re-render of the saved folder will."""
    stage = run.light_stage()
    with torch.no_grad():
        vertices = run.world_vertices()
        rotation, translation = run.rotation(), run.translation()
        K = run.camera_K(Crop(0.0, 0.0, 1.0, 1)).cpu().numpy()
    raster = run.raster
    if texture_size != raster.face.shape[0]:
        raster = uvmaps.rasterize_uv(run.model.uvs.cpu().numpy(), run.model.face_uvs.cpu().numpy(), texture_size)

    def texture(m: torch.Tensor) -> np.ndarray:
        fitted = uvmaps.dilate_into_gutter(m.detach().cpu().numpy(), run.raster.inside)
        if texture_size != fitted.shape[0]:  # same texel-centre convention on both grids: a plain bilinear resize
            fitted = regrid(fitted, texture_size)
        return uvmaps.dilate_into_gutter(fitted, raster.inside)

    diffuse, specular, roughness = (texture(m) for m in maps)
    diffuse = skin.within_albedo_range(diffuse)  # stage 2 leaves no bound on the albedo's level (stage_maps)
    stage_np = {k: v.detach().cpu().numpy() for k, v in lightstage.as_dict(stage).items()}
    h, w = run.photo.height, run.photo.width
    result = Result(
        photo_srgb=run.photo.srgb8(), K=K, world_from_camera=run.world_from_camera.cpu().numpy(),
        identity=run.identity.detach().cpu().numpy(), expression=run.expression.detach().clamp(0, 1).cpu().numpy(),
        expression_names=list(run.model.expression_names), rotation=rotation.cpu().numpy(), translation=translation.cpu().numpy(),
        vertices=vertices.cpu().numpy(), faces=run.model.faces.cpu().numpy(), uvs=run.model.uvs.cpu().numpy(),
        face_uvs=run.model.face_uvs.cpu().numpy(), source_vertex_ids=run.model.source_vertex_ids.cpu().numpy(),
        sh=run.sh.detach().cpu().numpy(), stage=stage_np, lights=lightstage.blender_lights(stage),
        diffuse=diffuse, specular=specular[..., 0], roughness=roughness[..., 0],
        render=np.zeros((h, w, 3), np.float32), mask=np.zeros((h, w), np.float32), seed=run.config.seed,
        quality=run.config.quality, timings=run.timings, versions=result_versions(), warnings=run.warnings,
        render_crop=dataclasses.astuple(final_crop(points)), focal_source=run.photo.focal_source,
        exif_focal_mm=run.photo.exif_focal_35mm,
        gaze=eyes.gaze.gaze, eye_texture=eyes.texture, eye_coat=eyes.coat, mouth_texture=mouth.texture,
        teeth_shift=mouth.teeth_shift,
        tongue_shift=mouth.tongue_shift,
        lips_shape=run.corrective.detach().cpu().numpy().astype(np.float64) if bool(run.corrective.abs().max() > 0)
        else None,
    )
    crop = Crop(*result.render_crop)
    if occluded is not None and run.face is not None:  # the face window's mask, upsampled under the render crop only
        result.occlusion = photo_occlusion(occluded, run.face, crop, h, w)
    detail_weight = np.zeros(diffuse.shape[:2], np.float32)
    if occluded is not None and run.config.stages == "full":
        mark = time.perf_counter()
        result.diffuse, result.specular, detail_weight = _with_detail(run, result, occluded, raster, points)
        run.timings["detail"] = time.perf_counter() - mark
    image, alpha, out = render_result(result, passes=True, device=str(run.device))
    result.render, result.mask = image, alpha
    psnr_inner, ssim_inner = inner_face_scores(result.photo_srgb, image, crop, points)
    result.metrics = {"psnr_masked": face_psnr(result.photo_srgb, image, crop, points),
                      "psnr_inner_face": psnr_inner, "ssim_inner_face": ssim_inner,
                      "landmark_error_px": fit0.reprojection_error_px}
    preview, factor = run.photo.preview(PREVIEW_MAX_SIDE)  # the report's pictures of the whole photo
    rendered_srgb = linear_to_srgb(area_reduce(image, factor) if factor > 1 else image)
    mask = skin_mask(points / factor, preview.shape[1], preview.shape[0])
    focal_mm = float(K[0, 0]) * 36.0 / max(w, h)
    directions = lightstage.centroids(stage).detach().cpu().numpy() - stage_np["centre"]
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shading = (out.passes["diffuse"] + out.passes["ambient"]).cpu().numpy()
    shadow = out.passes["shadow"].cpu().numpy()
    result.extra_images["report"] = make_report([
        (f"photo, f {focal_mm:.0f} mm ({result.focal_source})", preview), ("re-render", rendered_srgb),
        ("difference x4", np.clip(np.abs(rendered_srgb - preview) * 4, 0, 1) * mask[..., None]),
        ("diffuse albedo", linear_to_srgb(diffuse)), ("specular level", result.specular), ("roughness", roughness[..., 0]),
        ("shading only", linear_to_srgb(shading / max(float(shading.max()), 1e-6))),
        ("shadows only", shadow.mean(-1) if shadow.ndim == 3 else shadow),
        ("light stage", light_diagram(directions, stage_np["i"])), ("skin mask", mask),
        ("occluders (magenta), not shown (dim)", _occlusion_picture(run.face, occluded)),
        ("photo detail (weight)", detail_weight),
        ("eyes", linear_to_srgb(eyes.texture)),
        ("eyes: coat weight", np.ones(eyes.texture.shape[:2], np.float32) if eyes.coat is None else eyes.coat),
        ("teeth and mouth", linear_to_srgb(mouth.texture)),
    ])
    result.extra_images["landmarks"] = draw_landmarks(preview, points / factor, fit0.landmarks_px / factor)
    return result


def _occlusion_picture(face: Window | None, occluded: Occlusion | None) -> np.ndarray:
    """The face window (the grid the mask was made on), dimmed where the photo stays in front of the render,
    magenta over the occluders the mask found."""
    if face is None:
        return np.zeros((8, 8, 3), np.float32)
    photo = linear_to_srgb(face.pixels)
    if occluded is None:
        return photo
    dim = photo * (0.35 + 0.65 * occluded.visible[..., None])
    magenta = np.array([1.0, 0.0, 1.0], np.float32)
    return np.where(occluded.occluder[..., None] > 0.5, 0.4 * photo + 0.6 * magenta, dim)


def _with_detail(run: Reconstruction, result: Result, occluded: Occlusion, raster: uvmaps.UvRaster,
                 points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The diffuse map with the photo's de-lit detail (fit/detail.py), the specular map dimmed where the photo
    shows no highlight, and the detail's weight per texel.

    The photo is read on render.png's crop at no more pixels across than the map has texels (at 2048 px a 1024²
    map's texel spans 2.4 px, median over the seen face). The fit's prediction is smooth (a fitted albedo under
    soft shading), so it is rendered at no more than the final render's full-sample size (FINAL_BUDGET_SIDE) and
    upsampled: at the view's size the fixed sample budget left it one light sample per pixel, noisier, and a 48 MP
    photo paid twice a 2 MP one's time for it."""
    crop = Crop(*result.render_crop)
    grid = dataclasses.replace(crop, size=min(crop.size, raster.face.shape[0]))
    out = render_crop(result, dataclasses.replace(crop, size=min(grid.size, FINAL_BUDGET_SIDE)), passes=True,
                      device=str(run.device))

    def on_grid(image: torch.Tensor) -> np.ndarray:
        return regrid(image.float().cpu().numpy(), grid.size)

    face = run.face
    assert face is not None  # set before stage 1
    trusted = Window(occluded.trusted.astype(np.float32), face.x0, face.y0, face.step)
    view = PhotoView(image=grid.cut(result.photo_srgb, linear=True), albedo=on_grid(out.passes["albedo"]),
                     shading=on_grid(out.passes["diffuse"] + out.passes["ambient"]),
                     specular=on_grid(out.passes["specular"]), trust=grid.cut(trusted) * on_grid(out.alpha),
                     K=grid.K(result.K), world_from_camera=result.world_from_camera,
                     lips=photo_vermilion(grid.pixels(points), grid.size, grid.size))
    layer = detail_layer(view, torch.as_tensor(result.vertices, dtype=torch.float32), torch.as_tensor(result.faces),
                         raster, lips=vermilion(run.model, raster.face.shape[0]),
                         lids=lid_margins(run.model, raster.face.shape[0]))
    diffuse = uvmaps.dilate_into_gutter(apply_detail(result.diffuse, layer), raster.inside)
    specular = uvmaps.dilate_into_gutter(apply_specular_scale(result.specular, layer), raster.inside)
    return diffuse, specular, layer.weight


def _occlusion(run: Reconstruction, points: np.ndarray, person: np.ndarray | None = None,
               residual: np.ndarray | None = None, predicted: np.ndarray | None = None) -> tuple[Occlusion, np.ndarray]:
    """The occlusion mask on the face window's grid (bounded, whatever the photo's size), and the person mask it
    used; run.occlusion becomes its fit mask."""
    face = run.face
    assert face is not None  # set before stage 1
    image = linear_to_srgb(face.pixels)
    local = (np.asarray(points, np.float64) - [face.x0, face.y0]) / face.step
    person = person_mask(image) if person is None else person
    occluded = occlusion_mask(image, local, person, residual, predicted)
    run.occlusion = Window(occluded.fit.astype(np.float32), face.x0, face.y0, face.step)
    return occluded, person


def _refine_occlusion(run: Reconstruction, points: np.ndarray, person: np.ndarray) -> Occlusion:
    """The occlusion mask again, now with stage 1's residual and shading: what the fitted model explains is skin,
    and so is a shadow it casts."""
    crop, target, _, _ = crop_targets(run, points, run.config.render_size)
    with torch.no_grad():
        out = render(run.scene(crop, target, run.statistical_maps()),
                     RenderOptions(spp=run.config.spp, light_samples=run.config.shadow_samples, edge_sampling=False),
                     run.generator)
    face = run.face
    assert face is not None
    image, window = out.image.cpu().numpy(), in_window(crop, face)
    residual = residual_map(image, target.cpu().numpy(), window, *person.shape)
    predicted = log_luminance_map(image, out.alpha.cpu().numpy(), window, *person.shape)
    return _occlusion(run, points, person, residual, predicted)[0]


def reconstruct(photo_path: str, config: ReconstructConfig, progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> Result:
    """Reconstruct one photo; raises FaceStageError (incl. Cancelled) on user-facing problems. Writes nothing."""
    with deterministic(pick(config.device)):
        return _reconstruct(photo_path, config, progress, cancel)


def _reconstruct(photo_path: str, config: ReconstructConfig, progress: ProgressCallback | None,
                 cancel: threading.Event | None) -> Result:
    start = time.perf_counter()
    photo = load_photo(photo_path)
    decoded = time.perf_counter() - start
    detected = detect(photo.data, str(photo_path), config.face_index)
    config = texture_size_for(config, detected.size_px)
    # Stage 2 fits its maps at fit_texture_size (its renders cannot resolve finer); the output maps are resized
    # to texture_size and take the photo's own detail there.
    run = Reconstruction(photo, replace(config, texture_size=min(config.texture_size, config.fit_texture_size)),
                         progress, cancel)
    run.face = face_window(photo, detected.points, config.render_size)
    run.warnings += detected.warnings
    run.timings["decode"] = decoded
    run.timings["load"] = time.perf_counter() - start
    mark = time.perf_counter()
    options = FitOptions.from_config(config)
    if photo.exif_focal_35mm is not None:
        options = options.with_known_focal(photo.exif_focal_35mm)
    fit0 = fit_landmarks(detected.points, photo.width, photo.height, run.model, config, progress, cancel, options=options)
    run.init_geometry(fit0)
    if options.focal_known:  # a focal length the photo states is kept, not re-fitted photometrically
        run.log_focal.requires_grad_(False)
    run.timings["landmarks"] = time.perf_counter() - mark
    points = detected.points
    mark = time.perf_counter()
    occluded, person = _occlusion(run, points)
    run.timings["occlusion"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if config.stages != "landmarks":
        stage_lighting(run, points)
    else:
        crop, target, mask, _ = crop_targets(run, points, 64)
        run.init_appearance(target.cpu().numpy(), mask.cpu().numpy())
    run.timings["lighting"] = time.perf_counter() - mark
    if config.stages != "landmarks":
        mark = time.perf_counter()
        occluded = _refine_occlusion(run, points, person)
        run.timings["occlusion"] += time.perf_counter() - mark
    mark = time.perf_counter()
    # The lids move before the maps are painted, so stage 2 paints lid and lash colours where the lids end up
    # (on headwrap_woman_yaw the refit opens one eye by eyeWide 0.33, about 1.2 mm of lid).
    fit_eyelids(run, points)
    open_lids(run, points)
    close_lips(run, points)  # likewise the lips, so stage 2 paints lip colour where they meet ...
    open_lips(run, points)  # ... or part
    shape_opening(run, points)
    run.timings["eyes_mouth"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with torch.no_grad():
        maps = run.statistical_maps()
    if config.stages == "full":
        maps = stage_maps(run, points)[:3]
    run.timings["maps"] = time.perf_counter() - mark
    mark = time.perf_counter()
    eyes = fit_eyes(run, points, maps, texture=config.stages == "full")
    mouth = fit_mouth(run, points, maps, eyes.gaze.gaze, eyes.texture, texture=config.stages == "full")
    run.timings["eyes_mouth"] += time.perf_counter() - mark
    mark = time.perf_counter()
    result = _assemble(run, fit0, points, maps, occluded, config.texture_size, eyes, mouth)
    if np.isfinite(fit0.focal_log_std) and not options.focal_known:  # 1 σ of the estimated focal length
        result.focal_uncertainty_pct = 100.0 * fit0.focal_log_std
    run.timings["output"] = time.perf_counter() - mark
    run.timings["total"] = time.perf_counter() - start
    return result
