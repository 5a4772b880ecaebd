"""Gradients of an image loss against central finite differences: edge sampling carries the silhouette term.

Finite differences use high-spp stratified renders with the same seed on both sides (correlated samples), so
they differentiate the pixel integrals themselves. Test geometry keeps silhouettes away from pixel borders:
the box-filtered loss has a kink whenever an edge crosses one, and a difference step must not straddle it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from test_render import constant_sh, facing_light, maps, quad, scene_of, seeded, sphere, stage_with  # noqa: E402

from facestage.core.model import camera  # noqa: E402
from facestage.core.render.edges import edge_topology, silhouette_edges  # noqa: E402
from facestage.core.model.head import load_head_model  # noqa: E402
from facestage.core.render import RenderOptions, RenderScene, render  # noqa: E402

FD_OPTIONS = RenderOptions(spp=256, edge_sampling=False)  # 16×16 stratified samples per pixel


def _loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (image - target).square().sum()


def _gradient_and_fd(make, theta0: torch.Tensor, target: torch.Tensor,  # type: ignore[no-untyped-def]
                     h: float | list[float],
                     options: RenderOptions, seed: int = 1, keep: list[int] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(edge-sampled gradient, gradient without edge sampling, central difference) of the loss w.r.t. the
    components `keep` (default all) of θ, a small vector, with steps h (one, or one per component);
    make(θ) → RenderScene."""
    keep = list(range(theta0.numel())) if keep is None else keep
    steps = h if isinstance(h, list) else [h] * theta0.numel()
    grads = []
    for edges in (True, False):
        theta = theta0.clone().requires_grad_()
        opts = RenderOptions(**{**options.__dict__, "edge_sampling": edges})
        _loss(render(make(theta), opts, seeded(seed)).image, target).backward()
        grads.append(theta.grad[keep])
    fd = torch.zeros_like(theta0)
    for k in keep:
        e = torch.zeros_like(theta0)
        e.view(-1)[k] = steps[k]
        with torch.no_grad():
            up = _loss(render(make(theta0 + e), FD_OPTIONS, seeded(2)).image, target)
            down = _loss(render(make(theta0 - e), FD_OPTIONS, seeded(2)).image, target)
        fd.view(-1)[k] = (up - down) / (2 * steps[k])
    return grads[0], grads[1], fd[keep]


def _quad_scene(textured: bool):  # type: ignore[no-untyped-def]
    """A 12×12 px square (edges at pixel centres ±0.5 px off) on a coloured background, SH light only."""
    verts, faces, uvs = quad(half=0.0625)  # 60 px/m·0.5 m → ±7.5 px about the centre: edges at x = 8.5, 23.5
    textures = maps(seed=3) if textured else maps(albedo=0.8)

    def make(shift: torch.Tensor) -> RenderScene:
        return scene_of(verts + shift, faces, uvs, textures=textures, sh=constant_sh(1.0))

    return make


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("textured", [False, True], ids=["constant", "textured"])
def test_edge_sampling_gradient_of_a_moving_quad_matches_finite_differences(textured: bool):
    make = _quad_scene(textured=textured)
    target = render(make(torch.tensor([0.013, 0.0, 0.007])), RenderOptions(spp=16, edge_sampling=False),
                    seeded(0)).image
    # x and z move the square across the image (y, the depth, barely changes the loss)
    edge, plain, fd = _gradient_and_fd(make, torch.zeros(3), target, 1e-3, RenderOptions(spp=64, edge_samples=20000),
                                       keep=[0, 2])
    assert _relative_error(edge, fd) < 0.1
    if textured:
        assert _relative_error(plain, fd) > 0.3  # the texture term alone is far off
    else:
        assert fd.abs().min() > 50
        assert plain.abs().max() < 1e-6 * fd.abs().max()  # without edges: no signal at all


def test_edge_sampling_gradient_of_a_lit_sphere_matches_finite_differences():
    verts, faces = sphere(radius=0.1, subdivisions=3)
    stage = stage_with({0: (1.0, 1.0, 1.0)})
    j = facing_light(stage, (0.5, -1.0, 0.6))
    stage = stage_with({j: (2.0, 1.8, 1.6)})

    def make(shift: torch.Tensor) -> RenderScene:
        return scene_of(verts + shift, faces, sh=constant_sh(0.2), stage=stage, focal=70.0)

    target = render(make(torch.tensor([0.01, 0.0, -0.008])), RenderOptions(spp=16, light_samples=4,
                                                                         edge_sampling=False), seeded(0)).image
    edge, plain, fd = _gradient_and_fd(make, torch.zeros(3), target, 1e-3,
                                       RenderOptions(spp=16, light_samples=2, edge_samples=20000), keep=[0, 2])
    assert _relative_error(edge, fd) < 0.1
    assert _relative_error(plain, fd) > 0.3


