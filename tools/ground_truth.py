"""Synthetic ground truth: random heads, cameras, lights and skin maps whose true values are known.

A single-photo reconstruction can only be measured against a photo whose
answer is known. This module draws that answer (identity from the model's
prior, a mild expression, head pose, focal length, 1–3 area lights, skin
albedo / specular / roughness maps in the head model's UV layout) from a
seed, deterministically, and stores or reloads one scene as plain files.
Rendering it needs Blender, so that part lives in tools/synthetic.py; this
module stays bpy-free so tests and benchmarks can read the ground truth. It
is not part of the shipped add-on: tests, bench/ and tools/ import it.

Frames follow core/model/camera.py: the head model's origin is the world
origin, the camera keeps the canonical frontal orientation (looking along +Y,
Z up) and is placed where the random image offset and distance put it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facestage.core.apps.parts import mouth_shape
from facestage.core.fit.embedding import LandmarkEmbedding
from facestage.core.fit.solver import FitResult
from facestage.core.io.image import linear_to_srgb, load_png, save_png, srgb_to_linear
from facestage.core.model import camera
from facestage.core.model.camera import rotation_from_yaw_pitch_roll, yaw_pitch_roll
from facestage.core.model.head import HeadModel
from facestage.core.model.skin import skin_albedo
from facestage.core.model.uvmaps import dilate_into_gutter, rasterize_uv, vertex_to_texture

FORMAT = "facestage-synthetic/1"
HEAD_HEIGHT_M = 0.24  # chin to crown, roughly, for framing

# Expression units that stay "mild" and keep the face recognisable for the landmark detector.
MILD_EXPRESSIONS = ("mouthSmileLeft", "mouthSmileRight", "jawOpen", "browInnerUp", "browDownLeft", "browDownRight",
                    "mouthFunnel", "mouthPucker", "cheekPuff", "mouthFrownLeft", "mouthFrownRight", "mouthPressLeft",
                    "mouthPressRight", "noseSneerLeft", "noseSneerRight", "mouthLeft", "mouthRight", "mouthRollLower",
                    "mouthShrugUpper", "eyeSquintLeft", "eyeSquintRight", "browOuterUpLeft", "browOuterUpRight")


@dataclass
class Light:
    """One Blender area light, pointing at the head centre."""

    position: list[float]
    size: float  # disk diameter, metres
    power_w: float
    color: list[float]

    @property
    def normal(self) -> list[float]:
        p = np.asarray(self.position, dtype=np.float64)
        return list(-p / np.linalg.norm(p))


@dataclass
class Scene:
    """Everything that determines one synthetic image (plain data, JSON round-trippable)."""

    seed: int
    width: int
    height: int
    identity: list[float]
    expression: list[float]
    expression_names: list[str]
    rotation: list[list[float]]  # head pose, world = R @ model + t
    translation: list[float]
    focal_mm: float
    K: list[list[float]]
    world_from_camera: list[list[float]]
    lights: list[Light]
    ambient: list[float]  # world background radiance (linear RGB)
    melanin: float
    haemoglobin: float
    samples: int = 16
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def yaw_pitch_roll_deg(self) -> tuple[float, float, float]:
        return yaw_pitch_roll(np.asarray(self.rotation))

    @property
    def focal_px(self) -> float:
        return float(self.K[0][0])

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["yaw_pitch_roll_deg"] = list(self.yaw_pitch_roll_deg)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Scene:
        doc = {k: v for k, v in doc.items() if k != "yaw_pitch_roll_deg"}
        doc["lights"] = [Light(**light) for light in doc["lights"]]
        return cls(**doc)


def camera_for(focal_mm: float, width: int, height: int, distance: float,
               offset_px: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(K, world_from_camera): canonical frontal camera at `distance` from the head centre, which lands offset_px from the image centre."""
    focal = camera.focal_from_35mm(focal_mm, width, height)
    camera_from_model = np.eye(4)
    camera_from_model[:3, 3] = distance * np.array([offset_px[0] / focal, offset_px[1] / focal, 1.0])
    return camera.intrinsics(focal, width, height), camera.world_pose(camera_from_model)[2]


