"""Applications on a finished reconstruction: caricature and relighting presets.

Both work on the recovered parameters, not on pixels: a caricature scales the
identity's deviation from the mean head (so expression, pose and textures are
untouched), and a relight preset is just another setting of the same
20-light stage (so the Blender lights and the core render agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import FaceStageError


def parse_region_factors(text: str, known: list[str]) -> dict[str, float]:
    """'nose=2.5,jaw=1.5' → {'nose': 2.5, 'jaw': 1.5}, refusing unknown regions."""
    factors: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise FaceStageError(f"Region {name!r} is not one of: {', '.join(known)} (write e.g. nose=2.5,jaw=1.5).")
        try:
            factors[name] = float(value)
        except ValueError:
            raise FaceStageError(f"Region factor {item!r} is not a number.") from None
    return factors


def caricature_scale(region_weights: dict[str, np.ndarray], factor: float, regions: dict[str, float]) -> np.ndarray:
    """Per-vertex exaggeration factor s (V,).

    Without regions every vertex gets ``factor``. With regions, s = 1 + Σ_r w_r (f_r − 1),
    the weights renormalised where regions overlap, so vertices outside every
    selected region (w = 0) keep s = 1 exactly and borders blend smoothly.
    """
    n_vertices = len(next(iter(region_weights.values())))
    if not regions:
        return np.full(n_vertices, float(factor), np.float64)
    weights = np.stack([region_weights[name] for name in regions]).astype(np.float64)
    total = weights.sum(0)
    weights = weights / np.maximum(total, 1.0)
    return 1.0 + (weights * (np.array(list(regions.values()))[:, None] - 1.0)).sum(0)


def caricature_vertices(mean: torch.Tensor, identity_offset: torch.Tensor, expression_offset: torch.Tensor,
                        scale: torch.Tensor) -> torch.Tensor:
    """Model-space vertices with the identity deviation scaled per vertex: factor 1 = identity, 0 = mean head."""
    return mean + scale[:, None] * identity_offset + expression_offset


MAX_UNFOLD_PASSES = 12


def _folded_faces(before: np.ndarray, after: np.ndarray, faces: np.ndarray) -> np.ndarray:
    def normals(v: np.ndarray) -> np.ndarray:
        return np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])

    return (normals(before) * normals(after)).sum(1) <= 0


def flipped_triangles(before: np.ndarray, after: np.ndarray, faces: np.ndarray) -> int:
    """Number of triangles whose normal turned by more than 90° (a fold or self-intersection)."""
    return int(_folded_faces(before, after, faces).sum())


@dataclass(frozen=True)
class PresetLight:
    """One preset light: azimuth (0 = camera side, +90 = subject's left, +X) and elevation in degrees."""

    azimuth: float
    elevation: float
    intensity: float
    area: float = 0.3
    distance: float = 1.5


# Azimuth 0 = in front of the face (−Y), +90 = the subject's left (+X), 180 = behind.
PRESETS: dict[str, tuple[tuple[PresetLight, ...], float]] = {
    "three-point": ((PresetLight(-45, 30, 1.0), PresetLight(40, 10, 0.35, area=0.8), PresetLight(160, 35, 0.6, area=0.2)), 0.05),
    "rembrandt": ((PresetLight(-50, 45, 1.2, area=0.2),), 0.04),
    "butterfly": ((PresetLight(0, 50, 1.1, area=0.3),), 0.06),
    "split": ((PresetLight(-90, 5, 1.2, area=0.2),), 0.03),
    "rim": ((PresetLight(140, 25, 1.0, area=0.2), PresetLight(-140, 25, 1.0, area=0.2)), 0.08),
    "soft-box": ((PresetLight(-30, 20, 1.0, area=1.0, distance=0.8),), 0.1),
}


def preset_direction(light: PresetLight) -> np.ndarray:
    """Unit vector from the head centre towards the light (world, Z up, head faces −Y)."""
    az, el = math.radians(light.azimuth), math.radians(light.elevation)
    return np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])