def _yaw(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([torch.stack([c, -s, zero]), torch.stack([s, c, zero]), torch.stack([zero, zero, one])])


def test_edge_sampling_gradient_of_a_turning_head_matches_finite_differences():
    model = load_head_model()
    verts, faces = model.vertices, model.faces
    g = seeded(4)
    # A coarse albedo keeps the interior (texture-sliding) gradient small: the silhouette carries the signal.
    textures = (0.3 + 0.5 * torch.rand(4, 4, 3, generator=g), torch.full((16, 16, 1), 0.5),
                torch.full((16, 16, 1), 0.5))
    sh = constant_sh(0.8)
    sh[:, 1], sh[:, 3] = 0.3, -0.4  # some shading variation over the face

    def make(theta: torch.Tensor) -> RenderScene:
        return scene_of(verts @ _yaw(theta[0]).T, faces, model.uvs, model.face_uvs, size=(40, 40), focal=80.0,
                        distance=0.6, sh=sh, textures=textures)

    target = render(make(torch.tensor([math.radians(4.0)])), RenderOptions(spp=16, edge_sampling=False),
                    seeded(0)).image
    edge, plain, fd = _gradient_and_fd(make, torch.zeros(1), target, math.radians(0.3),
                                       RenderOptions(spp=64, edge_samples=40000))
    assert _relative_error(edge, fd) < 0.1
    assert _relative_error(plain, fd) > 0.3


def test_edge_sampling_reaches_the_camera():
    """Moving the camera right is moving the square left; the focal length scales it (K gradient)."""
    verts, faces, uvs = quad(half=0.0625)

    def make(theta: torch.Tensor) -> RenderScene:
        scene = scene_of(verts, faces, uvs, textures=maps(albedo=0.8), sh=constant_sh(1.0))
        wfc = scene.world_from_camera.clone()
        wfc[0, 3] = wfc[0, 3] + theta[0]
        K = scene.K.clone()
        K[0, 0] = K[0, 0] + theta[1]
        K[1, 1] = K[1, 1] + theta[1]
        scene.world_from_camera, scene.K = wfc, K
        return scene

    target = render(make(torch.tensor([-0.01, 4.0])), RenderOptions(spp=16, edge_sampling=False), seeded(0)).image
    edge, plain, fd = _gradient_and_fd(make, torch.zeros(2), target, [1e-3, 0.2],  # metres, pixels
                                       RenderOptions(spp=64, edge_samples=20000))
    assert ((edge - fd).abs() / fd.abs()).max() < 0.1
    assert plain.abs().max() < 1e-6 * fd.abs().max()


def test_silhouette_edges_are_boundaries_and_front_back_folds():
    verts, faces = sphere(radius=0.1, subdivisions=2)
    topo = edge_topology(faces)
    assert topo.edges.shape[0] == faces.shape[0] * 3 // 2 and (topo.edge_faces >= 0).all()  # closed: no boundary
    eye = torch.tensor([0.0, -0.5, 0.0])
    sil = silhouette_edges(verts, faces, topo, eye)
    mid = verts[topo.edges[sil]].mean(1)
    # silhouette edges of a sphere seen from the eye lie near the tangent cone: view ray ⟂ normal
    cos = (torch.nn.functional.normalize(mid, dim=-1) * torch.nn.functional.normalize(mid - eye, dim=-1)).sum(-1)
    assert cos.abs().max() < 0.2 and sil.numel() > 20
    _, qfaces, _ = quad()
    assert silhouette_edges(quad()[0], qfaces, edge_topology(qfaces), eye).numel() == 4  # boundary only


# --- interior terms: no visibility change, so plain autograd must match (5 %) ---------------------------------


def _fd(loss_of, params: dict[str, torch.Tensor], name: str, index: tuple[int, ...], h: float) -> float:
    values = []
    for sign in (1, -1):
        shifted = {k: v.clone() for k, v in params.items()}
        shifted[name][index] += sign * h
        with torch.no_grad():
            values.append(float(loss_of(shifted)))
    return (values[0] - values[1]) / (2 * h)


def _check_interior(loss_of, params: dict[str, torch.Tensor],  # type: ignore[no-untyped-def]
                    probes: list[tuple[str, tuple[int, ...], float]]) -> None:
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    loss_of(leaves).backward()
    for name, index, h in probes:
        fd = _fd(loss_of, params, name, index, h)
        grad = float(leaves[name].grad[index])
        assert abs(fd) > 1e-3, (name, index)
        assert abs(grad - fd) < 0.05 * abs(fd), (name, index, grad, fd)


def test_light_and_material_gradients_match_finite_differences():
    """A plane filling the view under one stage light (no silhouette, no shadow, no terminator in sight):
    light intensity i, distance d, barycentric slide p, albedo texels, specular level, roughness."""
    from facestage.core.model import lightstage

    j = 3
    base = stage_with({j: (1.0, 1.0, 1.0)}, d=0.8, a=0.4)
    n_light = lightstage.normals(base)[j]
    helper = torch.tensor([0.0, 0.0, 1.0])
    u = torch.nn.functional.normalize(torch.linalg.cross(n_light, helper), dim=0)
    w = torch.linalg.cross(n_light, u)
    plane = torch.stack([0.8 * (su * u + sw * w) for su, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    if (torch.linalg.cross(plane[1] - plane[0], plane[2] - plane[0]) @ n_light) > 0:
        faces = faces.flip(1)
    uvs = torch.tensor([[0.0, 0.0], [1, 0], [1, 1], [0, 1]])
    eye = -0.35 * n_light + 0.08 * u  # between the plane and the light, near the mirror direction
    K = torch.as_tensor(camera.intrinsics(12.0, 16, 16), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(eye.numpy(), np.zeros(3), w.numpy()), dtype=torch.float32)
    one = torch.tensor([j])

    def loss_of(params: dict[str, torch.Tensor]) -> torch.Tensor:
        stage = lightstage.LightStage(
            d=torch.full((20,), 0.8).index_put((one,), params["d"]), a=torch.full((20,), 0.4),
            p=torch.full((20, 3), 1 / 3).index_put((one,), torch.softmax(params["p"], -1)[None]),
            i=torch.zeros(20, 3).index_put((one,), params["i"][None]), centre=torch.zeros(3))
        scene = RenderScene(plane, faces, uvs, faces, params["albedo"], params["specular"].expand(8, 8, 1),
                            params["roughness"].expand(8, 8, 1), K, wfc, 16, 16, stage=stage)
        image = render(scene, RenderOptions(spp=4, light_samples=4), seeded(3)).image
        assert float(image.detach().min()) > 0  # the plane fills the view: every pixel lit
        return (image * torch.linspace(0.2, 1.0, image.numel()).view_as(image)).sum()

    params = {"i": torch.tensor([2.0, 1.5, 1.0]), "d": torch.tensor([0.8]), "p": torch.tensor([0.3, -0.2, 0.0]),
              "albedo": maps(seed=5)[0], "specular": torch.tensor([[[0.6]]]), "roughness": torch.tensor([[[0.35]]])}
    _check_interior(loss_of, params, [
        ("i", (0,), 1e-2), ("i", (2,), 1e-2), ("d", (0,), 1e-2), ("p", (0,), 2e-2), ("p", (1,), 2e-2),
        ("albedo", (3, 4, 0), 2e-2), ("albedo", (5, 2, 1), 2e-2), ("specular", (0, 0, 0), 2e-2),
        ("roughness", (0, 0, 0), 1e-2)])


def test_sh_and_albedo_gradients_match_finite_differences():
    verts, faces = sphere(radius=0.1, subdivisions=3)

    def loss_of(params: dict[str, torch.Tensor]) -> torch.Tensor:
        scene = scene_of(verts, faces, sh=params["sh"], focal=70.0, textures=(params["albedo"], *maps()[1:]))
        image = render(scene, RenderOptions(spp=4), seeded(3)).image
        return (image * torch.linspace(0.2, 1.0, image.numel()).view_as(image)).sum()

    sh = constant_sh(0.3)
    sh[:, 1:] = 0.2 * torch.randn(3, 8, generator=seeded(6))
    _check_interior(loss_of, {"sh": sh, "albedo": maps(seed=5)[0]}, [
        ("sh", (0, 0), 1e-2), ("sh", (1, 2), 1e-2), ("sh", (2, 1), 1e-2), ("sh", (0, 3), 1e-2),
        ("sh", (1, 6), 1e-2), ("sh", (2, 8), 1e-2), ("albedo", (3, 4, 0), 2e-2), ("albedo", (5, 2, 1), 2e-2)])


def test_projected_silhouette_moves_with_camera_projection():
    """The edge endpoints come from core.model.camera.project, so the same K/world_from_camera drive both."""
    K = torch.as_tensor(camera.intrinsics(60.0, 32, 32), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(np.array([0.0, -0.5, 0.0]), np.zeros(3)), dtype=torch.float32)
    uv, depth = camera.project(quad(half=0.0625)[0], K, wfc)
    assert torch.allclose(uv.min(0).values, torch.tensor([8.5, 8.5])) and torch.allclose(depth, torch.full((4,), 0.5))