def random_lights(rng: np.random.Generator, azimuth_deg: float = 70.0, elevation_deg: tuple[float, float] = (-10.0, 50.0),
                  size_m: tuple[float, float] = (0.3, 1.0)) -> list[Light]:
    """One to three square area lights 1–2 m from the head, within ±azimuth_deg of the front: a key, then fills
    (power scaled by d² so the irradiance ≈ P / (π d²) does not depend on the distance), each tinted ±12 %.
    The draws come in a fixed order, so a seed gives the same lights wherever this is called from."""
    lights = []
    for j in range(int(rng.integers(1, 4))):
        azimuth = math.radians(rng.uniform(-azimuth_deg, azimuth_deg))  # 0 = in front of the face (−Y)
        elevation = math.radians(rng.uniform(*elevation_deg))
        d = rng.uniform(1.0, 2.0)
        direction = np.array([math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation),
                              math.sin(elevation)])
        power = (rng.uniform(6, 10) if j == 0 else rng.uniform(1.5, 4)) * d * d
        tint = np.clip(1.0 + rng.uniform(-0.12, 0.12, size=3), 0, None)
        lights.append(Light(position=list(d * direction), size=float(rng.uniform(*size_m)), power_w=float(power),
                            color=list(tint / tint.max())))
    return lights


