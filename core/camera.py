"""Pinhole camera maths shared by the renderer, the fit and the Blender camera builder.

K is in pixels (x right, y down, pixel centres at +0.5); world_from_camera
uses Blender's camera frame (looks down −Z, +Y up). Keeping the conversion to
Blender's lens/shift here (bpy-free) means the scene builder and the tests
use exactly the numbers the renderer used.
"""

from __future__ import annotations

import numpy as np
import torch

SENSOR_WIDTH_MM = 36.0
CV_FROM_BLENDER = (1.0, -1.0, -1.0)  # OpenCV camera = Blender camera with y and z negated


def focal_from_35mm(f_mm: float, width: int, height: int) -> float:
    """Focal length in pixels for a 35 mm-equivalent focal length (36 mm across the longer side)."""
    return f_mm * max(width, height) / SENSOR_WIDTH_MM


def intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """K with square pixels and the principal point at the image centre."""
    return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])


def project(points: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (..., 2) and depth along the view direction (..., ) of world points (..., 3)."""
    cam = (points - world_from_camera[:3, 3]) @ world_from_camera[:3, :3]
    cv = cam * cam.new_tensor(CV_FROM_BLENDER)
    uv = cv @ K.T.to(cv.dtype)
    return uv[..., :2] / uv[..., 2:3], cv[..., 2]


def camera_rays(K: torch.Tensor, world_from_camera: torch.Tensor, height: int, width: int,
                jitter: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (H, W, 3) through pixel centres (plus optional offsets (H, W, 2) in pixels)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=K.dtype, device=K.device) + 0.5,
                            torch.arange(width, dtype=K.dtype, device=K.device) + 0.5, indexing="ij")
    pixels = torch.stack([xs, ys], -1)
    if jitter is not None:
        pixels = pixels + jitter
    cv = torch.cat([pixels, torch.ones_like(pixels[..., :1])], -1) @ torch.linalg.inv(K).T
    dirs = torch.nn.functional.normalize((cv * cv.new_tensor(CV_FROM_BLENDER)) @ world_from_camera[:3, :3].T, dim=-1)
    return world_from_camera[:3, 3].expand_as(dirs), dirs


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """world_from_camera (Blender convention) for a camera at eye looking at target."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye
    return m


def blender_camera(K: np.ndarray, width: int, height: int, sensor_width: float = SENSOR_WIDTH_MM) -> dict[str, object]:
    """Blender camera settings reproducing K: HORIZONTAL sensor fit, lens from fx, shift from the principal point.

    Blender's shift is in units of the sensor-fit dimension (the width here): a positive shift_x moves
    the view right, so the optical axis appears left of the centre (cx = W/2 − shift_x·W); a positive
    shift_y moves it up (cy = H/2 + shift_y·W, image y pointing down).
    """
    K = np.asarray(K, float)
    return {"lens_mm": float(K[0, 0] * sensor_width / width), "sensor_width": float(sensor_width),
            "sensor_fit": "HORIZONTAL", "shift_x": float((width / 2 - K[0, 2]) / width),
            "shift_y": float((K[1, 2] - height / 2) / width), "resolution_x": int(width), "resolution_y": int(height),
            "pixel_aspect": float(K[1, 1] / K[0, 0])}


def K_from_blender_camera(lens_mm: float, sensor_width: float, shift_x: float, shift_y: float, width: int, height: int) -> np.ndarray:
    """Inverse of blender_camera (HORIZONTAL fit, square pixels)."""
    f = lens_mm * width / sensor_width
    return np.array([[f, 0.0, width / 2 - shift_x * width], [0.0, f, height / 2 + shift_y * width], [0.0, 0.0, 1.0]])
