"""A relight rig (io/rig.py) placed in a result's world and rendered by the core, exactly as Blender gets it.

One function, `place`, turns a rig into world-frame lights and an environment
rotation; the core render (`render_rig`) and the Blender operator
(scene/relight.py `apply_rig`) both start from its output, so the CLI image and
a Cycles render of the relit scene show the same lights. The world is rendered
by sampling (RenderOptions.environment_samples): cosine-weighted and
GGX-lobe directions with shadow rays, as Cycles samples a World, so the core
keeps the world's occlusion and its glossy reflection rather than projecting it
to SH (an SH projection would drop both; see docs/skin.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..common.errors import FaceStageError
from ..io.image import srgb_to_linear
from ..io.result import Result
from ..io.rig import Rig
from ..model import emitters as em
from ..model.lightstage import rotation_from_normal
from ..model.sh import equirect_directions, equirect_uv
from .rerender import render_result

ENVIRONMENT_HEIGHT = 256  # rows of the world image the core samples (an HDRI is resampled to it)
WORLD_SAMPLES = 16  # world directions per shading point (diffuse and glossy each) in a rig render
# The environment frame of a camera-frame rig, in camera coordinates: x right, y = viewing direction (−z), z = up (y).
CAMERA_ENVIRONMENT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass
class PlacedLight:
    """One rig light in the world frame, with what Blender's light datablock needs."""

    name: str
    type: str  # "AREA", "POINT", "SPOT" (Blender's light types)
    position: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3) world rotation whose local −Z is the emission direction
    color: tuple[float, float, float]
    power_w: float
    shape: str  # area lights: SQUARE, RECTANGLE, DISK, ELLIPSE
    size: float
    size_y: float
    spot_size: float  # radians, full cone
    spot_blend: float
    radius: float

    @property
    def direction(self) -> np.ndarray:
        return -self.rotation[:, 2]


@dataclass
class PlacedRig:
    """A rig in the world frame: its lights, and the world as Blender's Mapping node would turn an HDRI."""

    lights: list[PlacedLight]
    world_type: str
    world_color: tuple[float, float, float]
    world_strength: float
    world_path: str | None
    environment_rotation: np.ndarray  # (3, 3): the image is looked up along R @ d for a world direction d


@dataclass
class Frames:
    """Where a rig's frames sit in the world: the camera (Blender convention), the head pose and its centre."""

    world_from_camera: np.ndarray  # (4, 4)
    head_rotation: np.ndarray  # (3, 3): world = R @ head + t
    head_translation: np.ndarray  # (3,)
    centre: np.ndarray  # (3,) where unaimed lights point (the light stage's centre)

    @classmethod
    def of(cls, result: Result) -> Frames:
        return cls(np.asarray(result.world_from_camera, np.float64), np.asarray(result.rotation, np.float64),
                   np.asarray(result.translation, np.float64), np.asarray(result.stage["centre"], np.float64))

    def transform(self, frame: str) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) with world = R @ p + t for points p given in `frame`."""
        if frame == "camera":
            return self.world_from_camera[:3, :3], self.world_from_camera[:3, 3]
        if frame == "head":
            return self.head_rotation, self.head_translation
        raise FaceStageError(f"Unknown rig frame {frame!r}.")


def _rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def place(rig: Rig, frames: Frames | Result) -> PlacedRig:
    """The rig's lights and world in the world frame (lights without an aim face the head centre)."""
    if isinstance(frames, Result):
        frames = Frames.of(frames)
    rotation, offset = frames.transform(rig.frame)
    lights = []
    for light in rig.lights:
        position = rotation @ np.asarray(light.position) + offset
        if light.direction is not None:
            direction = rotation @ np.asarray(light.direction)
        else:
            direction = frames.centre - position
            if np.linalg.norm(direction) < 1e-6:
                raise FaceStageError(f"{light.name} sits at the head's centre; move it or give it a direction.")
        direction = direction / np.linalg.norm(direction)
        lights.append(PlacedLight(
            name=light.name, type=light.type.upper(), position=position, rotation=rotation_from_normal(direction),
            color=light.color, power_w=light.power_w, shape=light.shape, size=light.size,
            size_y=light.size_y if light.shape in ("RECTANGLE", "ELLIPSE") else light.size,
            spot_size=math.radians(light.spot_size_deg), spot_blend=light.spot_blend, radius=light.radius))
    environment = rotation @ CAMERA_ENVIRONMENT if rig.frame == "camera" else rotation
    return PlacedRig(lights=lights, world_type=rig.world.type, world_color=rig.world.color,
                     world_strength=rig.world.strength, world_path=rig.world.path,
                     environment_rotation=_rotation_z(rig.world.rotation_deg) @ environment.T)


