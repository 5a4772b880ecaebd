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


def flipped_triangles(before: np.ndarray, after: np.ndarray, faces: np.ndarray) -> int:
    """Number of triangles whose normal turned by more than 90° (a fold or self-intersection)."""
    def normals(v: np.ndarray) -> np.ndarray:
        return np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])

    return int(((normals(before) * normals(after)).sum(1) <= 0).sum())


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
