"""The renderer's light transport against closed forms: Lambert's polygon formula, no self-shadow on a convex
body, the visible fraction behind an occluder, and exact composition of the passes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from test_render import form_factor, maps, quad, seeded, sphere, stage_with  # noqa: E402

from facestage.core.model import camera  # noqa: E402
from facestage.core.model import lightstage  # noqa: E402
from facestage.core.model.camera import pixel_rays  # noqa: E402
from facestage.core.render import RenderOptions, RenderScene, compose, render  # noqa: E402


def _frame(normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(normal[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    u = torch.nn.functional.normalize(torch.linalg.cross(normal, helper), dim=0)
    return u, torch.linalg.cross(normal, u)


def _light_facing_scene(j: int = 3, *, occluder: bool = False, size: int = 8):  # type: ignore[no-untyped-def]
    """Light j of a one-light stage, a large plane through the stage centre facing it, and a camera between
    them; with `occluder`, a square halfway between the plane and the light covering part of the light."""
    stage = stage_with({j: (1.0, 0.8, 0.6)}, d=0.8, a=0.5)
    tri = lightstage.triangles(stage)[j]
    n_light = lightstage.normals(stage)[j]  # towards the centre
    centre = stage.centre
    u, w = _frame(n_light)
    plane = torch.stack([centre + 0.6 * (su * u + sw * w) for su, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    if ((torch.linalg.cross(plane[1] - plane[0], plane[2] - plane[0])) @ n_light) > 0:
        faces = faces.flip(1)
    verts, parts = [plane], [faces]
    square = None
    if occluder:
        mid = centre + 0.5 * (tri.mean(0) - centre)
        side = 0.3 * (tri - tri.mean(0)).norm(dim=-1).max()
        offset = 0.5 * side * u  # covers the light partly: the shadow edge crosses the plane's view
        square = torch.stack([mid + offset + side * (su * u + sw * w)
                              for su, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
        verts.append(square)
        parts.append(faces + 4)
    verts_t, faces_t = torch.cat(verts), torch.cat(parts)
    eye = centre - 0.3 * n_light + 0.05 * u
    K = torch.as_tensor(camera.intrinsics(size * 1.2, size, size), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(eye.numpy(), centre.numpy(), w.numpy()), dtype=torch.float32)
    uvs = torch.rand(faces_t.numel(), 2, generator=seeded())
    diffuse, specular, roughness = maps(albedo=1.0, specular=0.0, roughness=1.0)
    scene = RenderScene(verts_t, faces_t, uvs, torch.arange(faces_t.numel()).reshape(-1, 3), diffuse, specular,
                        roughness, K, wfc, size, size, stage=stage)
    return scene, tri, n_light, square


def _plane_points(scene: RenderScene, n_plane: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Where the pixel-centre rays meet the plane through `centre` with normal n_plane → (H·W, 3)."""
    rows, cols = torch.meshgrid(torch.arange(scene.height, dtype=torch.float32),
                                torch.arange(scene.width, dtype=torch.float32), indexing="ij")
    origin, dirs = pixel_rays(scene.K, scene.world_from_camera, torch.stack([cols + 0.5, rows + 0.5], -1).view(-1, 2))
    t = ((centre - origin) @ n_plane) / (dirs @ n_plane)
    return origin + t[:, None] * dirs


def test_lambertian_plane_irradiance_matches_lamberts_polygon_formula():
    scene, tri, n_light, _ = _light_facing_scene()
    out = render(scene, RenderOptions(jitter=False, light_samples=1024, return_passes=True), seeded())
    points = _plane_points(scene, n_light, scene.stage.centre)
    radiance = lightstage.radiance(scene.stage)[3]
    expected = torch.stack([torch.pi * form_factor(x, -n_light, tri) for x in points]).float()[:, None] * radiance
    got = out.passes["irradiance"].reshape(-1, 3)
    assert (out.alpha == 1).all()
    assert torch.allclose(got, expected, rtol=0.01)
    assert float(expected.std(0).max() / expected.mean(0).max()) > 0.01  # the points see the light differently
    # a white Lambertian surface reflects E/π (the diffuse pass is without albedo, so it is E/π itself)
    assert torch.allclose(out.passes["diffuse"].reshape(-1, 3), got / torch.pi, rtol=0.01)


def test_convex_sphere_casts_no_shadow_on_itself():
    verts, faces = sphere(radius=0.1, subdivisions=4)
    stage = stage_with({0: (1.0, 1.0, 1.0)})
    j = 0
    tri = lightstage.triangles(stage)[j]
    eye_dir = torch.nn.functional.normalize(tri.mean(0) - stage.centre, dim=0)
    K = torch.as_tensor(camera.intrinsics(40.0, 32, 32), dtype=torch.float32)
    eye = stage.centre + 0.5 * eye_dir + torch.tensor([0.2, 0.0, 0.0])
    wfc = torch.as_tensor(camera.look_at(eye.numpy(), stage.centre.numpy(), np.array([0.0, 0.0, 1.0])),
                          dtype=torch.float32)
    diffuse, specular, roughness = maps(albedo=0.8)
    uvs = torch.rand(faces.numel(), 2, generator=seeded())
    scene = RenderScene(verts, faces, uvs, torch.arange(faces.numel()).reshape(-1, 3), diffuse, specular, roughness,
                        K, wfc, 32, 32, stage=stage)
    out = render(scene, RenderOptions(jitter=False, light_samples=16, return_passes=True), seeded())
    normal = out.passes["normal"].reshape(-1, 3)
    point = 0.1 * normal  # the sphere is centred at the origin
    cos = torch.stack([(torch.nn.functional.normalize(corner - point, dim=-1) * normal).sum(-1) for corner in tri])
    fully_lit = (out.alpha.reshape(-1) == 1) & (cos.min(0).values > 0.15)
    assert fully_lit.sum() > 100
    assert torch.equal(out.passes["shadow"].reshape(-1)[fully_lit], torch.ones(int(fully_lit.sum())))


