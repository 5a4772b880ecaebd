"""Pinhole camera and rotation maths shared by the renderer, the fits and the Blender camera builder.

Conventions (docs/conventions.md): K is in pixels, x right, y down, origin at
the image's top-left corner, pixel centres at integer + 0.5, so the optical
axis of a centred camera lands on (W/2, H/2), the corner between the four
central pixels. world_from_camera is 4×4 in Blender's camera frame (looks
down its local −Z, +Y up, +X right); the OpenCV camera frame is Blender's
with y and z negated. Keeping the conversion to Blender's lens / sensor /
shift here (bpy-free) means the scene builder and the tests use exactly the
numbers the renderer used.

Blender's lens shift (BKE_camera_params_compute_viewplane) is in units of the
sensor-fit dimension S (the width for HORIZONTAL fit, the larger side for
AUTO, the height for VERTICAL): shift_x > 0 moves the view window right, so
the optical axis appears left of the centre, and shift_y > 0 moves it up, so
the axis appears below the centre (image y points down):

    cx = W/2 − shift_x·S,   cy = H/2 + shift_y·S,   f_px = lens·S / sensor.

35 mm-equivalent focal lengths put a 36 mm sensor across the longer image
side (as the landmark solver does, and as Blender's AUTO sensor fit does).

The reconstruction's world frame: the head model's origin is the world
origin, and the camera keeps the canonical frontal orientation
FRONTAL_CAMERA_ROTATION (Blender camera rotation (90°, 0, 0): looking along
+Y, Z up) and sits wherever the photo puts it. `world_pose` converts the
landmark solver's OpenCV camera_from_model into that frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SENSOR_WIDTH_MM = 36.0
CV_FROM_BLENDER = (1.0, -1.0, -1.0)  # OpenCV camera = Blender camera with y and z negated
SENSOR_FITS = ("HORIZONTAL", "VERTICAL", "AUTO")
# world_from_camera rotation of the canonical camera: looking along +Y with Z up (Blender rotation (90°, 0, 0)).
FRONTAL_CAMERA_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Model (x, y, z) → OpenCV camera for a head looking straight into the canonical camera (model faces −Y, Z up).
FRONT_CV = np.diag(CV_FROM_BLENDER) @ FRONTAL_CAMERA_ROTATION.T


def focal_from_35mm(f_mm: float, width: int, height: int) -> float:
    """Focal length in pixels of a 35 mm-equivalent focal length (36 mm across the longer side)."""
    return f_mm * max(width, height) / SENSOR_WIDTH_MM


def focal_to_35mm(focal_px: float, width: int, height: int) -> float:
    """Inverse of focal_from_35mm."""
    return focal_px * SENSOR_WIDTH_MM / max(width, height)


def intrinsics(focal_px: Any, width: int, height: int) -> Any:
    """K with square pixels and the principal point at the image centre (W/2, H/2).

    A float focal gives a float64 numpy array; a tensor focal gives a tensor on its
    device that stays differentiable in the focal length (focal optimisation).
    """
    if isinstance(focal_px, torch.Tensor):
        f = focal_px.reshape(())
        zero, one = torch.zeros_like(f), torch.ones_like(f)
        cx, cy = zero + width / 2.0, zero + height / 2.0
        return torch.stack([torch.stack([f, zero, cx]), torch.stack([zero, f, cy]), torch.stack([zero, zero, one])])
    return np.array([[float(focal_px), 0.0, width / 2.0], [0.0, float(focal_px), height / 2.0], [0.0, 0.0, 1.0]])


def _as_tensor(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if like is not None:
        return torch.as_tensor(np.asarray(x), dtype=like.dtype, device=like.device)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def project(points: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (..., 2) and depth along the viewing axis (...,) of world points (..., 3).

    Depth is positive in front of the camera; points behind it get meaningless pixels.
    Differentiable in all three inputs.
    """
    points = _as_tensor(points)
    K, world_from_camera = _as_tensor(K, points), _as_tensor(world_from_camera, points)
    cam = (points - world_from_camera[:3, 3]) @ world_from_camera[:3, :3].to(points.dtype)
    cv = cam * cam.new_tensor(CV_FROM_BLENDER)
    uv = cv @ K.T.to(cv.dtype)
    return uv[..., :2] / uv[..., 2:3], cv[..., 2]