def preset_names() -> list[str]:
    return [*PRESETS, "env-rotate"]


# ----------------------------------------------------------------------------- re-rendering a result
FINAL_SPP = 4
FINAL_LIGHT_SAMPLES = 4


def render_result(result, stage: dict | None = None, sh: np.ndarray | None = None,  # type: ignore[no-untyped-def, type-arg]
                  vertices: np.ndarray | None = None, passes: bool = False, device: str = "cpu"):
    """Re-render a Result (optionally with another light stage, SH or mesh) at photo resolution.

    Renders the stored face crop with a generator seeded by the result's seed, so
    re-rendering an unchanged result reproduces render.png; returns the linear
    image composited over the photo, the coverage alpha, and the crop's RenderOutput.
    """
    from . import lightstage
    from .image import srgb_to_linear
    from .pipeline import Crop, paste
    from .render import RenderOptions, RenderScene, render

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
        sh=t(result.sh if sh is None else sh), stage=lightstage.from_dict(values, device=dev), background=t(crop.cut(linear)))
    generator = torch.Generator(device=dev).manual_seed(int(result.seed))
    with torch.no_grad():
        out = render(scene, RenderOptions(spp=FINAL_SPP, light_samples=FINAL_LIGHT_SAMPLES, edge_sampling=False,
                                          return_passes=passes), generator)
    h, w = result.height, result.width
    image = paste(crop, out.image.cpu().numpy(), h, w, linear)
    alpha = paste(crop, out.alpha.cpu().numpy(), h, w, np.zeros((h, w), np.float32))
    return image, alpha, out


# ----------------------------------------------------------------------------- relighting
Y00 = 0.28209479177387814


def _stage_tensor(stage: dict):  # type: ignore[no-untyped-def, type-arg]
    from . import lightstage

    return lightstage.from_dict(stage, dtype=torch.float64)


def _place(j: int, direction: np.ndarray) -> np.ndarray:
    """Barycentric p on face j where the ray from the centre along direction meets the face plane (clamped to the face)."""
    from . import lightstage

    verts, faces = lightstage.icosahedron(torch.float64)
    tri = verts[faces[j]].numpy()
    normal = tri.mean(0) / np.linalg.norm(tri.mean(0))
    hit = direction / max(float(direction @ normal), 1e-6)  # on the unit-inradius plane
    bary = np.linalg.lstsq(np.vstack([tri.T, np.ones(3)]), np.r_[hit, 1.0], rcond=None)[0]
    bary = np.clip(bary, 0.0, None)
    return bary / bary.sum()


def preset_lighting(stage: dict, sh: np.ndarray, name: str) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    """A named preset on the same 20-light stage, exposure-matched to the reconstruction's total light."""
    from . import lightstage

    if name not in PRESETS:
        raise FaceStageError(f"Unknown lighting preset {name!r}; choose one of {', '.join(preset_names())}.")
    lights, ambient = PRESETS[name]
    total = float(np.asarray(stage["i"]).mean(1).sum() + math.pi * Y00 * np.asarray(sh)[:, 0].mean())
    outward = -lightstage.normals(_stage_tensor(stage)).numpy()
    new = {k: np.array(v, dtype=np.float64, copy=True) for k, v in stage.items()}
    new["i"][:] = 0.0
    weight = sum(l.intensity for l in lights)
    for light in lights:
        direction = preset_direction(light)
        j = int(np.argmax(outward @ direction))
        new["d"][j], new["a"][j] = light.distance, max(light.area, lightstage.A_MIN)
        new["p"][j] = _place(j, direction)
        new["i"][j] = (1.0 - ambient) * total * light.intensity / weight
    new_sh = np.zeros_like(np.asarray(sh, np.float64))
    new_sh[:, 0] = ambient * total / (math.pi * Y00)
    return new, new_sh


def rotate_environment(sh: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """SH turned by yaw (about Z) then pitch (about X), without re-fitting."""
    from .sh import rotate_sh

    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    rz = torch.tensor([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]], dtype=torch.float64)
    return rotate_sh(torch.as_tensor(np.asarray(sh, np.float64)), rx @ rz).numpy()


