"""The light stage: an empty "Light Stage" at the stage centre parenting 20 area lights "Stage Light 01..20".

Positions, orientations, shapes, sizes, powers (W) and colours are taken as
they are from `Result.lights` (core.lightstage.blender_lights made them
Blender-ready); a light the fit switched off is hidden, not deleted, so it
can be switched back on by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import bpy
import numpy as np
from mathutils import Euler, Matrix, Quaternion, Vector

from ..core.result import Result
from .transaction import Transaction

STAGE = "Light Stage"
INDEX = "facestage_light"  # custom property: the light's index j on the stage
PARAMETERS = "facestage_stage"  # custom property on the empty: d, a, p, i, centre of the stage


def light_name(j: int) -> str:
    return f"Stage Light {j + 1:02d}"


def _first(light: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in light and light[key] is not None:
            return light[key]
    raise KeyError(keys[0])


def light_rotation(light: dict[str, Any], location: Vector, centre: Vector) -> Quaternion:
    """Orientation of a Blender area light (it emits along its local −Z)."""
    rotation = light.get("rotation")
    if rotation is not None:
        values = np.asarray(rotation, dtype=np.float64)
        if values.shape == (3, 3):
            return Matrix(values.tolist()).to_quaternion()
        if values.shape == (4,):
            return Quaternion(values.tolist())
        if values.shape == (3,):
            return Euler(values.tolist(), "XYZ").to_quaternion()
    normal = Vector(light.get("normal", centre - location)).normalized()
    if normal.dot(centre - location) < 0:
        normal = -normal
    return normal.to_track_quat("-Z", "Y")


def light_size(light: dict[str, Any], shape: str) -> float:
    """Diameter (DISK) or side (SQUARE) in metres; from the area when no size is given."""
    if light.get("size") is not None:
        return float(light["size"])
    area = float(_first(light, "area", "area_m2"))
    return 2.0 * math.sqrt(area / math.pi) if shape == "DISK" else math.sqrt(area)


def light_power(light: dict[str, Any]) -> float:
    return float(_first(light, "energy_w", "power_w", "energy", "power"))


def build_stage(tx: Transaction, result: Result, collection: bpy.types.Collection) -> tuple[bpy.types.Object, list[bpy.types.Object]]:
    """The empty and its 20 area lights, in stage order; the empty keeps the stage parameters for relighting."""
    centre = Vector(np.asarray(result.stage["centre"], dtype=np.float64).tolist())
    stage = tx.new(bpy.data.objects.new(STAGE, None), STAGE, role="stage")
    stage.empty_display_type = "SPHERE"
    stage.empty_display_size = 0.15
    stage.matrix_world = Matrix.Translation(centre)  # type: ignore[arg-type]
    stage[PARAMETERS] = {key: np.asarray(value, dtype=np.float64).tolist() for key, value in result.stage.items()}
    collection.objects.link(stage)
    lights = []
    for j, light in enumerate(result.lights):
        name = light_name(j)
        data = tx.new(bpy.data.lights.new(name, "AREA"), name)
        obj = tx.new(bpy.data.objects.new(name, data), name, role="light")
        obj[INDEX] = j
        collection.objects.link(obj)
        obj.parent = stage
        obj.matrix_parent_inverse = Matrix.Identity(4)
        place_light(obj, light, centre)
        lights.append(obj)
    return stage, lights


def place_light(obj: bpy.types.Object, light: dict[str, Any], centre: Vector) -> None:
    """Give one stage light the position, orientation, shape, size, power and colour of a Blender-ready light dict."""
    data = cast(bpy.types.AreaLight, obj.data)
    data.shape = "SQUARE" if str(light.get("shape", "DISK")).upper() == "SQUARE" else "DISK"
    data.size = max(light_size(light, data.shape), 1e-4)
    data.energy = light_power(light)
    color: Sequence[float] = light.get("color", (1.0, 1.0, 1.0))
    data.color = tuple(float(c) for c in color[:3])
    location = Vector(_first(light, "location", "position"))
    # matrix_world sets the transform and the stored matrix, so hidden (unevaluated) lights report it too
    obj.matrix_world = Matrix.LocRotScale(location, light_rotation(light, location, centre), None)  # type: ignore[arg-type]
    set_on(obj, data.energy > 0.0)


def set_on(obj: bpy.types.Object, on: bool) -> None:
    """Show or hide one stage light in renders and viewports."""
    obj.hide_render = not on
    obj.hide_viewport = not on


def is_on(obj: bpy.types.Object) -> bool:
    return not obj.hide_render


def is_stage_light(obj: bpy.types.Object) -> bool:
    return obj.type == "LIGHT" and obj.get(INDEX) is not None
