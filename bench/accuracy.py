"""Benchmark: reconstruction accuracy on Cycles-rendered heads with known geometry, skin, lights and camera.

    python bench/accuracy.py [--scenes 12] [--quality default] [--label TEXT]   (or: make accuracy)

Scenes come from tools/ground_truth.py (identity from the model prior, mild expressions, focal 35–85 mm) with
yaw within ±35°, one to four lights (every third scene a small hard key that casts nose and cheek
shadows) and skin whose mean ITA angle walks Fitzpatrick types I–VI evenly. The skin's colour is NOT drawn
from the fit's own chromophore model (that would be an inverse crime: the first runs of this benchmark
did so, and an outside evaluation on other heads found dark skin twice as wrong): the generator's
melanin/haemoglobin pattern (brows, lips, cheeks, mottling) is recoloured in CIELAB around the mean
colour of the scene's ITA group (Del Bino et al. 2006 group means), see `lab_skin`.

Each scene is also rendered under a second light rig, held out from tuning (`heldout_rig`: an area key
from the other side, a point or spot fill, a grey world), written as a rig file in the camera frame.
Each is reconstructed with `python -m facestage reconstruct` (face.blend included) and measured against
its ground truth: geometry, albedo (scale-invariant RMSE, ITA), dominant light direction, and in Blender:
a Cycles render of face.blend (128 spp, denoised) against render.png in the face mask, and face.blend
relit by the held-out rig through the shared camera frame (Apply Light Rig) against the true relit image
over the inner face. Appends a run to bench/results/accuracy.json (earlier runs are kept as the history)
and writes bench/results/accuracy.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT / "tools") not in sys.path:  # tools/synthetic.py (bpy scene builder) and tools/ground_truth.py
    sys.path.insert(0, str(ROOT / "tools"))

import synthetic  # noqa: E402
# Chardon's ITA bands of Fitzpatrick types I..VI; each scene aims at a band's middle.
ITA_TARGETS = (62.0, 48.0, 34.0, 19.0, -10.0, -40.0)
# CIELAB b* and a* of skin along ITA (Del Bino et al. 2006 group means: b* rises from 13 to ~20 at tan/brown
# skin and falls to ~14 for dark skin; a* ≈ 9–11); L* follows from the ITA: L* = 50 + b*·tan(ITA).
LAB_ITA = (62.0, 48.0, 34.0, 19.0, 5.0, -10.0, -25.0, -40.0, -55.0)
LAB_B = (12.5, 15.0, 17.5, 19.0, 19.7, 19.5, 18.0, 16.0, 13.5)
LAB_A = (8.5, 9.5, 10.5, 11.0, 11.0, 11.0, 10.5, 10.0, 9.5)
HARD_KEY_SIZE_M = 0.03
TARGETS = {"vertex_error_mm": 1.5, "vertex_error_vs_mean_head": 0.5, "psnr_masked_db": 32.0, "light_angle_deg": 10.0,
           "shadow_lit_error_ratio": 1.2, "albedo_rmse_scale_invariant": 0.04, "ita_error_deg_per_type": 8.0,
           "ita_spread_deg": 10.0, "relit_psnr_db": 30.0, "blend_vs_core_psnr_db": 35.0}
GROUND_TRUTH_VERSION = "lab-skin-1/heldout-rig-1"  # part of the cache folder's name: bump when the scene recipe changes
BLENDER_SAMPLES = 128  # Cycles samples of the face.blend renders (denoised), as the protocol


def ita_deg(linear_rgb: np.ndarray) -> float:
    """Individual typology angle (core.model.skin.ita_degrees) of one linear sRGB colour."""
    from facestage.core.io.image import linear_to_srgb
    from facestage.core.model.skin import ita_degrees

    return float(ita_degrees(torch.as_tensor(linear_to_srgb(np.clip(np.asarray(linear_rgb, np.float64), 0, 1)))))


def melanin_for_ita(target: float, haemoglobin: float) -> float:
    """Base melanin whose plain skin albedo has the target ITA (the map's mottling, lips and brows shift it a little)."""
    from facestage.core.model.skin import skin_albedo

    grid = np.linspace(0.0, 3.0, 601)
    albedo = skin_albedo(torch.as_tensor(grid), torch.full((len(grid),), haemoglobin, dtype=torch.float64)).numpy()
    itas = np.array([ita_deg(a) for a in albedo])  # falls as melanin grows
    return float(np.interp(-target, -itas, grid))


def make_scene(model: Any, index: int) -> Any:
    """Scene `index` of the set: the synthetic sampler's draw, then the set's light and skin-tone rules."""
    from ground_truth import Light, sample_scene

    seed = 1000 + index
    scene = sample_scene(model, seed, 512, 512, samples=16, yaw_limit=35.0)
    rng = np.random.Generator(np.random.PCG64(seed + 17))
    count = 1 + index % 4
    while len(scene.lights) < count:  # weak fills from random directions in front
        azimuth, elevation = math.radians(rng.uniform(-80, 80)), math.radians(rng.uniform(-10, 40))
        d = rng.uniform(1.0, 2.0)
        direction = [math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation), math.sin(elevation)]
        scene.lights.append(Light(position=[d * c for c in direction], size=float(rng.uniform(0.3, 1.0)),
                                  power_w=float(rng.uniform(1.5, 3.0) * d * d), color=[1.0, 1.0, 1.0]))
    scene.lights = scene.lights[:count]
    if index % 3 == 0:
        scene.lights[0].size = HARD_KEY_SIZE_M
    fitzpatrick = index % 6
    scene.melanin = melanin_for_ita(ITA_TARGETS[fitzpatrick], scene.haemoglobin)
    scene.extra = {"fitzpatrick": fitzpatrick + 1, "hard_key": index % 3 == 0}
    return scene


