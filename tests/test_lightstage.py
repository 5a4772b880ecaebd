"""The icosahedral light stage: geometry, the perceived-intensity invariant, raw mapping, Blender export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facestage.core import lightstage as ls


def _stage(d=1.5, a=0.3, p=(1 / 3, 1 / 3, 1 / 3), i=1.0):
    stage = ls.default_stage(torch.zeros(3, dtype=torch.float64), d=d, a=a, intensity=i)
    stage.p[:] = torch.tensor(p, dtype=torch.float64)
    return stage


def _irradiance_at_centre(stage, j, n=40000):
    """Brute-force Monte Carlo E = Σ L cos_l cos_r / r² dA for a receiver facing the light."""
    gen = torch.Generator().manual_seed(1)
    points, weight = ls.sample(stage, n, gen)
    r = points[j] - stage.centre
    dist = r.norm(dim=-1)
    u = r / dist[:, None]
    cos_l = (-u @ ls.normals(stage)[j]).clamp_min(0)
    receiver = torch.nn.functional.normalize(ls.centroids(stage)[j] - stage.centre, dim=0)
    return (weight[j] * (cos_l * (u @ receiver).clamp_min(0) / dist ** 2)[:, None]).sum(0)


def test_icosahedron_has_unit_inradius_outward_faces_and_fixed_order():
    verts, faces = ls.icosahedron(torch.float64)
    tri = verts[faces]
    centres = tri.mean(1)
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    assert faces.shape == (20, 3) and torch.allclose(centres.norm(dim=-1), torch.ones(20, dtype=torch.float64))
    assert ((normal * centres).sum(-1) > 0).all()
    assert torch.all(centres[:-1, 2] >= centres[1:, 2] - 1e-9)  # light 01 on top, elevation decreasing
    edge = (tri[0, 1] - tri[0, 0]).norm()
    assert ls.face_area() == pytest.approx(math.sqrt(3) / 4 * float(edge) ** 2)


@pytest.mark.parametrize("d,a", [(0.5, 1.0), (1.5, 0.3), (3.0, 0.01)])
def test_lights_lie_parallel_in_their_scaled_face_plane_with_the_stated_area(d, a):
    stage = _stage(d=d, a=a, p=(0.6, 0.3, 0.1))
    tri = ls.triangles(stage)
    outward = -ls.normals(stage)
    assert torch.allclose((tri * outward[:, None]).sum(-1), torch.full((20, 3), d, dtype=torch.float64), atol=1e-9)
    area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1) / 2
    assert torch.allclose(area, ls.areas(stage)) and torch.allclose(area, torch.full((20,), a * ls.face_area() * d * d, dtype=torch.float64))


def test_irradiance_at_the_centre_is_i_whatever_d_a_and_p():
    values = []
    for d, a, p in [(0.5, 1.0, (1 / 3,) * 3), (1.5, 0.3, (0.7, 0.2, 0.1)), (3.0, 0.05, (0.1, 0.1, 0.8)), (1.0, 1.0, (0.9, 0.05, 0.05))]:
        values.append(float(_irradiance_at_centre(_stage(d, a, p, i=0.7), j=7)[0]))
    assert max(values) / min(values) - 1 < 0.02
    assert all(v == pytest.approx(0.7, rel=0.01) for v in values)


def test_point_light_limit_delivers_i():
    stage = _stage(d=2.0, a=ls.A_MIN, p=(0.2, 0.3, 0.5), i=1.3)
    assert bool(ls.is_point_light(stage)[0])
    assert float(_irradiance_at_centre(stage, 3, n=16)[1]) == pytest.approx(1.3, rel=0.01)


def test_power_is_pi_area_radiance_and_raw_round_trip_is_exact():
    stage = _stage(d=1.2, a=0.4, i=0.5)
    assert torch.allclose(ls.power_watts(stage), math.pi * ls.areas(stage)[:, None] * ls.radiance(stage))
    back = ls.from_raw(ls.to_raw(stage), stage.centre)
    for name in ("d", "a", "p", "i"):
        assert torch.allclose(getattr(back, name), getattr(stage, name), atol=1e-6)


def test_samples_are_inside_the_triangles_and_weights_sum_to_power():
    stage = _stage(d=1.0, a=0.5, i=0.3)
    points, weight = ls.sample(stage, 16, torch.Generator().manual_seed(0))
    tri = ls.triangles(stage)
    a, b, c = tri[:, None, 0], tri[:, None, 1], tri[:, None, 2]
    n = torch.cross(b - a, c - a, dim=-1)
    for p, q in ((a, b), (b, c), (c, a)):
        assert ((torch.cross(q - p, points - p, dim=-1) * n).sum(-1) >= -1e-12).all()
    assert torch.allclose(weight.sum(1), ls.radiance(stage) * ls.areas(stage)[:, None])
    again, _ = ls.sample(stage, 16, torch.Generator().manual_seed(0))
    assert torch.equal(points, again)


def test_blender_lights_point_their_minus_z_at_the_head_with_matching_radiance():
    stage = _stage(d=1.5, a=0.2, i=0.0)
    stage.i[4] = torch.tensor([0.9, 0.6, 0.3], dtype=torch.float64)
    lights = ls.blender_lights(stage)
    assert [l["name"] for l in lights][:2] == ["Stage Light 01", "Stage Light 02"]
    for light, normal in zip(lights, ls.normals(stage).numpy()):
        rotation = np.array(light["rotation"])
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.allclose(-rotation[:, 2], normal, atol=1e-9)
        assert math.pi * (light["size"] / 2) ** 2 == pytest.approx(light["area"])
    lit = lights[4]
    radiance = np.array(lit["color"]) * lit["power_w"] / (math.pi * lit["area"])
    assert np.allclose(radiance, ls.radiance(stage)[4].numpy())
    assert lights[0]["power_w"] == 0.0 and lights[0]["color"] == [0.0, 0.0, 0.0]
