"""The virtual light stage: 20 area lights on the faces of an icosahedron around the head.

Geometry (one convention, used everywhere): the icosahedron is centred on the
stage centre c with inradius 1 (face planes at unit distance). Light j lies in
the plane of face j of that icosahedron scaled homothetically by d_j about c,
parallel to the face: it is the scaled face shrunk by sqrt(a_j) about the point
with barycentric coordinates p_j. Its area is a_j · A₁ · d_j² (A₁ = area of a
face at inradius 1) and it emits on one side, towards c.

Radiance from the perceived intensity i (DESIGN.md, method item 4): i must be
what the light delivers to the head, so moving (d), resizing (a) or sliding
(p) a light leaves that unchanged and only i changes it. We make this exact:
L_j = i_j / Φ_j, where Φ_j is the light triangle's projected solid angle seen
from c by a receiver facing the light's centre (Lambert's closed form for a
polygon). The irradiance at c is then L·Φ = i for every d, a, p. Because the
scaling is homothetic, Φ does not depend on d at all. In the small-light limit
Φ ≈ A cos³θ / r² = a A₁ cos³θ with r = d / cosθ, so L ≈ i / (a A₁ cos³θ):
DESIGN's I = d²/a · i is this same invariant written for a light whose area
does not grow with d (A = a·A_face), up to the constant face area and the
cosine factors, which the exact form factor accounts for. The point-light
limit is explicit: a is bounded below by A_MIN, where L·A stays finite and the
light is a cosine-lobed point source delivering i.

Face order is fixed: by decreasing elevation of the face centre, then by
azimuth (atan2(y, x)); light 01 is the top face. Blender's "Stage Light NN"
follow this order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

N_LIGHTS = 20
D_MIN = 0.3  # metres: lights never enter the head
A_MIN = 1e-4  # relative area of the point-light limit
I_MIN = 1e-8


@lru_cache(maxsize=1)
def _icosahedron_np() -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import ConvexHull

    phi = (1 + math.sqrt(5)) / 2
    verts = []
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            verts += [(0, s1, s2 * phi), (s1, s2 * phi, 0), (s2 * phi, 0, s1)]
    verts_np = np.array(verts, np.float64)
    faces = ConvexHull(verts_np).simplices.copy()
    for f in faces:  # wind outward
        a, b, c = verts_np[f]
        if np.dot(np.cross(b - a, c - a), a + b + c) < 0:
            f[[1, 2]] = f[[2, 1]]
    centres = verts_np[faces].mean(1)
    verts_np /= np.linalg.norm(centres[0])  # inradius 1
    centres = verts_np[faces].mean(1)
    elevation = np.round(centres[:, 2], 6)
    azimuth = np.arctan2(centres[:, 1], centres[:, 0])
    order = np.lexsort((azimuth, -elevation))
    return verts_np, faces[order]


def icosahedron(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (12, 3) with inradius 1 and faces (20, 3) in the stage's fixed order, wound outward."""
    verts, faces = _icosahedron_np()
    return torch.tensor(verts, dtype=dtype, device=device), torch.tensor(faces, dtype=torch.long, device=device)


def face_area() -> float:
    """A₁: area of one face at inradius 1."""
    verts, faces = _icosahedron_np()
    a, b, c = verts[faces[0]]
    return float(np.linalg.norm(np.cross(b - a, c - a)) / 2)


@dataclass
class LightStage:
    """Per-light parameters: d (20,) metres, a (20,) in [A_MIN, 1], p (20, 3) simplex, i (20, 3) RGB; centre (3,)."""

    d: torch.Tensor
    a: torch.Tensor
    p: torch.Tensor
    i: torch.Tensor
    centre: torch.Tensor


def default_stage(centre: torch.Tensor, d: float = 1.5, a: float = 0.3, intensity: float = 0.0) -> LightStage:
    """Every light at distance d, relative area a, centred on its face, with intensity i = intensity (grey)."""
    kw = {"dtype": centre.dtype, "device": centre.device}
    return LightStage(d=torch.full((N_LIGHTS,), d, **kw), a=torch.full((N_LIGHTS,), a, **kw),
                      p=torch.full((N_LIGHTS, 3), 1 / 3, **kw), i=torch.full((N_LIGHTS, 3), intensity, **kw),
                      centre=centre.clone())


def to_raw(stage: LightStage) -> dict[str, torch.Tensor]:
    """Unconstrained variables for an optimiser (inverse of from_raw)."""
    d = (stage.d - D_MIN).clamp_min(1e-6)
    a = ((stage.a - A_MIN) / (1 - A_MIN)).clamp(1e-6, 1 - 1e-6)
    i = stage.i.clamp_min(I_MIN)
    return {"d": d + torch.log(-torch.expm1(-d)), "a": torch.logit(a), "p": torch.log(stage.p.clamp_min(1e-8)),
            "i": i + torch.log(-torch.expm1(-i))}


def from_raw(raw: dict[str, torch.Tensor], centre: torch.Tensor) -> LightStage:
    """softplus (d, i), sigmoid (a), softmax (p): every raw value is a valid stage."""
    return LightStage(d=D_MIN + F.softplus(raw["d"]), a=A_MIN + (1 - A_MIN) * torch.sigmoid(raw["a"]),
                      p=torch.softmax(raw["p"], dim=-1), i=F.softplus(raw["i"]), centre=centre)


def _faces(stage: LightStage) -> torch.Tensor:
    verts, faces = icosahedron(stage.d.dtype, stage.d.device)
    return verts[faces]  # (20, 3, 3) at inradius 1, relative to the centre


