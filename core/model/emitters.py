"""Lights as the renderer samples them: triangles, rectangles, ellipses and points in the world frame.

The fit's light stage (model/lightstage.py) and a user's relight rig (io/rig.py,
apps/rig.py) both end up here, so one sampler and one kernel shade every light
the way Blender's Cycles does:

* an area emitter (triangle, rectangle, ellipse) is one-sided and Lambertian: radiance L leaves
  its face along `normal`, and the renderer weighs a uniform point on it by L·A / samples
  (`power` holds L·A per channel);
* a point emitter (`omni`) has radiant intensity I = `power` (W/sr per channel) in every
  direction — Blender's point light of power P has I = P/(4π) — times the spot cone of a spot
  light: smoothstep(0, 1, (cos θ − cos(half angle)) / ((1 − cos(half angle))·blend)) with θ
  the angle between the light's axis and the direction to the shaded point (Cycles'
  spot_attenuation).

Every emitter is sampled as origin + a·u + b·v with (a, b) the shape's warp of a unit-square
point: a triangle has u, v = its two edges from vertex 0, a rectangle or ellipse has u, v = its
half-extents, a point has u = v = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TRIANGLE, RECTANGLE, ELLIPSE, POINT = 0, 1, 2, 3


@dataclass
class Emitters:
    """J lights: shape codes (J,) long, origin/u/v/normal (J, 3), power (J, 3), omni (J,) bool,
    spot_axis (J, 3), spot_cos (J,) (−2 = no cone) and spot_smooth (J,) (1 / width of the soft edge in cos)."""

    shape: torch.Tensor
    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    normal: torch.Tensor
    power: torch.Tensor
    omni: torch.Tensor
    spot_axis: torch.Tensor
    spot_cos: torch.Tensor
    spot_smooth: torch.Tensor

    def __len__(self) -> int:
        return int(self.shape.shape[0])

    def to(self, device: torch.device, dtype: torch.dtype) -> Emitters:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        return Emitters(*(move(getattr(self, name)) for name in _FIELDS))

    def select(self, index: torch.Tensor) -> Emitters:
        return select(self, index)

    @property
    def has_spots(self) -> bool:
        return bool((self.spot_cos > -1.5).any())


_FIELDS = ("shape", "origin", "u", "v", "normal", "power", "omni", "spot_axis", "spot_cos", "spot_smooth")


def make(shape: list[int], origin: torch.Tensor, u: torch.Tensor, v: torch.Tensor, normal: torch.Tensor,
         power: torch.Tensor, omni: list[bool] | None = None, spot_axis: torch.Tensor | None = None,
         spot_cos: torch.Tensor | None = None, spot_smooth: torch.Tensor | None = None) -> Emitters:
    """Emitters from per-light rows (spot fields default to 'no cone')."""
    j = origin.shape[0]
    kw = {"dtype": origin.dtype, "device": origin.device}
    return Emitters(
        shape=torch.as_tensor(shape, dtype=torch.long, device=origin.device), origin=origin, u=u, v=v, normal=normal,
        power=power, omni=torch.as_tensor(omni if omni is not None else [False] * j, dtype=torch.bool, device=origin.device),
        spot_axis=spot_axis if spot_axis is not None else torch.zeros(j, 3, **kw),
        spot_cos=spot_cos if spot_cos is not None else torch.full((j,), -2.0, **kw),
        spot_smooth=spot_smooth if spot_smooth is not None else torch.ones(j, **kw))


def select(emitters: Emitters, index: torch.Tensor) -> Emitters:
    """The lights at `index`."""
    return Emitters(*(getattr(emitters, name)[index] for name in _FIELDS))


def concat(parts: list[Emitters]) -> Emitters:
    """One Emitters from several (same dtype and device)."""
    return Emitters(*(torch.cat([getattr(p, name) for p in parts]) for name in _FIELDS))


def _concentric(xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shirley–Chiu concentric map of the unit square onto the unit disk (keeps strata compact)."""
    a, b = 2 * xi[..., 0] - 1, 2 * xi[..., 1] - 1
    first = a.abs() > b.abs()
    r = torch.where(first, a, b)
    safe = torch.where(first, a, b).abs().clamp_min(1e-12)
    phi = torch.where(first, (math.pi / 4) * (b / safe * a.sign()), math.pi / 2 - (math.pi / 4) * (a / safe * b.sign()))
    return r * torch.cos(phi), r * torch.sin(phi)


