"""The icosahedral light stage: geometry, the perceived-intensity invariant, raw mapping, sampling, Blender export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facestage.core.model import lightstage as ls
from facestage.core.render.sampling import stratified, triangle_points

DT = torch.float64
PHI = (1 + math.sqrt(5)) / 2


def _stage(d=1.5, a=0.3, p=(1 / 3, 1 / 3, 1 / 3), i=1.0, centre=(0.0, 0.02, -0.01)) -> ls.LightStage:
    stage = ls.default_stage(torch.tensor(centre, dtype=DT), d=d, a=a, intensity=i)
    stage.p[:] = torch.tensor(p, dtype=DT)
    return stage


def _irradiance_at_centre(stage: ls.LightStage, j: int, m: int = 60) -> torch.Tensor:
    """E = ∫ L cos_l cos_r / r² dA over light j, by the midpoint rule on m² congruent sub-triangles.

    The receiver at the centre faces the light triangle's centroid. Independent of the renderer's light sampling.
    """
    tri = ls.triangles(stage)[j]
    points, n = [], m
    for r in range(n):
        for c in range(n - r):
            points.append((r + 1 / 3, c + 1 / 3))  # upright sub-triangles
            if c < n - r - 1:
                points.append((r + 2 / 3, c + 2 / 3))  # inverted ones
    uv = torch.tensor(points, dtype=DT) / n
    y = tri[0] + uv[:, :1] * (tri[1] - tri[0]) + uv[:, 1:] * (tri[2] - tri[0])
    d_area = ls.areas(stage)[j] / (n * n)
    to_light = y - stage.centre
    r = to_light.norm(dim=-1)
    cos_l = (-(to_light / r[:, None]) @ ls.normals(stage)[j]).clamp_min(0)
    receiver = torch.nn.functional.normalize(tri.mean(0) - stage.centre, dim=0)
    cos_r = ((to_light / r[:, None]) @ receiver).clamp_min(0)
    return ls.radiance(stage)[j] * (cos_l * cos_r / r ** 2).sum() * d_area


def test_icosahedron_has_unit_inradius_outward_equal_faces():
    verts, faces = ls.icosahedron(DT)
    tri = verts[faces]
    centres = tri.mean(1)
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert faces.shape == (20, 3) and verts.shape == (12, 3) and faces.dtype == torch.long
    assert sorted(faces.flatten().bincount().tolist()) == [5] * 12  # five faces meet at every vertex
    unit = torch.nn.functional.normalize(normal, dim=-1)
    assert torch.allclose((tri * unit[:, None]).sum(-1), torch.ones(20, 3, dtype=DT))  # face planes at distance 1
    assert torch.allclose(torch.nn.functional.normalize(centres, dim=-1), unit)  # outward, through the centroid
    areas = normal.norm(dim=-1) / 2
    assert torch.allclose(areas, torch.full((20,), 3 * math.sqrt(3) / PHI ** 4, dtype=DT))
    assert ls.face_area() == pytest.approx(3 * math.sqrt(3) / PHI ** 4)


def test_face_order_front_face_and_mirror_symmetry():
    verts, faces = ls.icosahedron(DT)
    tri = verts[faces]
    centres = tri.mean(1)
    assert torch.all(centres[:-1, 2] >= centres[1:, 2] - 1e-9)  # light 01 highest, elevation decreasing
    assert torch.allclose(centres[ls.FRONT], torch.tensor([0.0, -1.0, 0.0], dtype=DT), atol=1e-12)
    assert int(centres[:, 1].argmin()) == ls.FRONT
    mirrored = centres * torch.tensor([-1.0, 1.0, 1.0], dtype=DT)
    assert torch.cdist(mirrored, centres).min(1).values.max() < 1e-12  # left-right symmetric stage
    assert torch.all(tri[:, 0, 2] >= tri[:, 1:, 2].max(1).values - 1e-12)  # vertex 0 is each face's highest
    again_v, again_f = ls.icosahedron(torch.float32)
    assert torch.equal(again_f, faces) and torch.allclose(again_v.double(), verts, atol=1e-6)


@pytest.mark.parametrize("d,a,p", [(0.5, 1.0, (1 / 3, 1 / 3, 1 / 3)), (1.5, 0.3, (0.6, 0.3, 0.1)),
                                   (3.0, 0.01, (0.0, 0.0, 1.0)), (2.0, ls.A_MIN, (0.2, 0.5, 0.3))])
def test_lights_lie_parallel_in_their_scaled_face_inside_it_with_the_stated_area(d, a, p):
    stage = _stage(d=d, a=a, p=p)
    tri = ls.triangles(stage) - stage.centre
    outward = -ls.normals(stage)
    assert torch.allclose((tri * outward[:, None]).sum(-1), torch.full((20, 3), d, dtype=DT), atol=1e-9)
    verts, faces = ls.icosahedron(DT)
    assert torch.allclose(outward, torch.nn.functional.normalize(verts[faces].mean(1), dim=-1))
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1) / 2
    assert torch.allclose(area, ls.areas(stage))
    assert torch.allclose(area, torch.full((20,), a * ls.face_area() * d * d, dtype=DT))
    face = d * verts[faces]  # barycentric coordinates of the light's corners on its scaled face: all ≥ 0
    bary = torch.linalg.solve(face.transpose(1, 2)[:, None].expand(-1, 3, -1, -1), tri)
    assert (bary > -1e-9).all() and torch.allclose(bary.sum(-1), torch.ones(20, 3, dtype=DT))
    assert torch.allclose(ls.centroids(stage) - stage.centre, (torch.tensor(p, dtype=DT)[None, :, None] * face).sum(1))


def test_irradiance_at_the_centre_is_i_whatever_d_a_and_p():
    values = []
    for d in (0.5, 1.0, 3.0):
        for a in (1e-4, 0.05, 0.3, 1.0):
            for p in ((1 / 3, 1 / 3, 1 / 3), (0.7, 0.2, 0.1), (0.05, 0.05, 0.9)):
                stage = _stage(d, a, p, i=0.7)
                values.append(_irradiance_at_centre(stage, j=7, m=40 if a > 0.01 else 6))
    values_t = torch.stack(values)
    assert torch.allclose(values_t, torch.full_like(values_t, 0.7), rtol=0.01)
    assert float(values_t.max() / values_t.min()) - 1 < 0.02


def test_radiance_does_not_depend_on_distance():
    stage = _stage(d=1.3, a=0.4, p=(0.5, 0.3, 0.2), i=1.0)
    stage.d.requires_grad_(True)
    L = ls.radiance(stage)
    L.sum().backward()
    assert float(stage.d.grad.abs().max()) < 1e-9 * float(L.detach().abs().max())
    far = _stage(d=2.9, a=0.4, p=(0.5, 0.3, 0.2), i=1.0)
    assert torch.allclose(ls.radiance(far), L.detach(), rtol=1e-10)


def test_point_light_limit_delivers_i_like_a_cosine_lobed_point_source():
    stage = _stage(d=2.0, a=ls.A_MIN, p=(0.2, 0.3, 0.5), i=1.3)
    assert bool(ls.is_point_light(stage).all()) and not bool(ls.is_point_light(_stage(a=0.3)).any())
    y = ls.triangle_centroids(stage) - stage.centre
    r = y.norm(dim=-1)
    cos_l = (-(y / r[:, None]) * ls.normals(stage)).sum(-1)
    # point source of radiant intensity L·A·cos_l towards the centre, receiver facing it (cos_r = 1)
    irradiance = ls.radiance(stage) * (ls.areas(stage) * cos_l / r ** 2)[:, None]
    assert torch.allclose(irradiance, torch.full_like(irradiance, 1.3), rtol=0.01)
    # DESIGN's small-light form: L ≈ i·d²/(A·cos³θ), θ the light's angle off its face normal
    expected = 1.3 * 2.0 ** 2 / (ls.areas(stage) * cos_l ** 3)
    assert torch.allclose(ls.radiance(stage)[:, 0], expected, rtol=0.01)
    tiny = _stage(d=2.0, a=0.0, p=(0.2, 0.3, 0.5), i=1.3)  # below the limit: treated as the limit, finite
    assert torch.allclose(ls.radiance(tiny), ls.radiance(stage))


def test_power_is_pi_area_radiance():
    stage = _stage(d=1.2, a=0.4, i=0.5)
    stage.i[3] = torch.tensor([0.1, 0.2, 0.3], dtype=DT)
    assert torch.allclose(ls.power_watts(stage), math.pi * ls.areas(stage)[:, None] * ls.radiance(stage))
    assert (ls.power_watts(stage) > 0).all()


def test_raw_round_trip_is_exact_and_every_raw_value_is_valid():
    stage = _stage(d=1.2, a=0.4, i=0.5)
    stage.d[:5] = torch.tensor([ls.D_MIN + 0.01, 0.6, 2.0, 4.0, 10.0], dtype=DT)
    stage.a[:5] = torch.tensor([ls.A_MIN, 1e-3, 0.5, 0.999, 1.0], dtype=DT)
    stage.p[:3] = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]], dtype=DT)
    stage.i[:3] = torch.tensor([[0.0, 0.0, 0.0], [1e-3, 2.0, 10.0], [0.5, 0.0, 3.0]], dtype=DT)
    back = ls.from_raw(ls.to_raw(stage), stage.centre)
    for name in ("d", "a", "p", "i"):
        assert torch.allclose(getattr(back, name), getattr(stage, name), rtol=0, atol=1e-5), name
    gen = torch.Generator().manual_seed(3)
    raw = {k: 20 * torch.randn(v.shape, generator=gen, dtype=DT) for k, v in ls.to_raw(stage).items()}
    wild = ls.from_raw(raw, stage.centre)
    assert (wild.d >= ls.D_MIN).all() and (wild.a >= ls.A_MIN).all() and (wild.a <= 1).all() and (wild.i >= 0).all()
    assert torch.allclose(wild.p.sum(-1), torch.ones(20, dtype=DT)) and (wild.p >= 0).all()
    assert torch.isfinite(ls.radiance(wild)).all()


def sample_lights(stage: ls.LightStage, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Area samples on each light the way the renderer draws them (core.render.sampling): points (20, S, 3) and
    weights (20, S, 3) = L·A/S, so direct light at x = Σ_s f · V · cos_x · cos_l · weight / r²."""
    xi = stratified((ls.N_LIGHTS,), count, generator, torch.device("cpu"), DT)
    points = triangle_points(ls.triangles(stage)[:, None], xi)
    weight = (ls.radiance(stage) * ls.areas(stage)[:, None] / count)[:, None].expand(-1, count, -1)
    return points, weight


