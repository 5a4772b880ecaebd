"""The virtual light stage: 20 one-sided area lights on the faces of an icosahedron around the head.

Why a stage: a handful of parametric area lights (plus the SH ambient) explains
a portrait's key, fill and rim light with soft shadows, and maps one-to-one
onto Blender area lights, so the recovered lighting is editable.

Geometry (the one convention every module uses)
    `icosahedron()` is centred on the origin with inradius 1 (every face plane
    at unit distance), in the world frame (Z up, the head facing −Y). It is
    oriented so that one face looks straight at the head's front: face FRONT
    has outward normal exactly −Y, and the stage is mirror-symmetric in x.
    Faces are ordered by decreasing elevation of their centre, then by
    azimuth atan2(y, x): light 01 ("Stage Light 01") is the highest. Within a
    face, vertex 0 is the highest (then the one with the smaller x) and the
    winding makes (v1 − v0) × (v2 − v0) point outwards; p is barycentric in
    that order.

    Light j lies in the plane of face j of the icosahedron scaled by d_j about
    the stage centre c (so it is parallel to the face, at distance d_j): it is
    that scaled face shrunk by √a_j about its point with barycentric
    coordinates p_j. `centroids()` returns that point (the light's centre in
    the parameters' sense); its area is a_j·A₁·d_j² (A₁ = `face_area()`), it
    stays inside the face for any p in the simplex, and it emits on one side,
    towards c (`normals()`).

Radiance from the perceived intensity (DESIGN.md, method item 4)
    i_j is what light j delivers to the head: moving (d), resizing (a) or
    sliding (p) a light must not change it; only i does. We make that exact
    rather than approximate: L_j = i_j / Φ_j, where Φ_j is the projected
    (cosine-weighted) solid angle of the light triangle seen from c by a
    receiver facing the triangle's centroid, from Lambert's closed formula
    Φ = ½ Σ_k β_k (n_r · γ_k) (β_k the angle an edge subtends at c, γ_k the
    unit normal of the plane through c and that edge). The irradiance at c on
    that receiver is then L·Φ = i for every d, a and p. The scaling is
    homothetic about c, so Φ does not depend on d at all.

    DESIGN's I = d²/a · i is the small-light limit of the same invariant: for
    a light at distance r = d / cos θ seen at angle θ off its normal,
    Φ ≈ A cos³θ / d² = a A₁ cos³θ, so L ≈ i / (a A₁ cos³θ) — d²/a · i up to the
    constant A₁d² (DESIGN's A = a·A_face with a face that does not grow with
    d) and the cosines, which the exact form factor accounts for where the
    approximation would be off by tens of per cent for large lights.

    Point-light limit: a is bounded below by A_MIN (`from_raw` maps into
    [A_MIN, 1]; smaller values are treated as A_MIN). There L·A tends to
    i·d²/cos³θ, finite: the tiny light is a cosine-lobed point source of
    radiant intensity L·A·cos along its normal that still delivers exactly i
    to the centre (`is_point_light`).

Blender: power P = π·A·L per channel (area lights are Lambertian emitters);
`blender_lights` exports an equal-area DISK (or SQUARE) at the triangle's
centroid whose local −Z is the emission normal, with colour·energy = P.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..common.config import N_LIGHTS
from .emitters import ELLIPSE, TRIANGLE, Emitters, frame_axes, make

D_MIN = 0.5  # metres: lights never come closer to the head's centre than this (studio lights do not sit in the hair)
A_MIN = 1e-4  # relative area of the point-light limit
I_MIN = 1e-8  # smallest intensity to_raw represents (softplus never reaches 0)
_RAW_EPS = 1e-6


@lru_cache(maxsize=1)
def _icosahedron_np() -> tuple[np.ndarray, np.ndarray]:
    """Vertices (12, 3) float64 and faces (20, 3) int64 in the documented orientation and order."""
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    base = [(0.0, s1, s2 * phi) for s1 in (-1.0, 1.0) for s2 in (-1.0, 1.0)]
    verts = np.array([(x, y, z) for p in base for (x, y, z) in (p, (p[1], p[2], p[0]), (p[2], p[0], p[1]))])
    faces = [f for f in itertools.combinations(range(12), 3)
             if all(abs(np.linalg.norm(verts[a] - verts[b]) - 2.0) < 1e-9 for a, b in itertools.combinations(f, 2))]
    # turn the face whose normal is ∝ (0, φ, 1/φ) to −Y by a rotation about X (keeps the x-mirror symmetry)
    beta = math.atan2(1.0 / phi, phi)
    c, s = math.cos(math.pi - beta), math.sin(math.pi - beta)
    verts = verts @ np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    verts = verts / np.linalg.norm(verts[list(faces[0])].mean(0))  # inradius 1
    ordered = []
    for face in faces:
        tri = verts[list(face)]
        first = int(np.lexsort((np.round(tri[:, 0], 9), -np.round(tri[:, 2], 9)))[0])
        a, b, c2 = (face[(first + k) % 3] for k in range(3))
        if np.dot(np.cross(verts[b] - verts[a], verts[c2] - verts[a]), verts[[a, b, c2]].mean(0)) < 0:
            b, c2 = c2, b
        ordered.append((a, b, c2))
    faces_np = np.array(ordered, dtype=np.int64)
    centres = verts[faces_np].mean(1)
    order = np.lexsort((np.round(np.arctan2(centres[:, 1], centres[:, 0]), 9), -np.round(centres[:, 2], 9)))
    return verts, faces_np[order]


def icosahedron(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (12, 3) with inradius 1 and faces (20, 3) long, in the stage's fixed order, wound outward."""
    verts, faces = _icosahedron_np()
    return torch.tensor(verts, dtype=dtype, device=device), torch.tensor(faces, dtype=torch.long, device=device)