def warp(shape: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients (a, b) of u and v for unit-square points xi (..., J, S, 2) on lights of these shapes (J,)."""
    code = shape.view(*([1] * (xi.ndim - 3)), -1, 1)
    root = xi[..., 0].sqrt()
    tri_a, tri_b = root * (1 - xi[..., 1]), root * xi[..., 1]
    rect_a, rect_b = 2 * xi[..., 0] - 1, 2 * xi[..., 1] - 1
    disk_a, disk_b = _concentric(xi)
    a = torch.where(code == TRIANGLE, tri_a, torch.where(code == RECTANGLE, rect_a, torch.where(code == ELLIPSE, disk_a, 0.0)))
    b = torch.where(code == TRIANGLE, tri_b, torch.where(code == RECTANGLE, rect_b, torch.where(code == ELLIPSE, disk_b, 0.0)))
    return a, b


def sample_points(emitters: Emitters, xi: torch.Tensor) -> torch.Tensor:
    """Uniform points (..., J, S, 3) on the lights from unit-square points xi (..., J, S, 2)."""
    a, b = warp(emitters.shape, xi.to(emitters.origin.dtype))
    return (emitters.origin[:, None] + a[..., None] * emitters.u[:, None] + b[..., None] * emitters.v[:, None])


def areas(emitters: Emitters) -> torch.Tensor:
    """(J,) emitting area in m² (0 for points)."""
    cross = torch.linalg.cross(emitters.u, emitters.v).norm(dim=-1)
    return torch.where(emitters.shape == TRIANGLE, 0.5 * cross,
                       torch.where(emitters.shape == RECTANGLE, 4 * cross,
                                   torch.where(emitters.shape == ELLIPSE, math.pi * cross, torch.zeros_like(cross))))


def spot_factor(emitters: Emitters, points: torch.Tensor, column_light: torch.Tensor) -> torch.Tensor:
    """(M, K) spot-cone weight of shading points (M, 3) for sample columns whose light is column_light (K,)."""
    origin, axis = emitters.origin[column_light], emitters.spot_axis[column_light]
    cos_edge, smooth = emitters.spot_cos[column_light], emitters.spot_smooth[column_light]
    to_point = torch.nn.functional.normalize(points[:, None] - origin[None], dim=-1)
    t = ((to_point * axis[None]).sum(-1) - cos_edge[None]) * smooth[None]
    t = t.clamp(0.0, 1.0)
    weight = t * t * (3 - 2 * t)
    return torch.where(cos_edge[None] < -1.5, torch.ones_like(weight), weight)


def spot_parameters(spot_size_deg: float, spot_blend: float) -> tuple[float, float]:
    """(cos of the half cone, smoothstep slope) of a Blender spot light's spot_size and spot_blend."""
    cos_edge = math.cos(math.radians(spot_size_deg) / 2)
    width = (1 - cos_edge) * spot_blend
    return cos_edge, 1.0 / width if width > 1e-9 else 1e9


def frame_axes(normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit tangents (x, y) of a light whose emission direction is `normal` (..., 3), as Blender orients an
    object whose local −Z is `normal` with its local Y up (track −Z, up Y), falling back near vertical."""
    z = -torch.nn.functional.normalize(normal, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=normal.dtype, device=normal.device).expand_as(z)
    alt = torch.tensor([0.0, 1.0, 0.0], dtype=normal.dtype, device=normal.device).expand_as(z)
    up = torch.where((z[..., 2:].abs() < 0.95), up, alt)
    x = torch.nn.functional.normalize(torch.linalg.cross(up, z), dim=-1)
    return x, torch.linalg.cross(z, x)