def centroids(stage: LightStage) -> torch.Tensor:
    """(20, 3) world position of each light's centre (the point p on the scaled face)."""
    return stage.centre + stage.d[:, None] * (stage.p[:, :, None] * _faces(stage)).sum(1)


def triangles(stage: LightStage) -> torch.Tensor:
    """(20, 3, 3) world vertices of each light triangle."""
    scaled = stage.centre + stage.d[:, None, None] * _faces(stage)
    centre = centroids(stage)[:, None]
    return centre + torch.sqrt(stage.a)[:, None, None] * (scaled - centre)


def normals(stage: LightStage) -> torch.Tensor:
    """(20, 3) emission directions: the inward face normals (towards the stage centre)."""
    f = _faces(stage)
    return -F.normalize(torch.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0], dim=-1), dim=-1)


def areas(stage: LightStage) -> torch.Tensor:
    return stage.a * face_area() * stage.d ** 2


def projected_solid_angle(stage: LightStage) -> torch.Tensor:
    """Φ (20,): Lambert's formula for each triangle seen from the centre by a receiver facing its centroid."""
    tri = (triangles(stage) - stage.centre).double()
    receiver = F.normalize(centroids(stage).double() - stage.centre.double(), dim=-1)
    u = F.normalize(tri, dim=-1)
    total = torch.zeros(tri.shape[0], dtype=torch.float64, device=tri.device)
    for k in range(3):
        a, b = u[:, k], u[:, (k + 1) % 3]
        cross = torch.cross(a, b, dim=-1)
        sin = cross.norm(dim=-1)
        angle = torch.atan2(sin, (a * b).sum(-1))
        total = total + angle * (receiver * cross).sum(-1) / sin.clamp_min(1e-300)
    return (0.5 * total.abs()).to(stage.d.dtype)


def radiance(stage: LightStage) -> torch.Tensor:
    """(20, 3) emitted radiance L = i / Φ."""
    return stage.i / projected_solid_angle(stage)[:, None]


def power_watts(stage: LightStage) -> torch.Tensor:
    """(20, 3) emitted power per channel, P = π · A · L (Blender's area-light convention)."""
    return math.pi * areas(stage)[:, None] * radiance(stage)


def is_point_light(stage: LightStage, tol: float = 1e-6) -> torch.Tensor:
    return stage.a <= A_MIN + tol


def sample(stage: LightStage, n_per_light: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified uniform points (20, S, 3) on each light and weights (20, S, 3) = L·A/S.

    Direct light at x = Σ_s f · V · cos_x · cos_l · weight / r², cos_l = max(0, n_l·(x − y)/r).
    """
    k = max(1, math.isqrt(n_per_light))
    count = k * k if k * k == n_per_light else n_per_light
    xi = torch.rand((N_LIGHTS, count, 2), generator=generator, device=stage.d.device, dtype=stage.d.dtype)
    if k * k == n_per_light and count > 1:
        s = torch.arange(count, device=xi.device)
        xi = (torch.stack([s % k, s // k], -1).to(xi.dtype) + xi) / k
    root = xi[..., 0].sqrt()
    b1, b2 = root * (1 - xi[..., 1]), root * xi[..., 1]
    tri = triangles(stage)[:, None]
    points = tri[..., 0, :] + b1[..., None] * (tri[..., 1, :] - tri[..., 0, :]) + b2[..., None] * (tri[..., 2, :] - tri[..., 0, :])
    weight = (radiance(stage) * areas(stage)[:, None] / count)[:, None].expand(-1, count, -1)
    return points, weight


def rotation_from_normal(emission: np.ndarray) -> np.ndarray:
    """3×3 world rotation whose local −Z is the emission direction (Blender area lights shine along −Z)."""
    z = -emission / np.linalg.norm(emission)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.95 else np.array([0.0, 1.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def blender_lights(stage: LightStage, shape: str = "DISK") -> list[dict[str, Any]]:
    """Blender-ready lights: equal-area DISK (size = diameter) or SQUARE, energy W and colour with
    colour · energy / (π·A) = L (colour's largest channel 1; black and 0 W when dark)."""
    with torch.no_grad():
        pos = centroids(stage).cpu().double().numpy()
        normal = normals(stage).cpu().double().numpy()
        area = areas(stage).cpu().double().numpy()
        rad = radiance(stage).cpu().double().numpy()
    lights = []
    for j in range(N_LIGHTS):
        peak = float(rad[j].max())
        energy = math.pi * area[j] * peak if peak > 0 else 0.0
        size = 2 * math.sqrt(area[j] / math.pi) if shape == "DISK" else math.sqrt(area[j])
        lights.append({
            "name": f"Stage Light {j + 1:02d}", "position": pos[j].tolist(), "normal": normal[j].tolist(),
            "rotation": rotation_from_normal(normal[j]).tolist(), "shape": shape, "size": size, "area": float(area[j]),
            "power_w": energy, "color": (rad[j] / peak if peak > 0 else np.zeros(3)).tolist(), "radiance": rad[j].tolist(),
        })
    return lights


def as_dict(stage: LightStage) -> dict[str, torch.Tensor]:
    return {"d": stage.d, "a": stage.a, "p": stage.p, "i": stage.i, "centre": stage.centre}


def from_dict(values: dict[str, Any], dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> LightStage:
    return LightStage(**{k: torch.as_tensor(np.asarray(values[k]), dtype=dtype, device=device) for k in ("d", "a", "p", "i", "centre")})