def _area_emitter(light: PlacedLight) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Shape code, half-extent axes (2, 3) and area of an area light (Blender: size along local x, size_y along y)."""
    x_axis, y_axis = light.rotation[:, 0], light.rotation[:, 1]
    shape = em.ELLIPSE if light.shape in ("DISK", "ELLIPSE") else em.RECTANGLE
    half = np.stack([0.5 * light.size * x_axis, 0.5 * light.size_y * y_axis])
    area = light.size * light.size_y * (math.pi / 4 if shape == em.ELLIPSE else 1.0)
    return shape, half, area


def emitters(placed: PlacedRig, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> em.Emitters | None:
    """The rig's lights as the renderer samples them (None when it has none).

    Area light: radiance color·P/(π·A) on its face. Point and spot: intensity color·P/(4π); a radius r > 0
    becomes a disk of radius r facing the shaded side (Blender's sphere light seen from the head: the same
    intensity towards the head and the same soft shadows).
    """
    rows: dict[str, list[Any]] = {k: [] for k in ("shape", "origin", "u", "v", "normal", "power", "omni", "axis", "cos", "smooth")}
    for light in placed.lights:
        colour = np.asarray(light.color, np.float64)
        normal = light.direction
        cos_edge, smooth = -2.0, 1.0
        if light.type == "AREA":
            shape, half, area = _area_emitter(light)
            power = colour * light.power_w / math.pi  # L·A = colour·P/π
            omni = False
        else:
            intensity = colour * light.power_w / (4 * math.pi)
            if light.type == "SPOT":
                cos_edge, smooth = em.spot_parameters(math.degrees(light.spot_size), light.spot_blend)
            if light.radius > 0:
                shape, half = em.ELLIPSE, light.radius * np.stack([light.rotation[:, 0], light.rotation[:, 1]])
                omni = False
            else:
                shape, half, omni = em.POINT, np.zeros((2, 3)), True
            power = intensity
        rows["shape"].append(shape)
        rows["origin"].append(light.position)
        rows["u"].append(half[0])
        rows["v"].append(half[1])
        rows["normal"].append(normal)
        rows["power"].append(power)
        rows["omni"].append(omni)
        rows["axis"].append(light.direction)
        rows["cos"].append(cos_edge)
        rows["smooth"].append(smooth)
    if not placed.lights:
        return None

    def t(values: list[Any]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, np.float64), dtype=dtype, device=device)

    return em.make(rows["shape"], t(rows["origin"]), t(rows["u"]), t(rows["v"]), t(rows["normal"]), t(rows["power"]),
                   rows["omni"], t(rows["axis"]), t(rows["cos"]), t(rows["smooth"]))


def load_environment(path: str) -> np.ndarray:
    """An equirectangular image as linear RGB float32 (H, W, 3), row 0 at the top."""
    import cv2  # heavy, and only rigs with an HDRI need it

    image = cv2.imread(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if image is None:
        raise FaceStageError(f"Rig world image {path} could not be read (use a Radiance .hdr, .png or .jpg).")
    rgb = image[..., ::-1].astype(np.float32)
    if image.dtype == np.uint8:
        rgb = srgb_to_linear(rgb / 255.0)
    elif image.dtype == np.uint16:
        rgb = srgb_to_linear(rgb / 65535.0)
    return np.ascontiguousarray(rgb)


def environment_image(placed: PlacedRig, height: int = ENVIRONMENT_HEIGHT) -> np.ndarray | None:
    """The world's radiance as an equirect image in the world frame (None: a black world)."""
    if placed.world_type == "uniform":
        colour = np.asarray(placed.world_color, np.float32) * placed.world_strength
        return None if float(colour.max()) <= 0 else np.broadcast_to(colour, (4, 8, 3)).copy()
    assert placed.world_path is not None
    source = torch.as_tensor(load_environment(placed.world_path)).permute(2, 0, 1)[None]
    dirs = equirect_directions(height, dtype=torch.float64)
    looked_up = dirs @ torch.as_tensor(placed.environment_rotation).T
    uv = equirect_uv(looked_up).float()
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - 2 * uv[..., 1]], -1)[None]
    image = torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (image[0].permute(1, 2, 0) * placed.world_strength).numpy()


def render_rig(result: Result, rig: Rig, device: str = "cpu") -> np.ndarray:
    """The result relit by the rig alone (the fitted stage and SH off), linear, composited over the photo."""
    placed = place(rig, result)
    stage = {k: np.array(v, dtype=np.float64, copy=True) for k, v in result.stage.items()}
    stage["i"][:] = 0.0
    image, _, _ = render_result(result, stage=stage, sh=np.zeros_like(np.asarray(result.sh)), device=device,
                                lights=emitters(placed, device=device), environment=environment_image(placed),
                                environment_samples=WORLD_SAMPLES, relight_photo=True)
    return image