def test_samples_are_stratified_inside_the_triangles_and_weights_sum_to_l_times_a():
    stage = _stage(d=1.0, a=0.5, p=(0.5, 0.4, 0.1), i=0.3)
    points, weight = sample_lights(stage, 16, torch.Generator().manual_seed(0))
    assert points.shape == weight.shape == (20, 16, 3)
    tri = ls.triangles(stage)
    a, b, c = tri[:, None, 0], tri[:, None, 1], tri[:, None, 2]
    n = torch.linalg.cross(b - a, c - a)
    for p, q in ((a, b), (b, c), (c, a)):
        assert ((torch.linalg.cross(q - p, points - p) * n).sum(-1) >= -1e-12).all()
    assert torch.allclose(weight.sum(1), ls.radiance(stage) * ls.areas(stage)[:, None])
    # invert the square-root warp: each cell of the 4×4 grid holds exactly one sample
    e1, e2, x = b - a, c - a, points - a
    gram = torch.stack([torch.stack([(e1 * e1).sum(-1), (e1 * e2).sum(-1)], -1),
                        torch.stack([(e1 * e2).sum(-1), (e2 * e2).sum(-1)], -1)], -2)
    b12 = torch.linalg.solve(gram, torch.stack([(x * e1).sum(-1), (x * e2).sum(-1)], -1)[..., None])[..., 0]
    root = b12.sum(-1)
    u1, u2 = root ** 2, b12[..., 1] / root
    cells = (u1 * 4).floor() + 4 * (u2 * 4).floor()
    assert torch.equal(cells.sort(-1).values, torch.arange(16, dtype=DT).expand(20, 16))
    again, _ = sample_lights(stage, 16, torch.Generator().manual_seed(0))
    assert torch.equal(points, again)
    other, _ = sample_lights(stage, 16, torch.Generator().manual_seed(1))
    assert not torch.equal(points, other)