def sample_scene(model: HeadModel, seed: int, width: int = 512, height: int = 512, samples: int = 16,
                 identity_limit: float = 1.5, yaw_limit: float = 30.0, tilt_limit: float = 10.0,
                 focal_range: tuple[float, float] = (35.0, 85.0)) -> Scene:
    """Draw one scene from the seed (numpy PCG64: the same seed gives the same scene on every machine)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n_id = int(model.identity_basis.shape[0])
    names = [str(n) for n in model.expression_names]
    identity = np.clip(rng.standard_normal(n_id), -identity_limit, identity_limit)
    expression = np.zeros(len(names))
    mild = [names.index(n) for n in MILD_EXPRESSIONS if n in names]
    for index in rng.choice(mild, size=min(3, len(mild)), replace=False):
        expression[index] = rng.uniform(0.0, 0.35)
    yaw = rng.uniform(-yaw_limit, yaw_limit)
    pitch, roll = rng.uniform(-tilt_limit, tilt_limit, size=2)
    rotation = rotation_from_yaw_pitch_roll(yaw, pitch, roll)
    focal_mm = float(rng.uniform(*focal_range))
    fraction = rng.uniform(0.45, 0.65)  # head height over image height
    distance = camera.focal_from_35mm(focal_mm, width, height) * HEAD_HEIGHT_M / (fraction * height)
    offset = tuple(float(v) for v in rng.uniform(-0.06, 0.06, size=2) * np.array([width, height]))
    K, world_from_camera = camera_for(focal_mm, width, height, distance, offset)  # type: ignore[arg-type]
    lights = random_lights(rng)
    ambient = list(np.full(3, rng.uniform(0.03, 0.08)) * (1.0 + rng.uniform(-0.1, 0.1, size=3)))
    return Scene(seed=seed, width=width, height=height, identity=list(identity), expression=list(expression),
                 expression_names=names, rotation=rotation.tolist(), translation=[0.0, 0.0, 0.0], focal_mm=focal_mm,
                 K=K.tolist(), world_from_camera=world_from_camera.tolist(), lights=lights, ambient=ambient,
                 melanin=float(rng.uniform(0.05, 0.9)), haemoglobin=float(rng.uniform(0.2, 0.8)), samples=samples)


def _region(model: HeadModel, *names: str) -> np.ndarray:
    """Per-vertex weight (V,) of the union of the named regions (missing names contribute nothing)."""
    region_names = [str(n) for n in model.region_names]
    weights = _np(model.region_weights)
    out = np.zeros(weights.shape[1])
    for name in names:
        if name in region_names:
            out = np.maximum(out, weights[region_names.index(name)])
    return out


def _lips(model: HeadModel) -> np.ndarray:
    """(V,) lip (vermilion) weight: where the ARKit lip-roll units move the skin most."""
    names = [str(n) for n in model.expression_names]
    out = np.zeros(int(model.vertices.shape[0]))
    for name in ("mouthRollUpper", "mouthRollLower"):
        if name in names:
            d = np.linalg.norm(_np(model.expression_basis[names.index(name)]), axis=1)
            out = np.maximum(out, np.clip(1.6 * d / max(d.max(), 1e-12), 0, 1))
    return out


def _brows(model: HeadModel) -> np.ndarray:
    """(V,) eyebrow weight: an arch above each eye on the mean shape's front, thinning towards the temple."""
    v = _mean_vertices(model)
    ax = np.abs(v[:, 0])
    u = np.clip((ax - 0.012) / 0.046, 0, 1)
    centre = 0.021 + 0.006 * np.sin(np.pi * 0.8 * u)
    half = 0.0055 * (1 - 0.5 * u)
    across = np.clip(1 - ((v[:, 2] - centre) / half) ** 2, 0, 1)
    along = np.clip((ax - 0.008) / 0.006, 0, 1) * np.clip((0.060 - ax) / 0.006, 0, 1)
    front = np.clip((-v[:, 1] - 0.045) / 0.01, 0, 1)
    return across * along * front


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise in [−1, 1] (size, size): smooth blotches `size/cells` texels wide."""
    from PIL import Image

    grid = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC), np.float64)


def skin_maps(model: HeadModel, scene: Scene, size: int = 512) -> dict[str, np.ndarray]:
    """Ground-truth maps in the model's UV layout: diffuse (S, S, 3) linear, specular (S, S), roughness (S, S).

    Diffuse follows the biophysical skin model of core/model/skin.py (melanin, haemoglobin) with redder lips and
    cheeks, darker brows and smooth mottling, so it is plausible skin and the face has the features a landmark
    detector looks for.
    """
    rng = np.random.Generator(np.random.PCG64(scene.seed + 7919))
    lips = _lips(model)
    brows = _brows(model)
    cheeks = _region(model, "cheeks")
    nose = _region(model, "nose")
    forehead = _region(model, "forehead")
    melanin = scene.melanin + 1.4 * brows
    haemoglobin = scene.haemoglobin + 0.9 * lips + 0.25 * cheeks + 0.1 * nose
    specular = 0.35 + 0.25 * np.maximum(nose, forehead) - 0.15 * lips
    roughness = 0.55 - 0.12 * np.maximum(nose, forehead) - 0.1 * lips
    per_vertex = np.stack([melanin, haemoglobin, specular, roughness], 1)
    faces = torch.as_tensor(_np(model.faces, np.int64))
    raster = rasterize_uv(_np(model.uvs), _np(model.face_uvs, np.int64), size)
    textures = vertex_to_texture(torch.as_tensor(per_vertex), faces, raster).numpy()
    textures = dilate_into_gutter(textures, raster.inside)
    mottling = _smooth_noise(rng, size, 24)
    fine = _smooth_noise(rng, size, 96)
    mel = np.clip(textures[..., 0] * (1 + 0.08 * mottling), 0, 1.5)
    hem = np.clip(textures[..., 1] + 0.08 * fine + 0.05 * mottling, 0, 1.8)
    diffuse = skin_albedo(torch.as_tensor(mel), torch.as_tensor(hem)).numpy()
    return {"diffuse": np.clip(diffuse, 0, 1).astype(np.float32),
            "specular": np.clip(textures[..., 2] + 0.03 * fine, 0, 1).astype(np.float32),
            "roughness": np.clip(textures[..., 3] + 0.04 * mottling, 0.05, 1).astype(np.float32)}


def _np(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A head-model array (torch tensor or numpy) as numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def eye_vertices(model: HeadModel, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Eyeball vertices (E, 3) for a shape, model space (they follow the coefficients through the eye bases)."""
    with torch.no_grad():
        return model.eye_evaluate(torch.as_tensor(identity), torch.as_tensor(expression)).double().numpy()