def _lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) → linear sRGB."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def inverse(t: np.ndarray) -> np.ndarray:
        return np.where(t > 6 / 29, t ** 3, 3 * (6 / 29) ** 2 * (t - 4 / 29))

    xyz = np.stack([inverse(fx) * 0.95047, inverse(fy), inverse(fz) * 1.08883], -1)
    matrix = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    return xyz @ matrix.T


def lab_skin(diffuse: np.ndarray, scene: Any, ita: float) -> np.ndarray:
    """The generator's skin recoloured in CIELAB around the mean skin colour of an ITA group (linear sRGB).

    The generator's map lies on the fit's chromophore model; its melanin/haemoglobin departures from the
    scene's base values (brows, lips, cheeks, mottling) are kept as L*/b* and a* offsets, so the map keeps its
    features while its colours come from measured skin, not from the model the fit inverts.
    """
    from facestage.core.model.skin import chromophores

    melanin, haemoglobin, _ = chromophores(torch.as_tensor(np.clip(diffuse, 1e-4, 1), dtype=torch.float64))
    dm = melanin.numpy() - scene.melanin
    dh = haemoglobin.numpy() - scene.haemoglobin
    b0, a0 = np.interp(-ita, [-t for t in LAB_ITA], LAB_B), np.interp(-ita, [-t for t in LAB_ITA], LAB_A)
    L0 = 50 + b0 * math.tan(math.radians(ita))
    lab = np.stack([L0 - 14.0 * dm - 4.0 * dh, a0 + 12.0 * dh + 1.5 * dm, b0 + 3.0 * dm], -1)
    lab[..., 0] = np.clip(lab[..., 0], 8, 95)
    return np.clip(_lab_to_linear(lab), 0.002, 1).astype(np.float32)