def face_area() -> float:
    """A₁: area of one face at inradius 1 (3√3/φ⁴ ≈ 0.7580)."""
    verts, faces = _icosahedron_np()
    a, b, c = verts[faces[0]]
    return float(np.linalg.norm(np.cross(b - a, c - a)) / 2)


def _front_index() -> int:
    verts, faces = _icosahedron_np()
    return int(np.argmin(verts[faces].mean(1)[:, 1]))


FRONT = _front_index()  # the light straight in front of the head (outward face normal −Y)


@dataclass
class LightStage:
    """Per-light parameters: d (20,) metres, a (20,) in [A_MIN, 1], p (20, 3) simplex, i (20, 3) RGB; centre (3,)."""

    d: torch.Tensor
    a: torch.Tensor
    p: torch.Tensor
    i: torch.Tensor
    centre: torch.Tensor


def default_stage(centre: Any, d: float = 1.5, a: float = 0.3, intensity: float = 0.0) -> LightStage:
    """Every light at distance d, relative area a, centred on its face, with grey intensity i = intensity."""
    centre_t = centre if isinstance(centre, torch.Tensor) else torch.tensor(np.asarray(centre), dtype=torch.float32)
    kw: dict[str, Any] = {"dtype": centre_t.dtype, "device": centre_t.device}
    return LightStage(d=torch.full((N_LIGHTS,), d, **kw), a=torch.full((N_LIGHTS,), a, **kw),
                      p=torch.full((N_LIGHTS, 3), 1 / 3, **kw), i=torch.full((N_LIGHTS, 3), intensity, **kw),
                      centre=centre_t.clone())


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def to_raw(stage: LightStage) -> dict[str, torch.Tensor]:
    """Unconstrained optimisation variables {d, a, p, i} (inverse of from_raw, exact to ~1e-6)."""
    d = (stage.d - D_MIN).clamp_min(_RAW_EPS)
    a = ((stage.a - A_MIN) / (1 - A_MIN)).clamp(_RAW_EPS, 1 - _RAW_EPS)
    return {"d": _inverse_softplus(d), "a": torch.logit(a), "p": torch.log(stage.p.clamp_min(1e-12)),
            "i": _inverse_softplus(stage.i.clamp_min(I_MIN))}