def _visible_fractions(points: torch.Tensor, normal: torch.Tensor, tri: torch.Tensor, n_light: torch.Tensor,
                       square: torch.Tensor, grid: int = 150) -> torch.Tensor:
    """Irradiance-weighted visible fraction (P,) of the light from each point, by midpoint quadrature over
    the triangle (both sub-triangles of every grid cell) and an exact segment/square test."""
    i, k = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                          indexing="ij")
    lower, upper = i + k < grid, i + k < grid - 1
    b1 = torch.cat([((i + 1 / 3) / grid)[lower], ((i + 2 / 3) / grid)[upper]])
    b2 = torch.cat([((k + 1 / 3) / grid)[lower], ((k + 2 / 3) / grid)[upper]])
    tri, x, square = tri.double(), points.double()[:, None], square.double()
    y = tri[0] + b1[:, None] * (tri[1] - tri[0]) + b2[:, None] * (tri[2] - tri[0])
    d = y - x  # (P, N, 3)
    r2 = (d * d).sum(-1)
    ld = d / r2.sqrt()[..., None]
    weight = (ld @ normal.double()).clamp_min(0) * (-(ld @ n_light.double())).clamp_min(0) / r2
    sq_n = torch.nn.functional.normalize(torch.linalg.cross(square[1] - square[0], square[2] - square[0]), dim=0)
    t = ((square[0] - x) @ sq_n) / (d @ sq_n)
    p = x + t[..., None] * d
    inside = torch.ones_like(t, dtype=torch.bool)
    for a, b in zip(square, square.roll(-1, 0)):
        inside &= (torch.linalg.cross((b - a).expand_as(p), p - a) @ sq_n) >= 0
    blocked = inside & (t > 0) & (t < 1)
    return (weight * ~blocked).sum(-1) / weight.sum(-1)


def test_plane_behind_an_occluder_is_darker_by_the_visible_fraction_of_the_light():
    scene, tri, n_light, square = _light_facing_scene(occluder=True)
    out = render(scene, RenderOptions(jitter=False, light_samples=1024, return_passes=True), seeded())
    on_plane = out.passes["face_id"].reshape(-1) < 2
    points = _plane_points(scene, n_light, scene.stage.centre)
    shadow = out.passes["shadow"].reshape(-1)
    expected = _visible_fractions(points, -n_light, tri, n_light, square)
    assert on_plane.sum() > 20
    got, want = shadow[on_plane], expected[on_plane].float()
    assert want.min() < 0.3 and want.max() > 0.5  # a penumbra across the view, not all-or-nothing
    assert torch.allclose(got, want, atol=0.02)
    free = render(_light_facing_scene()[0], RenderOptions(jitter=False, light_samples=1024, return_passes=True),
                  seeded()).passes["irradiance"].reshape(-1, 3)
    ratio = out.passes["irradiance"].reshape(-1, 3)[on_plane] / free[on_plane]
    assert torch.allclose(ratio, want[:, None].expand_as(ratio), atol=0.02)


def test_passes_compose_to_the_image():
    verts, faces = sphere(radius=0.08)
    plane, plane_faces, _ = quad(half=0.3, centre=(0.0, 0.15, 0.0))
    verts_all = torch.cat([verts, plane])
    faces_all = torch.cat([faces, plane_faces + verts.shape[0]])
    stage = stage_with({2: (1.5, 1.2, 1.0), 7: (0.4, 0.5, 0.6)})
    sh = torch.zeros(3, 9)
    sh[:, 0], sh[:, 2] = 0.5, 0.2
    diffuse, specular, roughness = maps(size=16, seed=4)
    specular = torch.rand(16, 16, 1, generator=seeded(5))
    roughness = 0.2 + 0.6 * torch.rand(16, 16, 1, generator=seeded(6))
    K = torch.as_tensor(camera.intrinsics(40.0, 32, 24), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(np.array([0.1, -0.5, 0.1]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                          dtype=torch.float32)
    uvs = torch.rand(faces_all.numel(), 2, generator=seeded(7))
    background = torch.rand(24, 32, 3, generator=seeded(8))
    scene = RenderScene(verts_all, faces_all, uvs, torch.arange(faces_all.numel()).reshape(-1, 3), diffuse, specular,
                        roughness, K, wfc, 32, 24, sh=sh, stage=stage, background=background)
    out = render(scene, RenderOptions(spp=4, light_samples=2, return_passes=True), seeded())
    partial = (out.alpha > 0) & (out.alpha < 1)
    assert partial.sum() > 10  # antialiased silhouettes are part of the check
    assert torch.allclose(compose(out.passes, out.alpha, background), out.image, atol=1e-5)
