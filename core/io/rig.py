"""Relight rigs: a JSON file of area, point and spot lights and a world, read and validated into plain data.

A rig is how a user relights a reconstruction with lights of their own, the
way they would place them in Blender: `facestage relight RESULT --rig RIG.json`
renders it with the core, and the Blender operator "Apply Rig" puts the very
same lights into the built scene (scene/relight.py), so both give the same
image. This module only reads and checks the file; core/apps/rig.py maps a rig
into the world of a result and renders it.

Format (every length in metres, every angle in degrees)::

    {"frame": "camera" | "head",
     "lights": [
       {"type": "area", "shape": "SQUARE" | "RECTANGLE" | "DISK" | "ELLIPSE", "size": 0.5, "size_y": 0.3,
        "position": [x, y, z], "target": [x, y, z], "color": [r, g, b], "power_w": 40},
       {"type": "point", "position": [...], "radius": 0.0, "color": [...], "power_w": 100},
       {"type": "spot", "position": [...], "target": [...], "spot_size_deg": 45, "spot_blend": 0.15,
        "radius": 0.0, "color": [...], "power_w": 200}],
     "world": {"type": "uniform", "color": [r, g, b], "strength": 1.0}
            | {"type": "hdri", "path": "studio.hdr", "strength": 1.0, "rotation_deg": 0.0}}

* frame "camera": the photo's camera — x right, y up, the camera looking along −z, origin at the
  camera (Blender's camera-object frame). frame "head": the fitted head — origin at the head
  model's centre, x the subject's left, y towards the back of the head, z up (Blender's Z-up
  frame, turned with the head's pose).
* A light shines from `position` along `direction` (a vector in the frame), or towards `target`
  (a point in the frame); with neither it aims at the head's centre. Area and spot lights use the
  aim; a point light shines everywhere.
* power_w, color, size, size_y, spot_size_deg (the full cone angle), spot_blend and radius mean
  what Blender's light properties of the same names mean: an area light of power P emits
  radiance color·P/(π·A); a point or spot light emits color·P/(4π) W/sr (a spot does not
  concentrate its power into the cone, as in Blender).
* world "uniform": radiance color·strength from every direction. world "hdri": an equirectangular
  .hdr (or .exr, .png, .jpg) file (a relative path is relative to the rig file), scaled by
  strength, in an environment frame read as Blender's Environment Texture reads it (Z up, the
  image's centre column along +X): the head frame itself, or for the camera frame (x right, y = the camera's viewing direction −z, z = the
  camera's up y). rotation_deg turns it about that Z, as a Mapping node's Z rotation does.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common.errors import FaceStageError

FRAMES = ("camera", "head")
LIGHT_TYPES = ("area", "point", "spot")
AREA_SHAPES = ("SQUARE", "RECTANGLE", "DISK", "ELLIPSE")
WORLD_TYPES = ("uniform", "hdri")
HDRI_SUFFIXES = (".hdr", ".exr", ".png", ".jpg", ".jpeg")
MAX_LIGHTS = 64


@dataclass(frozen=True)
class RigLight:
    """One light of a rig, in the rig's frame."""

    type: str  # one of LIGHT_TYPES
    position: tuple[float, float, float]
    direction: tuple[float, float, float] | None  # unit, the way it shines; None = towards the head centre
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    power_w: float = 10.0
    shape: str = "SQUARE"  # area lights
    size: float = 0.25  # area lights: side or diameter along local x
    size_y: float = 0.25  # area lights: along local y (RECTANGLE, ELLIPSE)
    spot_size_deg: float = 45.0  # spot lights: full cone angle
    spot_blend: float = 0.15  # spot lights: soft edge, fraction of the cone
    radius: float = 0.0  # point and spot lights: Blender's radius (soft shadows)
    name: str = ""

    def area(self) -> float:
        """Emitting area of an area light in m²."""
        if self.shape in ("SQUARE", "DISK"):
            side_x = side_y = self.size
        else:
            side_x, side_y = self.size, self.size_y
        return side_x * side_y * (math.pi / 4 if self.shape in ("DISK", "ELLIPSE") else 1.0)