def heldout_rig(scene: Any, index: int) -> dict[str, Any]:
    """The held-out relight rig of scene `index` (camera frame, explicit directions): an area key from the side
    the photo's key is not on, a point or (odd scenes) spot fill, a grey world. Never used for tuning."""
    rng = np.random.Generator(np.random.PCG64(5000 + index))
    world_from_camera = np.asarray(scene.world_from_camera, np.float64)
    camera_from_world = np.linalg.inv(world_from_camera)
    key_x = scene.lights[0].position[0]
    side = -1.0 if key_x > 0 else 1.0

    def light(azimuth: float, elevation: float, distance: float) -> tuple[list[float], list[float]]:
        a, e = math.radians(azimuth), math.radians(elevation)
        world = distance * np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])
        position = camera_from_world[:3, :3] @ world + camera_from_world[:3, 3]
        direction = camera_from_world[:3, :3] @ (-world / distance)
        return position.tolist(), direction.tolist()

    d_key, d_fill = rng.uniform(1.0, 1.8), rng.uniform(1.0, 1.6)
    key_position, key_direction = light(side * rng.uniform(25, 70), rng.uniform(0, 40), d_key)
    fill_position, fill_direction = light(-side * rng.uniform(20, 80), rng.uniform(-10, 30), d_fill)
    tint = np.clip(1.0 + rng.uniform(-0.1, 0.1, size=3), 0, None)
    key = {"name": "Key", "type": "area", "shape": str(rng.choice(["DISK", "RECTANGLE"])), "size": float(rng.uniform(0.2, 0.6)),
           "size_y": float(rng.uniform(0.2, 0.6)), "position": key_position, "direction": key_direction,
           "color": (tint / tint.max()).tolist(), "power_w": float(rng.uniform(6, 10) * d_key ** 2)}
    fill: dict[str, Any] = {"name": "Fill", "type": "spot" if index % 2 else "point", "position": fill_position,
                            "direction": fill_direction, "color": [1.0, 1.0, 1.0], "radius": float(rng.uniform(0.0, 0.1)),
                            "power_w": float(4 * rng.uniform(1.5, 3.5) * d_fill ** 2)}
    if fill["type"] == "spot":
        fill.update(spot_size_deg=float(rng.uniform(40, 70)), spot_blend=float(rng.uniform(0.1, 0.4)))
    grey = float(rng.uniform(0.02, 0.06))
    return {"name": f"heldout_{index:03d}", "frame": "camera", "lights": [key, fill],
            "world": {"type": "uniform", "color": [grey, grey, grey], "strength": 1.0}}


RELIT_SCRIPT = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bpy, numpy as np
import synthetic
from ground_truth import load_scene
from facestage.core.apps.rig import Frames, place
from facestage.core.io.rig import parse_rig
from facestage.core.model.head import load_head_model
from facestage.scene.relight import add_rig_lights, rig_world
folder = Path(sys.argv[2])
loaded = load_scene(folder)
synthetic.build(loaded.scene, load_head_model(), folder)
scene = bpy.context.scene
for obj in [o for o in scene.objects if o.type == "LIGHT"]:
    bpy.data.objects.remove(obj)
