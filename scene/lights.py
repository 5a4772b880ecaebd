"""The light stage: an empty "Light Stage" at the stage centre parenting 20 area lights "Stage Light 01..20".

Positions, orientations (3x3 rotation, local −Z = emission), shapes, sizes
(disk diameter), powers (W) and colours are taken as they are from
`Result.lights` (core.model.lightstage.blender_lights made them Blender-ready). A
light the fit switched off is hidden, not deleted, so it can be switched
back on by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.io.result import Result
from .transaction import Transaction

STAGE = "Light Stage"
INDEX = "facestage_light"  # custom property: the light's index j on the stage
PARAMETERS = "facestage_stage"  # custom property on the empty: d, a, p, i, centre of the stage


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
        name = str(light["name"])  # core.model.lightstage.light_name
        data = tx.new(bpy.data.lights.new(name, "AREA"), name)
        obj = tx.new(bpy.data.objects.new(name, data), name, role="light")
        obj[INDEX] = j
        collection.objects.link(obj)
        obj.parent = stage
        obj.matrix_parent_inverse = Matrix.Identity(4)
        place_light(obj, light)
        lights.append(obj)
    return stage, lights


def place_light(obj: bpy.types.Object, light: dict[str, Any]) -> None:
    """Give one stage light the position, orientation, shape, size, power and colour of a Blender-ready light dict."""
    data = cast(bpy.types.AreaLight, obj.data)
    data.shape = "SQUARE" if str(light.get("shape", "DISK")).upper() == "SQUARE" else "DISK"
    data.size = max(float(light["size"]), 1e-4)
    data.energy = float(light["power_w"])
    color: Sequence[float] = light["color"]
    data.color = tuple(float(c) for c in color[:3])
    location = Vector(light["position"])
    # matrix_world sets the transform and the evaluated matrix: hidden lights are not evaluated, and this
    # keeps their matrix_world right after building (after an undo or reload it is stale until shown)
    rotation = Matrix(np.asarray(light["rotation"], dtype=np.float64).tolist())
    obj.matrix_world = Matrix.LocRotScale(location, rotation, None)  # type: ignore[arg-type]
    set_on(obj, data.energy > 0.0)


def set_on(obj: bpy.types.Object, on: bool) -> None:
    """Show or hide one stage light in renders and viewports."""
    obj.hide_render = not on
    obj.hide_viewport = not on


def is_on(obj: bpy.types.Object) -> bool:
    return not obj.hide_render


def is_stage_light(obj: bpy.types.Object) -> bool:
    return obj.type == "LIGHT" and obj.get(INDEX) is not None