@dataclass(frozen=True)
class RigWorld:
    """The world light: uniform radiance, or an equirectangular image."""

    type: str = "uniform"  # one of WORLD_TYPES
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    strength: float = 1.0
    path: str | None = None  # absolute path of the HDRI (type "hdri")
    rotation_deg: float = 0.0


@dataclass(frozen=True)
class Rig:
    """A whole rig: lights and world in one frame."""

    frame: str
    lights: tuple[RigLight, ...]
    world: RigWorld = field(default_factory=RigWorld)
    name: str = ""


def _vector(value: Any, what: str, size: int = 3, positive: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != size:
        raise FaceStageError(f"{what} must be a list of {size} numbers.")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise FaceStageError(f"{what} must be a list of {size} numbers.") from None
    if not all(math.isfinite(v) for v in out) or (positive and any(v < 0 for v in out)):
        raise FaceStageError(f"{what} must hold {'non-negative ' if positive else ''}finite numbers.")
    return out


def _number(doc: dict[str, Any], key: str, default: float, what: str, lo: float = 0.0,
            hi: float = math.inf) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not lo <= value <= hi:
        bounds = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
        raise FaceStageError(f"{what} {key} must be a number {bounds}.")
    return float(value)


def _light(doc: Any, index: int) -> RigLight:
    what = f"Rig light {index + 1}"
    if not isinstance(doc, dict):
        raise FaceStageError(f"{what} must be an object with type, position and power_w.")
    kind = str(doc.get("type", "")).lower()
    if kind not in LIGHT_TYPES:
        raise FaceStageError(f"{what} has type {doc.get('type')!r}; use one of {', '.join(LIGHT_TYPES)}.")
    if "position" not in doc:
        raise FaceStageError(f"{what} needs a position [x, y, z].")
    position = _vector(doc["position"], f"{what} position")
    if "direction" in doc and "target" in doc:
        raise FaceStageError(f"{what} gives both direction and target; keep one.")
    direction: tuple[float, float, float] | None = None
    if "direction" in doc:
        direction = _unit(_vector(doc["direction"], f"{what} direction"), f"{what} direction")
    elif "target" in doc:
        target = _vector(doc["target"], f"{what} target")
        direction = _unit(tuple(t - p for t, p in zip(target, position)), f"{what} target (it is the light's own position)")
    shape = str(doc.get("shape", "SQUARE")).upper()
    if kind == "area" and shape not in AREA_SHAPES:
        raise FaceStageError(f"{what} has shape {doc.get('shape')!r}; use one of {', '.join(AREA_SHAPES)}.")
    size = _number(doc, "size", 0.25, what, 1e-4, 100.0)
    size_y = _number(doc, "size_y", size, what, 1e-4, 100.0)
    power = doc.get("power_w", doc.get("power"))
    if power is None:
        raise FaceStageError(f"{what} needs power_w (watts, as Blender's light power).")
    return RigLight(type=kind, position=position, direction=direction,  # type: ignore[arg-type]
                    color=_vector(doc.get("color", [1.0, 1.0, 1.0]), f"{what} color", positive=True),  # type: ignore[arg-type]
                    power_w=_number({"power_w": power}, "power_w", 0.0, what, 0.0, 1e7), shape=shape,
                    size=size, size_y=size_y, spot_size_deg=_number(doc, "spot_size_deg", 45.0, what, 1.0, 180.0),
                    spot_blend=_number(doc, "spot_blend", 0.15, what, 0.0, 1.0),
                    radius=_number(doc, "radius", 0.0, what, 0.0, 10.0), name=str(doc.get("name", f"Rig Light {index + 1:02d}")))


def _unit(vector: tuple[float, ...], what: str) -> tuple[float, float, float]:
    norm = math.sqrt(sum(v * v for v in vector))
    if norm < 1e-9:
        raise FaceStageError(f"{what} has zero length.")
    return tuple(v / norm for v in vector)  # type: ignore[return-value]


def _world(doc: Any, folder: Path) -> RigWorld:
    if doc is None:
        return RigWorld()
    if not isinstance(doc, dict):
        raise FaceStageError("Rig world must be an object with a type (uniform or hdri).")
    kind = str(doc.get("type", "uniform")).lower()
    if kind not in WORLD_TYPES:
        raise FaceStageError(f"Rig world has type {doc.get('type')!r}; use one of {', '.join(WORLD_TYPES)}.")
    strength = _number(doc, "strength", 1.0, "Rig world", 0.0, 1e6)
    if kind == "uniform":
        return RigWorld(type=kind, color=_vector(doc.get("color", [0.0, 0.0, 0.0]), "Rig world color", positive=True),  # type: ignore[arg-type]
                        strength=strength)
    if not isinstance(doc.get("path"), str) or not doc["path"]:
        raise FaceStageError("Rig world of type hdri needs a path to an equirectangular image.")
    path = Path(doc["path"]).expanduser()
    path = path if path.is_absolute() else folder / path
    if path.suffix.lower() not in HDRI_SUFFIXES:
        raise FaceStageError(f"Rig world image {path.name} must be one of {', '.join(HDRI_SUFFIXES)}.")
    if not path.is_file():
        raise FaceStageError(f"Rig world image {path} does not exist.")
    rotation = doc.get("rotation_deg", 0.0)
    if isinstance(rotation, bool) or not isinstance(rotation, int | float) or not math.isfinite(rotation):
        raise FaceStageError("Rig world rotation_deg must be a number.")
    return RigWorld(type=kind, strength=strength, path=str(path.resolve()), rotation_deg=float(rotation))


def parse_rig(doc: Any, folder: str | os.PathLike[str] = ".", name: str = "") -> Rig:
    """A Rig from the file's parsed JSON (`folder` resolves a relative HDRI path)."""
    if not isinstance(doc, dict):
        raise FaceStageError("A rig must be a JSON object with frame, lights and world.")
    frame = str(doc.get("frame", "")).lower()
    if frame not in FRAMES:
        raise FaceStageError(f"Rig frame is {doc.get('frame')!r}; use one of {', '.join(FRAMES)}.")
    lights = doc.get("lights", [])
    if not isinstance(lights, list):
        raise FaceStageError("Rig lights must be a list.")
    if len(lights) > MAX_LIGHTS:
        raise FaceStageError(f"A rig may hold at most {MAX_LIGHTS} lights, not {len(lights)}.")
    world = _world(doc.get("world"), Path(folder))
    if not lights and (world.type == "uniform" and max(world.color) * world.strength <= 0):
        raise FaceStageError("The rig has no lights and a black world: nothing would be lit.")
    return Rig(frame=frame, lights=tuple(_light(light, j) for j, light in enumerate(lights)), world=world,
               name=str(doc.get("name", name)))


def load_rig(path: str | os.PathLike[str]) -> Rig:
    """Read and validate a rig JSON file; one-sentence FaceStageError on any problem."""
    file = Path(path)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FaceStageError(f"Rig file {file} does not exist.") from None
    except IsADirectoryError:
        raise FaceStageError(f"Rig file {file} is a folder, not a JSON file.") from None
    except (ValueError, UnicodeDecodeError):
        raise FaceStageError(f"Rig file {file} is not valid JSON.") from None
    return parse_rig(doc, file.resolve().parent, name=file.stem)


def rig_json(rig: Rig) -> dict[str, Any]:
    """The rig as the JSON document that parse_rig reads back (directions kept explicit)."""
    lights = []
    for light in rig.lights:
        doc: dict[str, Any] = {"name": light.name, "type": light.type, "position": list(light.position),
                               "color": list(light.color), "power_w": light.power_w}
        if light.direction is not None:
            doc["direction"] = list(light.direction)
        if light.type == "area":
            doc.update(shape=light.shape, size=light.size, size_y=light.size_y)
        else:
            doc["radius"] = light.radius
        if light.type == "spot":
            doc.update(spot_size_deg=light.spot_size_deg, spot_blend=light.spot_blend)
        lights.append(doc)
    world: dict[str, Any] = {"type": rig.world.type, "strength": rig.world.strength}
    if rig.world.type == "uniform":
        world["color"] = list(rig.world.color)
    else:
        world.update(path=rig.world.path, rotation_deg=rig.world.rotation_deg)
    return {"name": rig.name, "frame": rig.frame, "lights": lights, "world": world}