def from_raw(raw: Mapping[str, torch.Tensor], centre: torch.Tensor) -> LightStage:
    """d = D_MIN + softplus, a = A_MIN + (1 − A_MIN)·sigmoid, p = softmax, i = softplus: every raw value is a valid stage."""
    return LightStage(d=D_MIN + F.softplus(raw["d"]), a=A_MIN + (1 - A_MIN) * torch.sigmoid(raw["a"]),
                      p=torch.softmax(raw["p"], dim=-1), i=F.softplus(raw["i"]), centre=centre)


def as_dict(stage: LightStage) -> dict[str, torch.Tensor]:
    """The stage's tensors by name (what result files and scene.json keep)."""
    return {"d": stage.d, "a": stage.a, "p": stage.p, "i": stage.i, "centre": stage.centre}


def from_dict(values: Mapping[str, Any], dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> LightStage:
    """A LightStage from as_dict's names with array-like values."""
    return LightStage(**{k: torch.as_tensor(np.asarray(values[k]), dtype=dtype, device=device)
                         for k in ("d", "a", "p", "i", "centre")})


def _faces(stage: LightStage) -> torch.Tensor:
    """(20, 3, 3) face vertices at inradius 1, relative to the centre."""
    verts, faces = icosahedron(stage.d.dtype, stage.d.device)
    return verts[faces]


def _area_fraction(stage: LightStage) -> torch.Tensor:
    return stage.a.clamp(A_MIN, 1.0)


def centroids(stage: LightStage) -> torch.Tensor:
    """(20, 3) world position of each light's centre: the point p on its scaled face (the shrink centre)."""
    return stage.centre + stage.d[:, None] * (stage.p[:, :, None] * _faces(stage)).sum(1)


def triangles(stage: LightStage) -> torch.Tensor:
    """(20, 3, 3) world vertices of each light triangle (the scaled face shrunk by √a about p)."""
    scaled = stage.centre + stage.d[:, None, None] * _faces(stage)
    centre = centroids(stage)[:, None]
    return centre + torch.sqrt(_area_fraction(stage))[:, None, None] * (scaled - centre)


def triangle_centroids(stage: LightStage) -> torch.Tensor:
    """(20, 3) centroid of each emitting triangle (equals centroids() when p is the face centre or a → 0)."""
    return triangles(stage).mean(1)


def normals(stage: LightStage) -> torch.Tensor:
    """(20, 3) unit emission directions: the inward face normals, from each light towards the centre."""
    f = _faces(stage)
    return -F.normalize(torch.linalg.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0]), dim=-1)


def areas(stage: LightStage) -> torch.Tensor:
    """(20,) light areas in m²: a·A₁·d²."""
    return _area_fraction(stage) * face_area() * stage.d ** 2


def projected_solid_angle(stage: LightStage) -> torch.Tensor:
    """Φ (20,): each triangle's cosine-weighted solid angle at the centre, receiver facing the triangle's centroid.

    Lambert's formula, evaluated in float64 (tiny lights subtend ~1e-8 sr).
    """
    tri = triangles(stage).double() - stage.centre.double()
    receiver = F.normalize(tri.mean(1), dim=-1)
    u = F.normalize(tri, dim=-1)
    total = torch.zeros(tri.shape[0], dtype=torch.float64, device=tri.device)
    for k in range(3):
        a, b = u[:, k], u[:, (k + 1) % 3]
        cross = torch.linalg.cross(a, b)
        sin = cross.norm(dim=-1)
        angle = torch.atan2(sin, (a * b).sum(-1))
        total = total + angle * (receiver * cross).sum(-1) / sin.clamp_min(1e-300)
    return (0.5 * total.abs()).to(stage.d.dtype)


