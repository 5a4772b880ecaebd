"""The renderer: determinism, conventions (camera rays, texel mapping, SH ambient), backends, gradients, devices.

Also home of the small scene builders the other render tests import (quad, sphere, one-light stage).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facestage.core.common.errors import FaceStageError
from facestage.core.model import camera, lightstage
from facestage.core.model.camera import pixel_rays
from facestage.core.model.head import vertex_normals
from facestage.core.render import PASSES, RenderOptions, RenderScene, compose, render
from facestage.core.render.raytrace import Bvh
from facestage.core.render.renderer import _cosine_directions

BACKGROUND = (0.1, 0.2, 0.3)


def quad(half: float = 0.0625, centre=(0.0, 0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A square in the plane y = centre_y facing −Y (towards a camera on −Y), UVs covering [0, 1]²."""
    verts = torch.tensor([[-1.0, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]]) * half + torch.tensor(centre)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    uvs = torch.tensor([[0.0, 0.0], [1, 0], [1, 1], [0, 1]])
    return verts, faces, uvs


def sphere(radius: float = 0.1, subdivisions: int = 3, centre=(0.0, 0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """An icosphere (convex, closed, outward winding)."""
    t = (1 + math.sqrt(5)) / 2
    base = torch.tensor([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
                         [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=torch.float64)
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
             [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11],
             [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    vs = [v / v.norm() for v in base]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = vs[a] + vs[b]
                vs.append(m / m.norm())
                cache[key] = len(vs) - 1
            return cache[key]

        faces = [f for a, b, c in faces for f in
                 ([a, mid(a, b), mid(c, a)], [b, mid(b, c), mid(a, b)], [c, mid(c, a), mid(b, c)],
                  [mid(a, b), mid(b, c), mid(c, a)])]
    verts = torch.stack(vs).float() * radius + torch.tensor(centre)
    return verts, torch.tensor(faces)


def face_varying_uvs(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical-ish UVs from directions, one UV per corner (seams allowed)."""
    d = torch.nn.functional.normalize(verts.detach() - verts.detach().mean(0), dim=-1)
    uv = torch.stack([0.5 + torch.atan2(d[:, 0], -d[:, 1]) / (2 * math.pi), 0.5 + d[:, 2].asin() / math.pi], -1)
    return uv[faces.reshape(-1)], torch.arange(faces.numel()).reshape(faces.shape)


def maps(size: int = 8, seed: int = 0, albedo: float | None = None, specular: float = 0.5,
         roughness: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    diffuse = torch.full((size, size, 3), albedo) if albedo is not None else 0.2 + 0.6 * torch.rand(
        size, size, 3, generator=g)
    return diffuse, torch.full((size, size, 1), specular), torch.full((size, size, 1), roughness)


def front_camera(width: int, height: int, focal: float, distance: float = 0.5):  # type: ignore[no-untyped-def]
    """A camera on −Y looking at the origin (+X right, +Z up in the image)."""
    K = torch.as_tensor(camera.intrinsics(focal, width, height), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(np.array([0.0, -distance, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                          dtype=torch.float32)
    return K, wfc


def stage_with(lit: dict[int, tuple[float, float, float]], centre=(0.0, 0.0, 0.0), d: float = 1.0,
               a: float = 0.3):  # type: ignore[no-untyped-def]
    """The default stage around `centre` with all lights off except `lit` {index: rgb i}."""
    stage = lightstage.default_stage(torch.tensor(centre, dtype=torch.float32))
    i = torch.zeros(20, 3)
    for j, rgb in lit.items():
        i[j] = torch.tensor(rgb)
    return lightstage.LightStage(d=torch.full((20,), d), a=torch.full((20,), a), p=torch.full((20, 3), 1 / 3),
                                 i=i, centre=stage.centre.float())


def facing_light(stage, direction, exclude=()) -> int:  # type: ignore[no-untyped-def]
    """Index of the stage light (not in `exclude`) whose centroid is closest to `direction` from the centre."""
    c = lightstage.centroids(stage) - stage.centre
    score = torch.nn.functional.normalize(c, dim=-1) @ torch.nn.functional.normalize(
        torch.as_tensor(direction, dtype=torch.float32), dim=0)
    score[list(exclude)] = -2.0
    return int(score.argmax())


def scene_of(verts, faces, uvs=None, face_uvs=None, *, size=(32, 32), focal=60.0, distance=0.5, sh=None,
             stage=None, textures=None, background=BACKGROUND) -> RenderScene:  # type: ignore[no-untyped-def]
    if uvs is None:
        uvs, face_uvs = face_varying_uvs(verts, faces)
    elif face_uvs is None:
        face_uvs = faces
    K, wfc = front_camera(size[0], size[1], focal, distance)
    diffuse, specular, roughness = textures if textures is not None else maps()
    bg = torch.tensor(background) if background is not None and not isinstance(background, torch.Tensor) \
        else background
    return RenderScene(verts, faces, uvs, face_uvs, diffuse, specular, roughness, K, wfc, size[0], size[1],
                       sh=sh, stage=stage, background=bg)


def constant_sh(value: float = 1.0) -> torch.Tensor:
    sh = torch.zeros(3, 9)
    sh[:, 0] = value * 2 * math.sqrt(math.pi)  # radiance L = c·Y_00 = value
    return sh


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- conventions ---------------------------------------------------------------------------------------


def test_pixel_rays_invert_camera_projection():
    K, wfc = front_camera(40, 30, 50.0)
    wfc = wfc.clone()
    wfc[:3, 3] += torch.tensor([0.05, 0.0, -0.02])
    pixels = torch.rand(500, 2, generator=seeded()) * torch.tensor([40.0, 30.0])
    origin, dirs = pixel_rays(K, wfc, pixels)
    points = origin + dirs * torch.linspace(0.3, 2.0, 500)[:, None]
    uv, depth = camera.project(points, K, wfc)
    assert torch.allclose(uv, pixels, atol=1e-3)
    assert (depth > 0).all()


def test_texture_lookup_uses_the_texel_convention():
    """A quad filling the image exactly, UVs [0,1]²: pixel (r, c) sees texel (r, c) of an equal-size map."""
    size = 16
    verts, faces, uvs = quad(half=0.5)
    texture = torch.rand(size, size, 3, generator=seeded(3))
    K, wfc = front_camera(size, size, focal=size / 2, distance=0.5)  # the quad spans the image
    sh = constant_sh(1.0)
    scene = RenderScene(verts, faces, uvs, faces, texture, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), K, wfc,
                        size, size, sh=sh)
    out = render(scene, RenderOptions(jitter=False, edge_sampling=False, return_passes=True), seeded())
    assert torch.allclose(out.passes["albedo"], texture, atol=1e-5)
    assert torch.allclose(out.alpha, torch.ones(size, size))


def test_constant_environment_gives_albedo_times_radiance():
    """Lambert under a uniform environment of radiance L: outgoing radiance ρ·L on every visible point."""
    verts, faces = sphere()
    textures = maps(albedo=0.6, specular=0.0)
    scene = scene_of(verts, faces, sh=constant_sh(0.7), textures=textures, background=(0.0, 0.0, 0.0))
    out = render(scene, RenderOptions(jitter=False, return_passes=True), seeded())
    covered = out.alpha == 1
    assert covered.sum() > 100
    assert torch.allclose(out.passes["ambient"][covered], torch.full_like(out.passes["ambient"][covered], 0.7),
                          rtol=1e-3)
    assert torch.allclose(out.image[covered], torch.full_like(out.image[covered], 0.42), rtol=1e-3)


def test_background_where_nothing_is_hit():
    verts, faces = sphere(radius=0.05)
    scene = scene_of(verts, faces, sh=constant_sh(0.5))
    out = render(scene, RenderOptions(spp=4), seeded())
    empty = out.alpha == 0
    assert empty.sum() > 500
    assert torch.allclose(out.image[empty], torch.tensor(BACKGROUND).expand(int(empty.sum()), 3))
    image_bg = torch.rand(32, 32, 3, generator=seeded(1))
    scene.background = image_bg
    out = render(scene, RenderOptions(spp=4), seeded())
    empty = out.alpha == 0
    assert torch.allclose(out.image[empty], image_bg[empty])


def test_an_image_world_with_no_surface_in_view_renders_the_background():
    """`facestage relight --rig` with a world crashed on the tiles above and below the head (nothing hit: the
    world's importance sampling was asked for zero directions)."""
    verts, faces = sphere(radius=0.05)
    scene = scene_of(verts + torch.tensor([100.0, 0.0, 0.0], dtype=verts.dtype), faces, sh=constant_sh(0.0))
    scene.environment = torch.full((4, 8, 3), 0.5)
    out = render(scene, RenderOptions(spp=4), seeded())
    assert out.alpha.sum() == 0
    assert torch.allclose(out.image, torch.tensor(BACKGROUND).expand_as(out.image))


# --- determinism, passes, options ---------------------------------------------------------------------------------


def _lit_sphere_scene(requires_grad: bool = False) -> RenderScene:
    verts, faces = sphere()
    stage = stage_with({0: (1.0, 0.9, 0.8)})
    j = facing_light(stage, (0.4, -1.0, 0.5))
    stage = stage_with({j: (2.0, 1.8, 1.6)})
    scene = scene_of(verts, faces, sh=constant_sh(0.1), stage=stage)
    if requires_grad:
        scene.verts = scene.verts.clone().requires_grad_()
    return scene


def test_same_seed_same_image_other_seed_other_noise():
    scene = _lit_sphere_scene()
    a = render(scene, RenderOptions(), seeded(5)).image
    b = render(scene, RenderOptions(), seeded(5)).image
    c = render(scene, RenderOptions(), seeded(6)).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert abs(float(a.mean() - c.mean())) < 0.02 * float(a.mean())  # same estimate, other noise


def test_all_passes_are_returned_with_their_shapes():
    out = render(_lit_sphere_scene(), RenderOptions(spp=2, return_passes=True), seeded())
    assert set(out.passes) == set(PASSES)
    for name in ("albedo", "diffuse", "ambient", "specular", "irradiance", "normal"):
        assert out.passes[name].shape == (32, 32, 3)
    assert out.passes["shadow"].shape == (32, 32) and out.passes["face_id"].dtype == torch.long
    assert ((out.passes["face_id"] >= 0) == (out.alpha > 0)).float().mean() > 0.97


def test_warp_and_torch_backends_agree_in_values_and_gradients():
    results = []
    for backend in ("warp", "torch"):
        scene = _lit_sphere_scene(requires_grad=True)
        scene.diffuse.requires_grad_()
        scene.roughness.requires_grad_()
        scene.stage.i.requires_grad_()
        scene.stage.d.requires_grad_()
        out = render(scene, RenderOptions(spp=2, light_samples=4, backend=backend), seeded())
        (out.image * torch.tensor([0.3, 0.5, 0.2])).sum().backward()
        results.append((out.image.detach(), scene.verts.grad, scene.diffuse.grad, scene.roughness.grad,
                        scene.stage.i.grad, scene.stage.d.grad))
    for warp_value, torch_value in zip(*results):
        assert torch.allclose(warp_value, torch_value, rtol=1e-4, atol=1e-5 * float(torch_value.abs().max()))


def test_gradients_reach_every_parameter():
    scene = _lit_sphere_scene(requires_grad=True)
    scene.K = scene.K.clone().requires_grad_()
    scene.world_from_camera = scene.world_from_camera.clone().requires_grad_()
    for name in ("diffuse", "specular", "roughness", "sh"):
        setattr(scene, name, getattr(scene, name).clone().requires_grad_())
    for name in ("d", "a", "p", "i"):
        getattr(scene.stage, name).requires_grad_()
    out = render(scene, RenderOptions(spp=2), seeded())
    (out.image.sum() + out.alpha.sum()).backward()
    tensors = [scene.verts, scene.K, scene.world_from_camera, scene.diffuse, scene.specular, scene.roughness,
               scene.sh, scene.stage.d, scene.stage.a, scene.stage.p, scene.stage.i]
    for t in tensors:
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_a_second_bounce_only_adds_light_and_mostly_in_concave_places():
    """Two quads meeting at a right angle: with bounces=2 the inner corner brightens, nothing darkens."""
    floor = torch.tensor([[-0.1, -0.1, -0.05], [0.1, -0.1, -0.05], [0.1, 0.1, -0.05], [-0.1, 0.1, -0.05]])
    wall = torch.tensor([[-0.1, 0.1, -0.05], [0.1, 0.1, -0.05], [0.1, 0.1, 0.15], [-0.1, 0.1, 0.15]])
    verts = torch.cat([floor, wall])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    stage = stage_with({0: (1.0, 1.0, 1.0)})
    j = facing_light(stage, (0.0, -0.6, 1.0))
    stage = stage_with({j: (3.0, 3.0, 3.0)}, a=0.6)
    scene = scene_of(verts, faces, stage=stage, textures=maps(albedo=0.8, specular=0.0), background=(0, 0, 0))
    one = render(scene, RenderOptions(spp=16, light_samples=4), seeded()).image
    two = render(scene, RenderOptions(spp=16, light_samples=4, bounces=2), seeded()).image
    gain = (two - one).sum(-1)
    assert (gain > -1e-6).all()
    assert gain.sum() > 0.02 * one.sum()


def form_factor(point: torch.Tensor, normal: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Point-to-polygon form factor by Lambert's formula, F = |Σ β_i n·γ_i| / 2π (polygon (P, 3) wholly above
    the point's tangent plane); a uniform polygon of radiance L gives irradiance E = π·L·F."""
    a = torch.nn.functional.normalize(polygon.double() - point.double(), dim=-1)
    b = a.roll(-1, 0)
    beta = (a * b).sum(-1).clamp(-1, 1).acos()
    gamma = torch.nn.functional.normalize(torch.linalg.cross(a, b), dim=-1)
    return (beta * (gamma @ normal.double())).sum().abs() / (2 * math.pi)


def vertex_ambient_occlusion(verts: torch.Tensor, faces: torch.Tensor, samples: int = 64,
                             generator: torch.Generator | None = None, bvh: Bvh | None = None,
                             eps: float = 1e-4) -> torch.Tensor:
    """Per-vertex unoccluded fraction (V,) of the cosine-weighted hemisphere, by ray casting
    (not differentiable); scales the SH ambient when given as RenderScene.ambient_occlusion."""
    with torch.no_grad():
        faces = faces.long()
        bvh = bvh or Bvh(verts, faces)
        normals = vertex_normals(verts.detach(), faces)
        v = verts.shape[0]
        dirs = _cosine_directions(normals.repeat_interleave(samples, 0), generator)
        blocked = bvh.segments_occluded(verts.detach(), normals,
                                        (verts.detach().repeat_interleave(samples, 0) + 1e3 * dirs).view(v, samples, 3),
                                        eps)
        return 1 - blocked.float().mean(-1).to(verts.dtype)


def test_ambient_occlusion_is_one_in_the_open_and_one_minus_the_wall_form_factor_beside_a_wall():
    floor = torch.tensor([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [-0.1, 0.1, 0.0], [0.0, 0.0, 0.0]])
    faces = torch.tensor([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    ao = vertex_ambient_occlusion(floor, faces, samples=64, generator=seeded())
    assert torch.allclose(ao, torch.ones(5))
    wall = torch.tensor([[0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [0.1, 0.1, 0.2], [0.1, -0.1, 0.2]])
    verts = torch.cat([floor, wall[2:]])
    walled = torch.cat([faces, torch.tensor([[1, 2, 5], [1, 5, 6]])])
    ao = vertex_ambient_occlusion(verts, walled, samples=4096, generator=seeded())
    expected = 1 - form_factor(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), wall)
    assert abs(float(ao[4]) - float(expected)) < 0.02  # MC with 4096 rays: σ ≈ 0.006
    assert float(expected) < 0.9


def test_a_reused_bvh_is_refitted_to_the_scene():
    scene = _lit_sphere_scene()
    bvh = Bvh(scene.verts, scene.faces)
    moved = scene.verts + torch.tensor([0.03, 0.0, 0.0])
    scene.verts = moved
    fresh = render(scene, RenderOptions(), seeded()).image
    reused = render(scene, RenderOptions(), seeded(), bvh=bvh).image
    assert torch.equal(fresh, reused)


def test_a_pixel_mask_shades_only_its_pixels_with_the_same_values_and_gradients():
    """The fit's loss reads the skin mask only (under two fifths of the head's pixels), so its renders shade only
    there (render's pixel_mask). Under the SH's closed form with rays through pixel centres the render is exact: the
    masked pixels and the gradient of a loss over them are the full render's; the rest keep their alpha and get
    no radiance (background where nothing is hit)."""
    verts, faces = sphere()

    def rendered(mask):  # type: ignore[no-untyped-def]
        scene = scene_of(verts, faces, sh=constant_sh(0.7), textures=maps(albedo=0.6))
        scene.diffuse = scene.diffuse.clone().requires_grad_()
        scene.sh = scene.sh.clone().requires_grad_()
        out = render(scene, RenderOptions(jitter=False, edge_sampling=False), seeded(), pixel_mask=mask)
        (out.image * keep[..., None]).sum().backward()
        return out, scene.diffuse.grad, scene.sh.grad

    keep = torch.zeros(32, 32, dtype=torch.bool)
    keep[8:20, 6:26] = True
    full, masked = rendered(None), rendered(keep)
    assert torch.equal(full[0].alpha, masked[0].alpha) and int((masked[0].alpha[keep] > 0).sum()) > 150
    assert torch.allclose(full[0].image[keep], masked[0].image[keep])
    hit_outside = (masked[0].alpha > 0) & ~keep
    assert int(hit_outside.sum()) > 100 and float(masked[0].image[hit_outside].abs().max()) == 0.0
    assert float(full[0].image[hit_outside].min()) > 0.1
    for a, b in zip(full[1:], masked[1:]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(a.abs().max())) and float(a.abs().sum()) > 0  # sums in float32
    with pytest.raises(FaceStageError):
        render(scene_of(verts, faces, sh=constant_sh(0.7)), RenderOptions(return_passes=True), seeded(), pixel_mask=keep)


def test_compose_is_the_documented_rule():
    passes = {name: torch.rand(4, 5, 3, generator=seeded(k)) for k, name in
              enumerate(("albedo", "diffuse", "ambient", "specular"))}
    alpha = torch.rand(4, 5, generator=seeded(9))
    bg = torch.tensor([0.2, 0.1, 0.0])
    expected = alpha[..., None] * (passes["albedo"] * (passes["diffuse"] + passes["ambient"]) + passes["specular"]) \
        + (1 - alpha[..., None]) * bg
    assert torch.allclose(compose(passes, alpha, bg), expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_render_matches_cpu_render():
    scene = _lit_sphere_scene(requires_grad=True)
    out = render(scene, RenderOptions(spp=4, light_samples=4), seeded())
    out.image.sum().backward()
    cpu_image, cpu_grad = out.image.detach(), scene.verts.grad

    gpu = _lit_sphere_scene()
    for name in ("verts", "faces", "uvs", "face_uvs", "diffuse", "specular", "roughness", "K", "world_from_camera",
                 "sh", "background"):
        setattr(gpu, name, getattr(gpu, name).cuda())
    gpu.verts.requires_grad_()
    gpu.stage = lightstage.LightStage(**{k: getattr(gpu.stage, k).cuda() for k in ("d", "a", "p", "i", "centre")})
    out = render(gpu, RenderOptions(spp=4, light_samples=4), seeded())  # CPU generator: same random numbers
    out.image.sum().backward()
    assert torch.allclose(out.image.detach().cpu(), cpu_image, atol=1e-4)
    assert torch.allclose(gpu.verts.grad.cpu(), cpu_grad, rtol=1e-2, atol=1e-3 * float(cpu_grad.abs().max()))
