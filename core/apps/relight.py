"""Relighting a finished reconstruction: named presets on the same 20-light stage, and a rotated environment.

A preset is just another setting of the fitted light stage (so the Blender
lights and the core render agree), exposure-matched to the total light the
fit found so the face keeps its brightness; rotating the SH environment
turns the ambient light without re-fitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..common.config import ENV_ROTATE, LIGHTING_PRESETS
from ..common.errors import FaceStageError
from ..model import lightstage
from ..model.sh import Y00, rotate_sh


@dataclass(frozen=True)
class PresetLight:
    """One preset light: azimuth (0 = camera side, +90 = subject's left, +X) and elevation in degrees."""

    azimuth: float
    elevation: float
    intensity: float
    area: float = 0.3
    distance: float = 1.5


# Azimuth 0 = in front of the face (−Y), +90 = the subject's left (+X), 180 = behind. Keys: config.LIGHTING_PRESETS.
PRESETS: dict[str, tuple[tuple[PresetLight, ...], float]] = {
    "three-point": ((PresetLight(-45, 30, 1.0), PresetLight(40, 10, 0.35, area=0.8), PresetLight(160, 35, 0.6, area=0.2)), 0.05),
    "rembrandt": ((PresetLight(-50, 45, 1.2, area=0.2),), 0.04),
    "butterfly": ((PresetLight(0, 50, 1.1, area=0.3),), 0.06),
    "split": ((PresetLight(-90, 5, 1.2, area=0.2),), 0.03),
    "rim": ((PresetLight(140, 25, 1.0, area=0.2), PresetLight(-140, 25, 1.0, area=0.2)), 0.08),
    "soft-box": ((PresetLight(-30, 20, 1.0, area=1.0, distance=0.8),), 0.1),
}
assert tuple(PRESETS) == LIGHTING_PRESETS, "config.LIGHTING_PRESETS lists the presets defined here"


def preset_direction(light: PresetLight) -> np.ndarray:
    """Unit vector from the head centre towards the light (world, Z up, head faces −Y)."""
    az, el = math.radians(light.azimuth), math.radians(light.elevation)
    return np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])


def preset_names() -> list[str]:
    """Every name `facestage relight --preset` accepts."""
    return [*LIGHTING_PRESETS, ENV_ROTATE]


def _place(j: int, direction: np.ndarray) -> np.ndarray:
    """Barycentric p on face j where the ray from the centre along direction meets the face plane (clamped to the face)."""
    verts, faces = lightstage.icosahedron(torch.float64)
    tri = verts[faces[j]].numpy()
    normal = tri.mean(0) / np.linalg.norm(tri.mean(0))
    hit = direction / max(float(direction @ normal), 1e-6)  # on the unit-inradius plane
    bary = np.linalg.lstsq(np.vstack([tri.T, np.ones(3)]), np.r_[hit, 1.0], rcond=None)[0]
    bary = np.clip(bary, 0.0, None)
    return bary / bary.sum()


def preset_lighting(stage: dict, sh: np.ndarray, name: str) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    """A named preset on the same 20-light stage, exposure-matched to the reconstruction's total light."""
    if name not in PRESETS:
        raise FaceStageError(f"Unknown lighting preset {name!r}; choose one of {', '.join(preset_names())}.")
    lights, ambient = PRESETS[name]
    total = float(np.asarray(stage["i"]).mean(1).sum() + math.pi * Y00 * np.asarray(sh)[:, 0].mean())
    outward = -lightstage.normals(lightstage.from_dict(stage, dtype=torch.float64)).numpy()
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
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    rz = torch.tensor([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]], dtype=torch.float64)
    return rotate_sh(torch.as_tensor(np.asarray(sh, np.float64)), rx @ rz).numpy()