def lights_from_file(path: str, template: dict) -> dict:  # type: ignore[type-arg]
    """Stage parameters from a JSON file (a scene.json or {"lights": [{d, a, p, i}, ...]}), validated."""
    import json
    from pathlib import Path

    from .result import N_LIGHTS

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        lights = doc["lights"]
        stage = {"d": np.array([float(l["d"]) for l in lights]), "a": np.array([float(l["a"]) for l in lights]),
                 "p": np.array([[float(x) for x in l["p"]] for l in lights]), "i": np.array([[float(x) for x in l["i"]] for l in lights])}
    except FileNotFoundError:
        raise FaceStageError(f"Lights file {path} does not exist.") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise FaceStageError(f"Lights file {path} is not a light-stage JSON (20 lights with d, a, p, i).") from None
    if len(lights) != N_LIGHTS or stage["p"].shape != (N_LIGHTS, 3) or stage["i"].shape != (N_LIGHTS, 3):
        raise FaceStageError(f"Lights file {path} must list exactly {N_LIGHTS} lights with p and i of 3 values.")
    if not all(np.all(np.isfinite(v)) for v in stage.values()) or (stage["d"] <= 0).any() or (stage["a"] < 0).any() or (stage["i"] < 0).any():
        raise FaceStageError(f"Lights file {path} has negative or non-finite values.")
    from . import lightstage

    stage["a"] = np.clip(stage["a"], lightstage.A_MIN, 1.0)
    stage["p"] = np.clip(stage["p"], 0, None) / np.clip(stage["p"], 0, None).sum(1, keepdims=True).clip(1e-12)
    stage["centre"] = np.asarray(template["centre"])
    return stage


# ----------------------------------------------------------------------------- caricature and passes
def caricature_result(result, factor: float, regions: dict[str, float]):  # type: ignore[no-untyped-def]
    """A copy of the result whose identity deviation is scaled (see caricature_scale); maps, pose and expression kept.

    Large factors can fold thin features (eyelids, lip corners) over; where a triangle would flip,
    the exaggeration of its corners is halved until none does, so the mesh stays valid.
    """
    import copy as copy_module

    from .head import load_head_model

    model = load_head_model()
    weights = {name: model.region_weights[k].numpy() for k, name in enumerate(model.region_names)}
    for name in regions:
        if name not in weights:
            raise FaceStageError(f"Region {name!r} is not one of: {', '.join(model.region_names)}.")
    scale = torch.as_tensor(caricature_scale(weights, factor, regions), dtype=torch.float32)
    identity = torch.as_tensor(result.identity, dtype=torch.float32)
    expression = torch.as_tensor(result.expression, dtype=torch.float32)
    mean = model.vertices
    offset_id = model.evaluate(identity, None) - mean
    offset_ex = model.evaluate(None, expression) - mean
    base = (mean + offset_id + offset_ex).double().numpy()
    faces = model.faces.numpy()
    for _ in range(MAX_UNFOLD_PASSES):
        local = caricature_vertices(mean, offset_id, offset_ex, scale).double().numpy()
        folded = _folded_faces(base, local, faces)
        if not folded.any():
            break
        # Pull the exaggeration of folded triangles (and their corners' neighbours) halfway back towards 1.
        corners = np.unique(faces[folded])
        scale[corners] = 1.0 + 0.5 * (scale[corners] - 1.0)
    out = copy_module.copy(result)
    out.vertices = (local @ np.asarray(result.rotation).T + np.asarray(result.translation)).astype(np.float32)
    out.edits = {**getattr(result, "edits", {}), "caricature": {"factor": factor, "regions": regions}}
    return out


PASS_NAMES = ("albedo", "diffuse", "ambient", "specular", "shadow")


def pass_images(result, device: str = "cpu") -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Attribute layers at photo resolution (linear) whose composition reproduces render.png:
    image = alpha · (albedo · (diffuse + ambient) + specular) + (1 − alpha) · photo."""
    from .pipeline import Crop, paste

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
