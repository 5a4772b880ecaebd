"""core.camera agrees with Blender's own projection for shifted, non-square cameras."""

from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pytest
import torch

from facestage.core.camera import K_from_blender_camera, blender_camera, camera_rays, look_at, project


def test_optical_axis_projects_to_the_principal_point_and_rays_invert_projection():
    K = torch.tensor([[300.0, 0, 70.0], [0, 300.0, 50.0], [0, 0, 1]], dtype=torch.float64)
    M = torch.tensor(look_at(np.array([0.2, -1.5, 0.3]), np.zeros(3)))
    uv, depth = project(torch.zeros(1, 3, dtype=torch.float64), K, M)
    assert torch.allclose(uv[0], torch.tensor([70.0, 50.0], dtype=torch.float64), atol=1e-9) and depth[0] > 0
    origins, dirs = camera_rays(K, M, 100, 140)
    points = origins + 2.0 * dirs
    uv, _ = project(points, K, M)
    ys, xs = torch.meshgrid(torch.arange(100) + 0.5, torch.arange(140) + 0.5, indexing="ij")
    assert (uv - torch.stack([xs, ys], -1).double()).abs().max() < 1e-9


def test_blender_camera_round_trips():
    K = np.array([[812.0, 0, 301.5], [0, 812.0, 188.25], [0, 0, 1]])
    cam = blender_camera(K, 640, 400)
    back = K_from_blender_camera(cam["lens_mm"], cam["sensor_width"], cam["shift_x"], cam["shift_y"], 640, 400)
    assert np.allclose(back, K)


SCRIPT = textwrap.dedent("""
    import bpy, mathutils, numpy as np, torch
    from bpy_extras.object_utils import world_to_camera_view
    from facestage.core.camera import blender_camera, look_at, project
    W, H = 320, 200
    K = np.array([[400.0, 0, 150.0], [0, 400.0, 120.0], [0, 0, 1]])
    cam = blender_camera(K, W, H)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    data = bpy.data.cameras.new("c"); obj = bpy.data.objects.new("c", data); scene.collection.objects.link(obj)
    data.lens, data.sensor_width, data.sensor_fit = cam["lens_mm"], cam["sensor_width"], cam["sensor_fit"]
    data.shift_x, data.shift_y = cam["shift_x"], cam["shift_y"]
    M = look_at(np.array([0.3, -2.0, 0.2]), np.zeros(3))
    obj.matrix_world = mathutils.Matrix(M.tolist()); bpy.context.view_layer.update()
    pts = np.random.default_rng(0).normal(size=(50, 3)) * 0.3
    uv, _ = project(torch.tensor(pts), torch.tensor(K), torch.tensor(M))
    err = max(np.abs(np.array([c.x * W, (1 - c.y) * H]) - u).max() for c, u in
              ((world_to_camera_view(scene, obj, mathutils.Vector(p.tolist())), u) for p, u in zip(pts, uv.numpy())))
    print("MAXERR", err)
""")


@pytest.mark.blender
def test_projection_matches_blender_with_shift_and_non_square_image(python, blender_env):
    done = subprocess.run([python, "-c", SCRIPT], capture_output=True, text=True, env=blender_env, timeout=120)
    line = [l for l in done.stdout.splitlines() if l.startswith("MAXERR")]
    assert line, done.stderr[-2000:]
    assert float(line[0].split()[1]) < 1e-3