def radiance(stage: LightStage) -> torch.Tensor:
    """(20, 3) emitted radiance L = i / Φ: the irradiance each light delivers to the centre is exactly i."""
    return stage.i / projected_solid_angle(stage)[:, None]


def power_watts(stage: LightStage) -> torch.Tensor:
    """(20, 3) emitted power per channel, P = π·A·L (Blender's area-light power)."""
    return math.pi * areas(stage)[:, None] * radiance(stage)


def disk_emitters(stage: LightStage, radiance_values: torch.Tensor | None = None) -> Emitters:
    """The lights as Blender gets them: equal-area disks at the triangles' centroids, parallel to their faces,
    with the axes of the exported light's rotation (power = L·A)."""
    centre = triangle_centroids(stage)
    normal = normals(stage)
    radius = torch.sqrt(areas(stage) / math.pi)
    x_axis, y_axis = frame_axes(normal)
    values = radiance(stage) if radiance_values is None else radiance_values
    return make([ELLIPSE] * centre.shape[0], centre, radius[:, None] * x_axis, radius[:, None] * y_axis, normal,
                values * areas(stage)[:, None])


def emitters(stage: LightStage) -> Emitters:
    """The 20 lights as the renderer samples them: triangles emitting L along their inward normals
    (power = L·A), differentiable in d, a, p and i."""
    tri = triangles(stage)
    power = radiance(stage) * areas(stage)[:, None]
    return make([TRIANGLE] * tri.shape[0], tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], normals(stage), power)


def is_point_light(stage: LightStage, tol: float = 1e-6) -> torch.Tensor:
    """(20,) bool: lights at the point-light limit a = A_MIN."""
    return stage.a <= A_MIN + tol


def rotation_from_normal(emission: np.ndarray) -> np.ndarray:
    """3×3 world rotation whose local −Z is `emission` (Blender area lights shine along their local −Z)."""
    z = -np.asarray(emission, np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.95 else np.array([0.0, 1.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def light_name(j: int) -> str:
    return f"Stage Light {j + 1:02d}"


def blender_lights(stage: LightStage | Mapping[str, Any], shape: str = "DISK") -> list[dict[str, Any]]:
    """Blender-ready light dicts, in stage order (bpy-free; scene/lights.py copies them onto AREA lights).

    Each has name, position (the triangle's centroid), normal (emission direction), rotation
    (3×3, local −Z = normal), shape ("DISK": size = diameter of the equal-area disk;
    "SQUARE": size = side), size, area, radiance (L), power_w and color with
    color·power_w / (π·area) = L: colour normalised to a largest channel of 1,
    power_w = π·A·max(L); black and 0 W for a dark light.
    """
    if not isinstance(stage, LightStage):
        stage = from_dict(stage, dtype=torch.float64)
    shape = shape.upper()
    if shape not in ("DISK", "SQUARE"):
        raise ValueError(f"shape must be DISK or SQUARE, not {shape!r}")
    with torch.no_grad():
        position = triangle_centroids(stage).cpu().double().numpy()
        normal = normals(stage).cpu().double().numpy()
        area = areas(stage).cpu().double().numpy()
        rad = radiance(stage).cpu().double().numpy()
    lights = []
    for j in range(N_LIGHTS):
        peak = float(rad[j].max())
        lit = peak > 0.0
        size = 2.0 * math.sqrt(area[j] / math.pi) if shape == "DISK" else math.sqrt(area[j])
        lights.append({
            "name": light_name(j), "position": position[j].tolist(), "normal": normal[j].tolist(),
            "rotation": rotation_from_normal(normal[j]).tolist(), "shape": shape, "size": size,
            "area": float(area[j]), "radiance": rad[j].tolist(),
            "power_w": math.pi * float(area[j]) * peak if lit else 0.0,
            "color": (rad[j] / peak).tolist() if lit else [0.0, 0.0, 0.0],
        })
    return lights