rig = parse_rig(json.loads((folder / "rig.json").read_text()), folder)
frames = Frames(np.asarray(loaded.scene.world_from_camera), np.eye(3), np.zeros(3), np.zeros(3))
placed = place(rig, frames)
add_rig_lights(placed, scene.collection)
scene.world = rig_world(placed)
synthetic.render(folder / "relit.png")
"""


def render_scenes(count: int, folder: Path) -> list[Path]:
    """Render the scenes not yet in the cache (bpy Cycles, in this process): image.png under the scene's own
    lights with the Lab-coloured skin, and relit.png under the held-out rig (rig.json, camera frame)."""
    from facestage.core.model.head import load_head_model
    from ground_truth import save_scene, skin_maps

    model = load_head_model()
    folders = []
    for index in range(count):
        scene, target = make_scene(model, index), folder / f"scene_{index:03d}"
        if not (synthetic.is_rendered(target, scene) and (target / "relit.png").is_file()):
            maps = skin_maps(model, scene, size=512)
            maps["diffuse"] = lab_skin(maps["diffuse"], scene, ITA_TARGETS[scene.extra["fitzpatrick"] - 1])
            save_scene(target, scene, model, maps)
            (target / "rig.json").write_text(json.dumps(heldout_rig(scene, index), indent=1))
            synthetic.build(scene, model, target)
            synthetic.render(target / "image.png")
            _run_bpy(RELIT_SCRIPT, str(ROOT / "tools"), str(target))
        folders.append(target)
    return folders


def _run_bpy(script: str, *args: str) -> str:
    """A bpy script in a fresh process with a throw-away Blender config; its stdout."""
    with synthetic.throwaway_blender_env() as env:
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bpy script failed: {done.stderr.strip().splitlines()[-3:]}")
    return done.stdout


def _texels(loaded: Any, model: Any, size: int) -> dict[str, np.ndarray]:
    """Face-region texels seen by the camera, and which of them lie in a cast shadow of the key light."""
    from facestage.core.render.raytrace import Bvh
    from ground_truth import face_region_mask
    from facestage.core.model.uvmaps import rasterize_uv

    faces = np.asarray(model.faces, np.int64)
    raster = rasterize_uv(np.asarray(model.uvs), np.asarray(model.face_uvs, np.int64), size)
    region = face_region_mask(model)[faces].all(1)
    ys, xs = np.nonzero(raster.inside & region[np.maximum(raster.face, 0)])
    face = raster.face[ys, xs]
    corners = loaded.vertices.astype(np.float64)[faces[face]]
    points = (corners * raster.bary[ys, xs][..., None]).sum(1)
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    bvh = Bvh(torch.as_tensor(loaded.vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int32))

    def blocked(targets: np.ndarray) -> np.ndarray:
        ray = targets - points
        dist = np.linalg.norm(ray, axis=1)
        ray /= dist[:, None]
        origins = torch.as_tensor(points + 2e-4 * ray, dtype=torch.float32)
        return bvh.occluded(origins, torch.as_tensor(ray, dtype=torch.float32),
                            torch.as_tensor(dist - 4e-4, dtype=torch.float32)).numpy().astype(bool)

    eye = np.asarray(loaded.scene.world_from_camera)[:3, 3]
    to_eye = eye - points
    normal *= np.sign((normal * to_eye).sum(1, keepdims=True))  # the seen side
    seen = ~blocked(np.broadcast_to(eye, points.shape).copy())
    key = max(loaded.scene.lights, key=lambda light: light.power_w / float(np.dot(light.position, light.position)))
    to_key = np.asarray(key.position) - points
    shadow = ((normal * to_key).sum(1) > 0) & blocked(np.broadcast_to(np.asarray(key.position), points.shape).copy())
    return {"ys": ys[seen], "xs": xs[seen], "shadow": shadow[seen]}


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    tensor = torch.as_tensor(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear")[0].permute(1, 2, 0).numpy()


def _dominant_direction_camera(positions: np.ndarray, powers: np.ndarray, centre: np.ndarray,
                               world_from_camera: np.ndarray) -> np.ndarray:
    """Camera-frame direction of the brightest light as seen from the head centre.

    Irradiance-weighted mean direction of the lights within 45° of the one giving the most irradiance:
    the stage's lights sit on fixed icosahedron faces ~40° apart, so a source between two faces is
    represented by both, and the brightest one alone would be off by up to half a face.
    """
    offsets = positions - centre
    distance2 = (offsets ** 2).sum(1)
    irradiance = powers / distance2
    directions = offsets / np.sqrt(distance2)[:, None]
    near = directions @ directions[int(np.argmax(irradiance))] > math.cos(math.radians(45))
    direction = (irradiance[near, None] * directions[near]).sum(0)
    return np.asarray(world_from_camera)[:3, :3].T @ (direction / np.linalg.norm(direction))


BLEND_SCRIPT = r"""
import sys
import bpy
from facestage.scene.relight import apply_rig
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
cycles = scene.cycles
cycles.device, cycles.samples, cycles.seed = "CPU", int(sys.argv[5]), 0
cycles.use_adaptive_sampling, cycles.use_denoising = False, True
settings = scene.render.image_settings
settings.file_format, settings.color_mode, settings.color_depth = "OPEN_EXR", "RGB", "32"
scene.render.filepath = sys.argv[3]
bpy.ops.render.render(write_still=True)
apply_rig(scene, sys.argv[2])
scene.render.filepath = sys.argv[4]
bpy.ops.render.render(write_still=True)
"""


def inner_face_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """DESIGN.md's inner face: the convex hull of the 468 face landmarks at or below the highest brow landmark.

    A private copy until the occlusion helper's core.fit.masks.inner_face_mask is merged (same definition).
    """
    import cv2

    brows = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
    face = np.asarray(points[:468], np.float64)
    top = float(face[brows, 1].min())
    hull = cv2.convexHull(face[face[:, 1] >= top].astype(np.float32))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull[:, 0] * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _read_exr(path: Path) -> np.ndarray:
    import os

    os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"could not read {path}")
    return np.ascontiguousarray(image[..., 2::-1].astype(np.float32))


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return 10 * math.log10(1.0 / max(float(((a - b)[mask] ** 2).mean()), 1e-12))


def measure_blender(folder: Path, out: Path) -> dict[str, Any]:
    """face.blend in Cycles (BLENDER_SAMPLES spp, denoised, the file's own settings): against render.png in the face
    mask, and relit by the held-out rig (camera frame) against the true relit image over the inner face."""
    from facestage.core.fit.landmarks import detect
    from facestage.core.fit.masks import skin_mask
    from facestage.core.io.image import linear_to_srgb, load_png

    with tempfile.TemporaryDirectory(prefix="facestage-blend-") as tmp:
        work = Path(tmp)
        _run_bpy(BLEND_SCRIPT, str(out / "face.blend"), str(folder / "rig.json"), str(work / "fitted.exr"),
                 str(work / "relit.exr"), str(BLENDER_SAMPLES))
        fitted = linear_to_srgb(np.clip(_read_exr(work / "fitted.exr"), 0, None))
        relit = linear_to_srgb(np.clip(_read_exr(work / "relit.exr"), 0, None))
    photo = load_png(folder / "image.png")[..., :3]
    points = detect(photo, str(folder / "image.png")).points
    height, width = photo.shape[:2]
    face = (skin_mask(points, width, height) > 0.5) & (np.atleast_3d(load_png(out / "mask.png"))[..., 0] > 0.99)
    inner = inner_face_mask(points, width, height)
    truth = load_png(folder / "relit.png")[..., :3]
    render = load_png(out / "render.png")[..., :3]
    sheet = np.concatenate([photo, render, fitted, truth, relit, np.clip(4 * np.abs(relit - truth), 0, 1) * inner[..., None]], 1)
    from facestage.core.io.image import save_png

    save_png(out / "relit_sheet.png", sheet)
    return {"blend_vs_core_psnr_db": _psnr(render, fitted, face), "relit_psnr_db": _psnr(truth, relit, inner),
            "relit_brightness_ratio": float(relit[inner].mean() / max(float(truth[inner].mean()), 1e-6))}


def measure(folder: Path, out: Path, seconds: float) -> dict[str, Any]:
    from facestage.core.fit.embedding import load_embedding
    from facestage.core.fit.landmarks import interocular_px
    from facestage.core.io.result import load
    from facestage.core.model.head import load_head_model
    from ground_truth import _mean_vertices, aligned_error, face_region_mask, load_scene, project_points

    model, embedding = load_head_model(), load_embedding()
    loaded, result = load_scene(folder), load(out)
    scene = loaded.scene
    mask = face_region_mask(model)
    truth = loaded.vertices.astype(np.float64)
    faces = np.asarray(model.faces, np.int64)

    def landmarks(vertices: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
        points = (vertices[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
        return project_points(points, K, world_from_camera)

    true_px = landmarks(truth, np.asarray(scene.K), np.asarray(scene.world_from_camera))
    fitted_px = landmarks(np.asarray(result.vertices, np.float64), result.K, result.world_from_camera)
    iod = interocular_px(true_px)
    fixed = (embedding.weights > 0) & np.isin(np.arange(len(true_px)), embedding.contour, invert=True)

    size = loaded.diffuse.shape[0]
    texels = _texels(loaded, model, size)
    ys, xs, shadow = texels["ys"], texels["xs"], texels["shadow"]
    true_albedo, albedo = loaded.diffuse[ys, xs].astype(np.float64), _resized(result.diffuse, size)[ys, xs].astype(np.float64)
    scale = float((true_albedo * albedo).sum() / max((albedo * albedo).sum(), 1e-12))
    channel_scale = (true_albedo * albedo).sum(0) / np.maximum((albedo * albedo).sum(0), 1e-12)
    error = np.abs(scale * albedo - true_albedo).mean(1)
    ratio = float(error[shadow].mean() / error[~shadow].mean()) if shadow.sum() >= 100 else None

    true_dir = _dominant_direction_camera(np.array([light.position for light in scene.lights]),
                                          np.array([light.power_w for light in scene.lights]), np.zeros(3),
                                          np.asarray(scene.world_from_camera))
    lit = [light for light in result.lights if light["power_w"] > 0]
    fitted_dir = _dominant_direction_camera(np.array([light["position"] for light in lit]),
                                            np.array([light["power_w"] for light in lit]),
                                            np.asarray(result.stage["centre"]), result.world_from_camera)
    true_ita, fitted_ita = ita_deg(true_albedo.mean(0)), ita_deg(albedo.mean(0))
    return {
        "scene": folder.name, "fitzpatrick": scene.extra["fitzpatrick"], "hard_key": scene.extra["hard_key"],
        "lights": len(scene.lights), "yaw_deg": round(scene.yaw_pitch_roll_deg[0], 1), "focal_mm": round(scene.focal_mm, 1),
        "vertex_error_mm": 1000 * float(aligned_error(np.asarray(result.vertices, np.float64), truth, mask).mean()),
        "mean_head_error_mm": 1000 * float(aligned_error(_mean_vertices(model), truth, mask).mean()),
        "reprojection_px": float(np.median(np.linalg.norm(fitted_px - true_px, axis=1)[fixed])),
        "reprojection_pct_iod": float(100 * np.median(np.linalg.norm(fitted_px - true_px, axis=1)[fixed]) / iod),
        "psnr_masked_db": float(result.metrics["psnr_masked"]),
        "albedo_rmse_scale_invariant": float(np.sqrt(((scale * albedo - true_albedo) ** 2).mean())),
        "albedo_rmse_per_channel_scale": float(np.sqrt(((channel_scale * albedo - true_albedo) ** 2).mean())),
        "albedo_scale": scale, "shadow_texels": int(shadow.sum()), "shadow_lit_error_ratio": ratio,
        "true_ita_deg": true_ita, "ita_error_deg": fitted_ita - true_ita,
        "light_angle_deg": math.degrees(math.acos(float(np.clip(true_dir @ fitted_dir, -1, 1)))),
        "seconds": seconds,
        **(measure_blender(folder, out) if (out / "face.blend").is_file() else {}),
    }


def summarise(scenes: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float | None:
        values = [s[key] for s in scenes if s.get(key) is not None]
        return float(np.mean(values)) if values else None

    keys = ("vertex_error_mm", "mean_head_error_mm", "reprojection_px", "reprojection_pct_iod", "psnr_masked_db",
            "albedo_rmse_scale_invariant", "albedo_rmse_per_channel_scale", "shadow_lit_error_ratio", "light_angle_deg", "seconds",
            "blend_vs_core_psnr_db", "relit_psnr_db")
    summary: dict[str, Any] = {key: mean(key) for key in keys}
    summary["vertex_error_vs_mean_head"] = summary["vertex_error_mm"] / summary["mean_head_error_mm"]
    per_type = {t: float(np.mean([s["ita_error_deg"] for s in scenes if s["fitzpatrick"] == t]))
                for t in sorted({s["fitzpatrick"] for s in scenes})}
    summary["ita_error_deg_per_type"] = per_type
    worst_ita = max(abs(v) for v in per_type.values())
    summary["ita_spread_deg"] = max(per_type.values()) - min(per_type.values())
    summary["met"] = {
        "vertex_error_mm": summary["vertex_error_mm"] <= TARGETS["vertex_error_mm"],
        "vertex_error_vs_mean_head": summary["vertex_error_vs_mean_head"] <= TARGETS["vertex_error_vs_mean_head"],
        "psnr_masked_db": summary["psnr_masked_db"] >= TARGETS["psnr_masked_db"],
        "light_angle_deg": summary["light_angle_deg"] <= TARGETS["light_angle_deg"],
        "shadow_lit_error_ratio": summary["shadow_lit_error_ratio"] is not None
        and summary["shadow_lit_error_ratio"] <= TARGETS["shadow_lit_error_ratio"],
        "albedo_rmse_scale_invariant": summary["albedo_rmse_scale_invariant"] <= TARGETS["albedo_rmse_scale_invariant"],
        "ita_error_deg_per_type": worst_ita <= TARGETS["ita_error_deg_per_type"],
        "ita_spread_deg": summary["ita_spread_deg"] <= TARGETS["ita_spread_deg"],
        "relit_psnr_db": summary["relit_psnr_db"] is not None and summary["relit_psnr_db"] >= TARGETS["relit_psnr_db"],
        "blend_vs_core_psnr_db": summary["blend_vs_core_psnr_db"] is not None
        and summary["blend_vs_core_psnr_db"] >= TARGETS["blend_vs_core_psnr_db"],
    }
    return summary


COLUMNS = (("scene", "scene", "{}"), ("fitzpatrick", "type", "{}"), ("lights", "lights", "{}"),
           ("hard_key", "hard key", "{}"), ("vertex_error_mm", "vertex mm", "{:.2f}"),
           ("mean_head_error_mm", "mean head mm", "{:.2f}"), ("reprojection_pct_iod", "reproj % IOD", "{:.2f}"),
           ("psnr_masked_db", "PSNR dB", "{:.1f}"), ("albedo_rmse_scale_invariant", "albedo si-RMSE", "{:.3f}"),
           ("shadow_lit_error_ratio", "shadow/lit", "{:.2f}"), ("ita_error_deg", "ITA err °", "{:+.1f}"),
           ("light_angle_deg", "light °", "{:.1f}"), ("blend_vs_core_psnr_db", "Cycles vs core dB", "{:.1f}"),
           ("relit_psnr_db", "relit dB", "{:.1f}"), ("seconds", "time s", "{:.0f}"))


def markdown(run: dict[str, Any]) -> str:
    def cell(value: Any, fmt: str) -> str:
        return "–" if value is None else fmt.format(value)

    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(s.get(key), fmt) for key, _, fmt in COLUMNS) + " |" for s in run["scenes"]]
    summary = run["summary"]
    lines.append("| **mean** | | | | " + " | ".join(cell(summary.get(key), fmt) for key, _, fmt in COLUMNS[4:10])
                 + " | " + ", ".join(f"{t}: {v:+.1f}" for t, v in summary["ita_error_deg_per_type"].items())
                 + " | " + cell(summary["light_angle_deg"], "{:.1f}") + " | " + cell(summary["blend_vs_core_psnr_db"], "{:.1f}")
                 + " | " + cell(summary["relit_psnr_db"], "{:.1f}") + " | " + cell(summary["seconds"], "{:.0f}") + " |")
    met = ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in summary["met"].items())
    return (f"Run `{run['label']}` ({run['date']}, quality {run['quality']}, {len(run['scenes'])} scenes, "
            f"{run['machine']}). Targets: {met}.\n\n" + "\n".join(lines) + "\n")


def default_cache() -> Path:
    """The scene folder for this generator and ground-truth recipe, in the temp folder."""
    version = __import__("hashlib").sha256(GROUND_TRUTH_VERSION.encode()).hexdigest()[:6]
    return Path(tempfile.gettempdir()) / f"facestage-accuracy-{synthetic.generator_digest()}-{version}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--label", default="current")
    parser.add_argument("--cache", type=Path, help="scene folder (default: per generator and head-model version, in the temp folder)")
    parser.add_argument("--measure-only", action="store_true", help="re-measure the reconstructions already in the cache")
    args = parser.parse_args()
    cache = args.cache or default_cache()
    folders = render_scenes(args.scenes, cache)
    history_path = RESULTS / "accuracy.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else {"runs": []}
    if args.measure_only:  # replaces the run with the same label
        history["runs"] = [r for r in history["runs"] if r["label"] != args.label]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run: dict[str, Any] = {"label": args.label, "commit": commit, "date": datetime.date.today().isoformat(),
                           "quality": args.quality, "machine": f"{__import__('platform').machine()}, "
                           f"{__import__('os').cpu_count()} cpus", "targets": TARGETS, "scenes": []}
    for folder in folders:
        out = folder / f"reconstruction_{args.quality}"
        start = time.perf_counter()
        if args.measure_only:
            doc = json.loads((out / "scene.json").read_text())
            run["scenes"].append(measure(folder, out, float(doc["timings"]["total"])))
            continue
        with synthetic.throwaway_blender_env() as env:
            done = subprocess.run([sys.executable, "-m", "facestage", "reconstruct", str(folder / "image.png"), "-o",
                                   str(out), "--quality", args.quality, "--seed", "0", "--force"],
                                  capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{folder.name}: reconstruction failed: {done.stderr.strip().splitlines()[-1:]}")
        seconds = float(json.loads((out / "scene.json").read_text())["timings"]["total"])  # the reconstruction alone
        run["scenes"].append(measure(folder, out, seconds))
        print(json.dumps(run["scenes"][-1]), flush=True)
        save(history, run)
    save(history, run)
    print(markdown(run))


def save(history: dict[str, Any], run: dict[str, Any]) -> None:
    """Write after every scene, so an interrupted run still leaves its numbers."""
    run["summary"] = summarise(run["scenes"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "accuracy.json").write_text(json.dumps({"runs": [*history["runs"], run]}, indent=1) + "\n")
    (RESULTS / "accuracy.md").write_text(markdown(run))


if __name__ == "__main__":
    main()