def test_sampled_direct_light_estimates_the_delivered_irradiance():
    stage = _stage(d=0.8, a=0.6, p=(0.1, 0.6, 0.3), i=0.9)
    points, weight = sample_lights(stage, 1024, torch.Generator().manual_seed(2))
    to_light = points - stage.centre
    r = to_light.norm(dim=-1)
    cos_l = (-(to_light / r[..., None]) * ls.normals(stage)[:, None]).sum(-1).clamp_min(0)
    receiver = torch.nn.functional.normalize(ls.triangle_centroids(stage) - stage.centre, dim=-1)
    cos_x = ((to_light / r[..., None]) * receiver[:, None]).sum(-1).clamp_min(0)
    estimate = (weight * (cos_x * cos_l / r ** 2)[..., None]).sum(1)
    assert torch.allclose(estimate, torch.full_like(estimate, 0.9), rtol=0.01)


@pytest.mark.parametrize("shape", ["DISK", "SQUARE"])
def test_blender_lights_point_minus_z_at_the_head_with_matching_radiance(shape):
    stage = _stage(d=1.5, a=0.2, p=(0.5, 0.3, 0.2), i=0.0)
    stage.i[4] = torch.tensor([0.9, 0.6, 0.3], dtype=DT)
    stage.i[ls.FRONT] = torch.tensor([0.2, 0.2, 0.2], dtype=DT)
    lights = ls.blender_lights(stage, shape)
    assert [light["name"] for light in lights] == [f"Stage Light {j:02d}" for j in range(1, 21)]
    for light, normal, centre in zip(lights, ls.normals(stage).numpy(), ls.triangle_centroids(stage).numpy()):
        rotation = np.array(light["rotation"])
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12) and np.linalg.det(rotation) == pytest.approx(1)
        assert np.allclose(-rotation[:, 2], normal, atol=1e-12) and np.allclose(light["normal"], normal)
        assert np.allclose(light["position"], centre)
        equal_area = math.pi * (light["size"] / 2) ** 2 if shape == "DISK" else light["size"] ** 2
        assert equal_area == pytest.approx(light["area"]) and light["shape"] == shape
    for j in (4, ls.FRONT):
        lit = lights[j]
        radiance = np.array(lit["color"]) * lit["power_w"] / (math.pi * lit["area"])
        assert np.allclose(radiance, ls.radiance(stage)[j].numpy()) and max(lit["color"]) == pytest.approx(1.0)
    assert lights[0]["power_w"] == 0.0 and lights[0]["color"] == [0.0, 0.0, 0.0]
    from_arrays = ls.blender_lights({k: v.numpy() for k, v in ls.as_dict(stage).items()}, shape)
    assert from_arrays[4]["power_w"] == pytest.approx(lights[4]["power_w"], rel=1e-12)


def test_front_light_faces_the_head_and_stage_works_in_float32():
    stage = ls.default_stage(torch.zeros(3), d=1.0, a=0.3, intensity=1.0)
    assert stage.d.dtype == torch.float32
    assert torch.allclose(ls.normals(stage)[ls.FRONT], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(ls.centroids(stage)[ls.FRONT], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    assert torch.isfinite(ls.radiance(stage)).all() and ls.radiance(stage).dtype == torch.float32