def mouth_vertices(model: HeadModel, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Teeth, cavity and tongue vertices (M, 3) for a shape, model space (rigged by the expression like the lips)."""
    with torch.no_grad():
        return mouth_shape(model, torch.as_tensor(identity), torch.as_tensor(expression)).double().numpy()


def _mean_vertices(model: HeadModel) -> np.ndarray:
    return _np(model.vertices)


def head_vertices(model: HeadModel, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Model-space head vertices (V, 3) for the coefficients, in float64."""
    with torch.no_grad():
        return model.evaluate(torch.as_tensor(identity), torch.as_tensor(expression)).double().numpy()


def project_points(points_world: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, 2) of world points seen by a Blender-convention camera (core.model.camera.project)."""
    return camera.project(np.asarray(points_world, np.float64), np.asarray(K, np.float64),
                          np.asarray(world_from_camera, np.float64))[0].numpy()


def pose_points(points: np.ndarray, scene: Scene) -> np.ndarray:
    """World positions of model-space points under the scene's head pose."""
    return points @ np.asarray(scene.rotation).T + np.asarray(scene.translation)


def save_scene(folder: str | os.PathLike[str], scene: Scene, model: HeadModel, maps: dict[str, np.ndarray]) -> Path:
    """Write params.json, the maps (diffuse sRGB 8-bit, specular/roughness 16-bit) and vertices.npz."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(scene.to_json(), indent=1), encoding="utf-8")
    save_png(folder / "diffuse.png", linear_to_srgb(maps["diffuse"]))
    save_png(folder / "specular.png", maps["specular"], bits=16)
    save_png(folder / "roughness.png", maps["roughness"], bits=16)
    identity, expression = np.asarray(scene.identity), np.asarray(scene.expression)
    eyes = eye_vertices(model, identity, expression)
    np.savez_compressed(folder / "vertices.npz",
                        vertices=pose_points(head_vertices(model, identity, expression), scene).astype(np.float32),
                        eye_vertices=pose_points(eyes, scene).astype(np.float32))
    return folder


@dataclass
class LoadedScene:
    """One rendered scene read back: the image (sRGB float), its parameters and the ground-truth geometry and maps."""

    folder: Path
    scene: Scene
    image_srgb: np.ndarray
    vertices: np.ndarray
    eye_vertices: np.ndarray
    diffuse: np.ndarray
    specular: np.ndarray
    roughness: np.ndarray


def load_scene(folder: str | os.PathLike[str]) -> LoadedScene:
    folder = Path(folder)
    scene = Scene.from_json(json.loads((folder / "params.json").read_text(encoding="utf-8")))
    with np.load(folder / "vertices.npz") as data:
        vertices, eyes = data["vertices"], data["eye_vertices"]
    return LoadedScene(folder=folder, scene=scene, image_srgb=load_png(folder / "image.png")[..., :3], vertices=vertices,
                       eye_vertices=eyes, diffuse=srgb_to_linear(load_png(folder / "diffuse.png")[..., :3]),
                       specular=load_png(folder / "specular.png"), roughness=load_png(folder / "roughness.png"))


def true_landmarks_px(loaded: LoadedScene, model: HeadModel, embedding: LandmarkEmbedding) -> np.ndarray:
    """(478, 2) pixels of the embedded landmark points on the scene's true head through its true camera: what a
    detector without error would report."""
    faces = _np(model.faces, np.int64)
    points = (loaded.vertices.astype(np.float64)[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
    return project_points(points, np.asarray(loaded.scene.K), np.asarray(loaded.scene.world_from_camera))


def umeyama(source: np.ndarray, target: np.ndarray, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising Σ|s R source + t − target|² (Umeyama 1991)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    cov = xt.T @ xs / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    s = float(np.trace(np.diag(d) @ sign) / xs.var(0).sum()) if scale else 1.0
    return s, rotation, mu_t - s * rotation @ mu_s


def aligned_error(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex distance (same units) after a similarity alignment of estimate onto truth over mask."""
    m = np.ones(len(truth), bool) if mask is None else mask
    s, rotation, t = umeyama(estimate[m], truth[m])
    return np.linalg.norm((s * estimate[m] @ rotation.T + t) - truth[m], axis=1)


FACE_REGIONS = ("nose", "mouth", "lips", "eyes", "eyelids", "brows", "eyebrows", "forehead", "cheeks", "chin", "jaw")


def face_region_mask(model: HeadModel, threshold: float = 0.5) -> np.ndarray:
    """(V,) bool: the face proper (no ears, scalp, neck), where the fit is measured."""
    return _region(model, *FACE_REGIONS) >= threshold


def fit_metrics(result: FitResult, loaded: LoadedScene, model: HeadModel, embedding: LandmarkEmbedding) -> dict[str, float]:
    """Stage-0 accuracy on one synthetic scene (a FitResult against the scene's ground truth).

    landmark_error_pct_iod: median |fitted − detected| over weighted landmarks, % of the inter-ocular distance
    (eye-centre distance of the detected landmarks); gt_landmark_error_pct_iod: the same against the true
    projections of the embedded points; vertex_error_mm: mean face-region vertex error after a similarity
    alignment; focal_error_pct; yaw/pitch/roll errors in degrees (head pose relative to the camera).
    """
    scene = loaded.scene
    weighted = embedding.used()
    iod = result.interocular_px
    truth_px = true_landmarks_px(loaded, model, embedding)
    fixed = weighted & np.isin(np.arange(len(truth_px)), embedding.contour, invert=True)
    gt_error = np.linalg.norm(result.landmarks_px - truth_px, axis=1)
    mask = face_region_mask(model)
    vertex_error = 1000 * aligned_error(np.asarray(result.vertices, np.float64), loaded.vertices.astype(np.float64), mask)
    mean_error = 1000 * aligned_error(_mean_vertices(model), loaded.vertices.astype(np.float64), mask)
    truth_pose = camera.camera_from_world_pose(np.asarray(scene.rotation), np.asarray(scene.translation),
                                        np.asarray(scene.world_from_camera))
    truth_angles = np.array(yaw_pitch_roll(camera.world_pose(truth_pose)[0]))
    fitted_angles = np.array(yaw_pitch_roll(camera.world_pose(result.camera_from_model)[0]))
    angle_error = (fitted_angles - truth_angles + 180) % 360 - 180
    return {
        "landmark_error_pct_iod": float(100 * np.median(result.errors_px[weighted]) / iod),
        "gt_landmark_error_pct_iod": float(100 * np.median(gt_error[fixed]) / iod),
        "vertex_error_mm": float(vertex_error.mean()),
        "mean_head_vertex_error_mm": float(mean_error.mean()),
        "focal_error_pct": float(100 * (result.focal_px / scene.focal_px - 1)),
        "yaw_error_deg": float(angle_error[0]),
        "pitch_error_deg": float(angle_error[1]),
        "roll_error_deg": float(angle_error[2]),
        "seconds": float(result.seconds),
    }


def is_rendered(folder: Path, scene: Scene) -> bool:
    """Whether folder already holds this exact scene's image."""
    try:
        stored = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (folder / "image.png").is_file() and stored == json.loads(json.dumps(scene.to_json()))
