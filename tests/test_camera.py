"""core.model.camera: pixel-centre conventions, rays that invert projection, Blender's lens/shift, rotation helpers."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import textwrap

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facestage.core.model import camera
from facestage.core.model.camera import (K_from_blender_camera, blender_camera, euler_xyz_from_matrix, look_at,
                                         matrix_from_euler_xyz, pixel_rays, project, rotation_from_axis_angle,
                                         unproject)

DT = torch.float64


def test_optical_axis_lands_between_the_four_central_pixels():
    K = torch.as_tensor(camera.intrinsics(300.0, 140, 100))
    M = torch.as_tensor(look_at(np.array([0.2, -1.5, 0.3]), np.zeros(3)))
    uv, depth = project(torch.zeros(1, 3, dtype=DT), K, M)
    assert torch.allclose(uv[0], torch.tensor([70.0, 50.0], dtype=DT), atol=1e-9)
    assert float(depth[0]) == pytest.approx(math.sqrt(0.2 ** 2 + 1.5 ** 2 + 0.3 ** 2))


def test_rays_go_through_pixel_centres_and_invert_projection():
    K = torch.tensor([[300.0, 0, 73.0], [0, 300.0, 48.5], [0, 0, 1]], dtype=DT)
    M = torch.as_tensor(look_at(np.array([0.2, -1.5, 0.3]), np.zeros(3)))
    ys, xs = torch.meshgrid(torch.arange(100) + 0.5, torch.arange(140) + 0.5, indexing="ij")
    centres = torch.stack([xs, ys], -1).double().reshape(-1, 2)
    origin, dirs = pixel_rays(K, M, centres)
    assert origin.shape == (3,) and dirs.shape == (100 * 140, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(100 * 140, dtype=DT))
    uv, depth = project(origin + 2.0 * dirs, K, M)
    assert (uv - centres).abs().max() < 1e-9
    assert (depth > 0).all()
    assert torch.allclose(uv[0], torch.tensor([0.5, 0.5], dtype=DT))  # top-left pixel's centre
    origin, dirs = pixel_rays(K, M, torch.zeros(1, 2, dtype=DT))
    uv, _ = project(origin + dirs, K, M)
    assert torch.allclose(uv[0], torch.zeros(2, dtype=DT), atol=1e-9)  # the image corner


def test_unproject_puts_points_back_where_project_found_them():
    """World points projected to (pixel, depth) and unprojected come back to within 1e-12 m, in front of the camera
    and off its axis alike (fit/lips.py moves vertices in the image plane at their own depth this way)."""
    K = torch.tensor([[300.0, 0, 73.0], [0, 310.0, 48.5], [0, 0, 1]], dtype=DT)
    M = torch.as_tensor(look_at(np.array([0.2, -1.5, 0.3]), np.zeros(3)))
    points = torch.as_tensor(np.random.default_rng(3).uniform(-0.4, 0.4, (50, 3)))
    uv, depth = project(points, K, M)
    assert (unproject(uv, depth, K, M) - points).abs().max() < 1e-12


def test_image_y_points_down_and_x_right():
    K = torch.as_tensor(camera.intrinsics(100.0, 64, 48))
    M = torch.as_tensor(look_at(np.array([0.0, -2.0, 0.0]), np.zeros(3)))  # head-on, world Z up
    uv, _ = project(torch.tensor([[0.0, 0.0, 0.1], [0.1, 0.0, 0.0]], dtype=DT), K, M)
    assert float(uv[0, 1]) < 24 and float(uv[0, 0]) == pytest.approx(32)  # up in the world is up in the image
    assert float(uv[1, 0]) > 32 and float(uv[1, 1]) == pytest.approx(24)  # +X is to the right from −Y


def test_intrinsics_and_look_at_are_differentiable_in_torch():
    focal = torch.tensor(120.0, dtype=DT, requires_grad=True)
    K = camera.intrinsics(focal, 64, 48)
    assert isinstance(K, torch.Tensor) and torch.allclose(K.detach(), torch.as_tensor(camera.intrinsics(120.0, 64, 48)))
    eye = torch.tensor([0.3, -1.2, 0.2], dtype=DT, requires_grad=True)
    M = look_at(eye, torch.zeros(3, dtype=DT))
    assert torch.allclose(M.detach(), torch.as_tensor(look_at(eye.detach().numpy(), np.zeros(3))))
    uv, _ = project(torch.tensor([[0.05, 0.02, 0.1]], dtype=DT), K, M)
    uv.sum().backward()
    assert torch.isfinite(focal.grad) and focal.grad != 0 and torch.isfinite(eye.grad).all()
    straight_down = look_at(np.array([0.0, 0.0, 2.0]), np.zeros(3))  # view parallel to up: still a rotation
    assert np.allclose(straight_down[:3, :3] @ straight_down[:3, :3].T, np.eye(3))
    assert np.allclose(straight_down[:3, 2], [0, 0, 1])


def test_35mm_focal_puts_36mm_across_the_longer_side():
    assert camera.focal_from_35mm(50.0, 6000, 4000) == pytest.approx(50 * 6000 / 36)
    assert camera.focal_from_35mm(50.0, 3000, 4000) == pytest.approx(50 * 4000 / 36)
    assert camera.focal_to_35mm(camera.focal_from_35mm(35.0, 640, 480), 640, 480) == pytest.approx(35.0)


@pytest.mark.parametrize("fit", ["HORIZONTAL", "AUTO", "VERTICAL"])
@pytest.mark.parametrize("size", [(640, 400), (400, 640)])
def test_blender_camera_round_trips(fit, size):
    w, h = size
    K = np.array([[812.0, 0, w / 2 - 18.5], [0, 812.0, h / 2 + 11.25], [0, 0, 1]])
    cam = blender_camera(K, w, h, sensor_fit=fit)
    back = K_from_blender_camera(cam["lens_mm"], cam["sensor_width"], cam["shift_x"], cam["shift_y"], w, h, fit)
    assert np.allclose(back, K)
    assert (cam["resolution_x"], cam["resolution_y"]) == (w, h)
    if fit == "HORIZONTAL":
        assert cam["lens_mm"] == pytest.approx(812.0 * 36 / w)
        assert cam["shift_x"] == pytest.approx(18.5 / w) and cam["shift_y"] == pytest.approx(11.25 / w)


def test_axis_angle_matches_scipy_and_is_smooth_at_zero():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(50, 3, generator=gen, dtype=DT) * 1.5
    v[0] = 0.0
    v[1] = torch.tensor([1e-6, -2e-6, 3e-7], dtype=DT)
    R = rotation_from_axis_angle(v)
    assert np.allclose(R.numpy(), Rotation.from_rotvec(v.numpy()).as_matrix(), atol=1e-12)
    assert torch.equal(R[0], torch.eye(3, dtype=DT))
    for point in (torch.zeros(3, dtype=DT), torch.tensor([1e-5, 2e-5, -1e-5], dtype=DT), torch.tensor([0.3, -1.0, 2.0], dtype=DT)):
        assert torch.autograd.gradcheck(rotation_from_axis_angle, (point.clone().requires_grad_(),))
    zero = torch.zeros(3, dtype=DT, requires_grad=True)
    (rotation_from_axis_angle(zero) * torch.arange(9, dtype=DT).reshape(3, 3)).sum().backward()
    assert torch.isfinite(zero.grad).all() and zero.grad.abs().sum() > 0


def test_euler_xyz_is_blenders_order_and_round_trips():
    gen = torch.Generator().manual_seed(1)
    angles = (torch.rand(40, 3, generator=gen, dtype=DT) - 0.5) * torch.tensor([3.0, 3.0, 6.0], dtype=DT)
    R = matrix_from_euler_xyz(angles)
    assert np.allclose(R.numpy(), Rotation.from_euler("xyz", angles.numpy()).as_matrix(), atol=1e-12)  # extrinsic X, Y, Z
    assert torch.allclose(euler_xyz_from_matrix(R), angles, atol=1e-10)
    yaw = matrix_from_euler_xyz(torch.tensor([0.0, 0.0, math.radians(30)], dtype=DT))
    front = yaw @ torch.tensor([0.0, -1.0, 0.0], dtype=DT)  # the head faces −Y
    assert front[2] == 0 and front[0] > 0  # yaw turns the face about world Z
    locked = matrix_from_euler_xyz(torch.tensor([0.4, math.pi / 2, 0.0], dtype=DT))
    assert torch.allclose(matrix_from_euler_xyz(euler_xyz_from_matrix(locked)), locked, atol=1e-9)


SCRIPT = textwrap.dedent("""
    import bpy, json, mathutils, numpy as np, sys, torch
    from bpy_extras.object_utils import world_to_camera_view
    from facestage.core.model.camera import blender_camera, look_at, matrix_from_euler_xyz, project
    scene = bpy.context.scene
    data = bpy.data.cameras.new("c"); obj = bpy.data.objects.new("c", data); scene.collection.objects.link(obj)
    pts = np.random.default_rng(0).normal(size=(50, 3)) * 0.3
    errors = {}
    for W, H, fit in ((320, 200, "HORIZONTAL"), (200, 320, "HORIZONTAL"), (200, 320, "AUTO"), (320, 200, "VERTICAL")):
        K = np.array([[400.0, 0, W / 2 - 17.0], [0, 400.0, H / 2 + 23.5], [0, 0, 1]])
        cam = blender_camera(K, W, H, sensor_fit=fit)
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
        data.sensor_fit, data.lens = cam["sensor_fit"], cam["lens_mm"]
        data.sensor_width = data.sensor_height = cam["sensor_width"]
        data.shift_x, data.shift_y = cam["shift_x"], cam["shift_y"]
        M = look_at(np.array([0.3, -2.0, 0.2]), np.zeros(3))
        obj.matrix_world = mathutils.Matrix(M.tolist()); bpy.context.view_layer.update()
        uv, _ = project(torch.tensor(pts), torch.tensor(K), torch.tensor(M))
        blender = np.array([[c.x * W, (1 - c.y) * H] for c in
                            (world_to_camera_view(scene, obj, mathutils.Vector(p.tolist())) for p in pts)])
        errors[f"{W}x{H} {fit}"] = float(np.abs(blender - uv.numpy()).max())
    angles = np.random.default_rng(1).uniform(-3, 3, size=(20, 3))
    euler = max(float(np.abs(np.array(mathutils.Euler(a.tolist(), "XYZ").to_matrix())
                             - matrix_from_euler_xyz(torch.tensor(a)).numpy()).max()) for a in angles)
    print("RESULT", json.dumps({"projection": errors, "euler": euler}))
""")


@pytest.mark.blender
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module")
def test_projection_and_euler_match_blender_with_shift_and_non_square_images(python, blender_env):
    done = subprocess.run([python, "-c", SCRIPT], capture_output=True, text=True, env=blender_env, timeout=180)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    assert line, done.stderr[-2000:]
    result = json.loads(line[0].split(" ", 1)[1])
    assert max(result["projection"].values()) < 1e-3, result
    assert result["euler"] < 1e-6
