"""The Warp BVH answers exactly what a brute-force Möller–Trumbore over every triangle answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from facestage.core.render.raytrace import Bvh, reference_intersect

sys.path.insert(0, str(Path(__file__).parent))
from test_render import sphere  # noqa: E402


def _random_mesh(seed: int, triangles: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """A soup of small random triangles in the unit cube (overlaps and all)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(triangles, 1, 3, generator=g)
    verts = (centres + 0.12 * torch.randn(triangles, 3, 3, generator=g)).reshape(-1, 3)
    faces = torch.arange(3 * triangles).reshape(triangles, 3)
    return verts, faces


def _random_rays(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    origins = torch.rand(n, 3, generator=g) * 3 - 1
    targets = torch.rand(n, 3, generator=g)
    return origins, targets - origins


def test_warp_closest_hits_match_brute_force_reference():
    verts, faces = _random_mesh(0)
    origins, dirs = _random_rays(1, 10_000)
    got = Bvh(verts, faces).intersect(origins, dirs)
    ref = reference_intersect(verts, faces, origins, dirs)
    assert 2000 < int(ref.hit.sum()) < 9000  # a fair mix of hits and misses
    assert torch.equal(got.hit, ref.hit)
    assert torch.equal(got.face, ref.face)
    assert torch.isinf(got.t[~ref.hit]).all()
    # float32 vs float64: compare where the hit is well conditioned (not grazing, |cos| > 0.1)
    tri = verts[faces[ref.face.clamp_min(0)]].double()
    normal = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1)
    cos = (normal * torch.nn.functional.normalize(dirs.double(), dim=-1)).sum(-1).abs()
    hit = ref.hit & (cos > 0.1)
    assert int(hit.sum()) > 0.9 * int(ref.hit.sum())
    assert torch.allclose(got.t[hit].double(), ref.t[hit], atol=1e-5, rtol=0)
    assert torch.allclose(got.bary[hit].double(), ref.bary[hit], atol=1e-5, rtol=0)


def test_hit_point_is_the_documented_barycentric_combination():
    verts, faces = _random_mesh(2, 50)
    origins, dirs = _random_rays(3, 2000)
    hits = Bvh(verts, faces).intersect(origins, dirs)
    tri = verts[faces[hits.face[hits.hit]]]
    b1, b2 = hits.bary[hits.hit].unbind(-1)
    point = (1 - b1 - b2)[:, None] * tri[:, 0] + b1[:, None] * tri[:, 1] + b2[:, None] * tri[:, 2]
    unit = torch.nn.functional.normalize(dirs[hits.hit], dim=-1)
    assert torch.allclose(point, origins[hits.hit] + hits.t[hits.hit, None] * unit, atol=1e-5)


def test_t_max_cuts_hits_beyond_it():
    verts, faces = _random_mesh(4)
    origins, dirs = _random_rays(5, 5000)
    bvh = Bvh(verts, faces)
    full = bvh.intersect(origins, dirs)
    t_max = full.t.nan_to_num(posinf=10.0).median()
    cut = bvh.intersect(origins, dirs, float(t_max))
    assert torch.equal(cut.hit, full.hit & (full.t < t_max))
    per_ray = bvh.intersect(origins, dirs, torch.full((5000,), float(t_max)))
    assert torch.equal(per_ray.face, cut.face)


def test_occluded_matches_reference_any_hit():
    verts, faces = _random_mesh(6)
    origins, dirs = _random_rays(7, 10_000)
    g = torch.Generator().manual_seed(8)
    t_max = torch.rand(10_000, generator=g) * 2
    ref = reference_intersect(verts, faces, origins, dirs)
    blocked = Bvh(verts, faces).occluded(origins, dirs, t_max)
    expected = ref.t < t_max.double()
    near_tie = (ref.t - t_max.double()).abs() < 1e-5
    assert torch.equal(blocked[~near_tie], expected[~near_tie])
    assert 1000 < int(expected.sum()) < 9000  # some blocked, most not


def test_segments_from_a_convex_surface_to_outside_points_are_never_blocked():
    verts, faces = sphere(radius=1.0, subdivisions=3)
    normals = verts  # unit sphere
    g = torch.Generator().manual_seed(9)
    ends = verts[:, None] + 0.5 * torch.nn.functional.normalize(
        verts[:, None] + 0.6 * torch.randn(verts.shape[0], 8, 3, generator=g), dim=-1)
    outward = ((ends - verts[:, None]) * normals[:, None]).sum(-1) > 0.05
    blocked = Bvh(verts, faces).segments_occluded(verts, normals, ends)
    assert not blocked[outward].any()
    through = -2.5 * verts[:, None]  # straight through the sphere to the far side
    assert Bvh(verts, faces).segments_occluded(verts, normals, through).all()


def test_refit_follows_moved_vertices():
    verts, faces = _random_mesh(10)
    origins, dirs = _random_rays(11, 4000)
    bvh = Bvh(verts, faces)
    moved = verts * 1.3 + torch.tensor([0.2, -0.1, 0.05])
    bvh.refit(moved)
    got = bvh.intersect(origins, dirs)
    ref = reference_intersect(moved, faces, origins, dirs)
    assert torch.equal(got.face, ref.face)
    assert torch.allclose(got.t[ref.hit].double(), ref.t[ref.hit], atol=1e-5, rtol=0)
    assert torch.equal(bvh.verts, moved)


def test_unpacks_as_hit_face_t_bary():
    verts, faces = _random_mesh(12, 20)
    hit, face, t, bary = Bvh(verts, faces).intersect(torch.zeros(3), torch.tensor([[1.0, 1.0, 1.0]]))
    assert hit.dtype == torch.bool and face.dtype == torch.long and bary.shape == (1, 2) and t.shape == (1,)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_hits_match_cpu_hits():
    verts, faces = _random_mesh(13)
    origins, dirs = _random_rays(14, 10_000)
    cpu = Bvh(verts, faces).intersect(origins, dirs)
    gpu = Bvh(verts.cuda(), faces.cuda()).intersect(origins.cuda(), dirs.cuda())
    assert torch.equal(gpu.face.cpu(), cpu.face)
    assert torch.allclose(gpu.t.cpu()[cpu.hit], cpu.t[cpu.hit], atol=1e-5)
    blocked = Bvh(verts.cuda(), faces.cuda()).occluded(origins.cuda(), dirs.cuda(), torch.ones(10_000).cuda())
    assert torch.equal(blocked.cpu(), Bvh(verts, faces).occluded(origins, dirs, torch.ones(10_000)))