def _world_directions(K: torch.Tensor, world_from_camera: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3) world directions through screen points pixels (N, 2), each one unit deep along the viewing axis: the
    OpenCV ray K⁻¹(u, v, 1), to Blender's camera frame by negating y and z, then rotated into the world."""
    ones = torch.ones_like(pixels[:, :1])
    cv = torch.cat([pixels, ones], dim=-1) @ torch.linalg.inv(K).T.to(pixels.dtype)
    cam = cv * cv.new_tensor(CV_FROM_BLENDER)
    return cam @ world_from_camera[:3, :3].T.to(pixels.dtype)


def pixel_rays(K: torch.Tensor, world_from_camera: torch.Tensor, pixels: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera centre (3,) and unit world directions (N, 3) of rays through screen points pixels (N, 2)
    (x right, y down, pixel centres at +0.5), differentiable in K and world_from_camera: the inverse of `project`."""
    return world_from_camera[:3, 3], F.normalize(_world_directions(K, world_from_camera, pixels), dim=-1)


def unproject(pixels: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor
              ) -> torch.Tensor:
    """World points (N, 3) at screen points pixels (N, 2) and depths along the viewing axis (N,): exactly what
    `project` maps back to (pixels, depth)."""
    return world_from_camera[:3, 3] + _world_directions(K, world_from_camera, pixels) * depth[:, None]


def look_at(eye: Any, target: Any, up: Any = (0.0, 0.0, 1.0)) -> Any:
    """world_from_camera (Blender convention) for a camera at eye looking at target, `up` up in the image.

    numpy in → numpy (float64) out; a tensor eye → a differentiable tensor on its device. When the view
    is parallel to `up`, world +Y (or +X) stands in for it.
    """
    if isinstance(eye, torch.Tensor):
        eye_t = eye
        target_t, up_t = _as_tensor(target, eye_t), _as_tensor(up, eye_t)
        back = torch.nn.functional.normalize(eye_t - target_t, dim=0)
        if float(torch.linalg.cross(up_t, back).detach().norm()) < 1e-6 * float(up_t.detach().norm()):
            up_t = _fallback_up(back.detach().cpu().numpy(), eye_t)
        right = torch.nn.functional.normalize(torch.linalg.cross(up_t, back), dim=0)
        m = torch.eye(4, dtype=eye_t.dtype, device=eye_t.device)
        return torch.cat([torch.stack([right, torch.linalg.cross(back, right), back, eye_t], 1),
                          m[3:]], 0)
    eye_np, target_np = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    up_np = np.asarray(up, np.float64)
    back = eye_np - target_np
    back /= np.linalg.norm(back)
    if np.linalg.norm(np.cross(up_np, back)) < 1e-6 * np.linalg.norm(up_np):
        up_np = _fallback_up(back).numpy()
    right = np.cross(up_np, back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye_np
    return m


def _fallback_up(back: np.ndarray, like: torch.Tensor | None = None) -> torch.Tensor:
    up = (0.0, 1.0, 0.0) if abs(float(back[1])) < 0.9 else (1.0, 0.0, 0.0)
    if like is None:
        return torch.tensor(up, dtype=torch.float64)
    return torch.tensor(up, dtype=like.dtype, device=like.device)


def _fit_size(sensor_fit: str, width: int, height: int) -> int:
    """The image side (pixels) that Blender's sensor and shift refer to."""
    fit = sensor_fit.upper()
    if fit not in SENSOR_FITS:
        raise ValueError(f"sensor_fit must be one of {SENSOR_FITS}, not {sensor_fit!r}")
    if fit == "AUTO":
        return max(width, height)
    return width if fit == "HORIZONTAL" else height


def blender_camera(K: Any, width: int, height: int, sensor_width: float = SENSOR_WIDTH_MM,
                   sensor_fit: str = "HORIZONTAL") -> dict[str, Any]:
    """Blender camera settings that reproduce K (square pixels, no skew) at resolution width × height.

    Returns lens_mm, sensor_width (mm across the fit side, Blender's `sensor_width`, or its
    `sensor_height` for VERTICAL fit), sensor_fit, shift_x, shift_y, resolution_x, resolution_y.
    """
    k = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
    size = _fit_size(sensor_fit, width, height)
    return {"lens_mm": float(k[0, 0] * sensor_width / size), "sensor_width": float(sensor_width),
            "sensor_fit": sensor_fit.upper(), "shift_x": float((width / 2.0 - k[0, 2]) / size),
            "shift_y": float((k[1, 2] - height / 2.0) / size), "resolution_x": int(width), "resolution_y": int(height)}


def K_from_blender_camera(lens_mm: float, sensor_width: float, shift_x: float, shift_y: float, width: int, height: int,
                          sensor_fit: str = "HORIZONTAL") -> np.ndarray:
    """Inverse of blender_camera: K (3×3 float64) of a Blender camera rendered at width × height."""
    size = _fit_size(sensor_fit, width, height)
    f = lens_mm * size / sensor_width
    return np.array([[f, 0.0, width / 2.0 - shift_x * size], [0.0, f, height / 2.0 + shift_y * size], [0.0, 0.0, 1.0]])


def rotation_from_axis_angle(v: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) (Rodrigues), smooth through v = 0.

    Pose fits optimise v directly; near 0 the series sin θ/θ ≈ 1 − θ²/6 and
    (1 − cos θ)/θ² ≈ 1/2 − θ²/24 keep values and gradients exact and finite.
    """
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / torch.where(small, torch.ones_like(theta2), theta2))
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1)], -2)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_from_euler_xyz(angles: torch.Tensor) -> torch.Tensor:
    """Rotation (..., 3, 3) of Blender's XYZ Euler angles (..., 3) in radians: R = Rz(z)·Ry(y)·Rx(x).

    For the head (facing −Y, Z up): x is pitch (nodding, about the ear-to-ear X axis),
    y is roll (tilting, about the viewing Y axis), z is yaw (turning, about the vertical Z
    axis); yaw is applied last, about world Z. Same numbers as an object's rotation_euler.
    """
    angles = _as_tensor(angles)
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    rows = [torch.stack([cy * cz, sx * sy * cz - cx * sz, cx * sy * cz + sx * sz], -1),
            torch.stack([cy * sz, sx * sy * sz + cx * cz, cx * sy * sz - sx * cz], -1),
            torch.stack([-sy, sx * cy, cx * cy], -1)]
    return torch.stack(rows, -2)


def euler_xyz_from_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Inverse of matrix_from_euler_xyz: XYZ Euler angles (..., 3) with y in [−π/2, π/2].

    At gimbal lock (|y| = π/2) x and z are not separable; z is set to 0 there.
    """
    r = _as_tensor(rotation)
    cos_y = torch.sqrt(r[..., 0, 0] ** 2 + r[..., 1, 0] ** 2)
    y = torch.atan2(-r[..., 2, 0], cos_y)
    locked = cos_y < 1e-9
    x = torch.where(locked, torch.atan2(-r[..., 1, 2], r[..., 1, 1]), torch.atan2(r[..., 2, 1], r[..., 2, 2]))
    z = torch.where(locked, torch.zeros_like(y), torch.atan2(r[..., 1, 0], r[..., 0, 0]))
    return torch.stack([x, y, z], -1)



def world_pose(camera_from_model: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, t, world_from_camera) in the reconstruction's world frame (module docstring) from an OpenCV camera_from_model.

    The head sits at the origin (t = 0) with rotation R; the canonical camera carries the translation.
    """
    cv_from_blender = np.diag(CV_FROM_BLENDER)
    r_cv, t_cv = camera_from_model[:3, :3], camera_from_model[:3, 3]
    rotation = FRONTAL_CAMERA_ROTATION @ cv_from_blender @ r_cv
    world_from_camera = np.eye(4)
    world_from_camera[:3, :3] = FRONTAL_CAMERA_ROTATION
    world_from_camera[:3, 3] = -FRONTAL_CAMERA_ROTATION @ cv_from_blender @ t_cv
    return rotation, np.zeros(3), world_from_camera


def camera_from_world_pose(rotation: np.ndarray, translation: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """OpenCV camera_from_model (4x4) of a head posed in the world and a Blender camera (any world frame)."""
    cv_from_blender = np.diag(CV_FROM_BLENDER)
    camera_from_world = np.linalg.inv(world_from_camera)
    out = np.eye(4)
    out[:3, :3] = cv_from_blender @ camera_from_world[:3, :3] @ rotation
    out[:3, 3] = cv_from_blender @ (camera_from_world[:3, :3] @ translation + camera_from_world[:3, 3])
    return out


def yaw_pitch_roll(rotation: np.ndarray) -> tuple[float, float, float]:
    """Degrees of R = Rz(yaw) · Rx(pitch) · Ry(roll): yaw about the up axis, pitch nods, roll tilts in the image."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = math.asin(float(np.clip(r[2, 1], -1.0, 1.0)))
    yaw = math.atan2(-r[0, 1], r[1, 1])
    roll = math.atan2(-r[2, 0], r[2, 2])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_from_yaw_pitch_roll(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of `yaw_pitch_roll` (degrees)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(r), 0, math.sin(r)], [0, 1, 0], [-math.sin(r), 0, math.cos(r)]])
    return rz @ rx @ ry
