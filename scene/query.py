"""Find the parts of a built FaceStage scene again (for the panel and the operators), by tag rather than by name.

Users rename things; the builders tag what they create (scene.transaction.TAG)
and mark each stage light with its index, which is what these look up.
"""

from __future__ import annotations

import bpy
from mathutils import Vector

from .lights import INDEX, is_stage_light
from .transaction import ROLE, TAG


def stage_collection() -> bpy.types.Collection | None:
    """The collection of the most recent FaceStage build in this file."""
    for collection in bpy.data.collections:
        if collection.get(TAG) is not None:
            return collection
    return None


def role_object(role: str) -> bpy.types.Object | None:
    collection = stage_collection()
    if collection is None:
        return None
    for obj in collection.all_objects:
        if obj.get(ROLE) == role:
            return obj
    return None


def face_object() -> bpy.types.Object | None:
    """The "Face" mesh object (by role, so a renamed face is still found)."""
    return role_object("face")


def stage_lights() -> list[bpy.types.Object]:
    """The 20 stage lights in stage order."""
    collection = stage_collection()
    if collection is None:
        return []
    return sorted((o for o in collection.all_objects if is_stage_light(o)), key=lambda o: int(o[INDEX]))



def blocking_objects(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """Rendered objects outside the FaceStage collection whose bounds enclose the face or the FaceStage camera.

    The head is built at the world origin, where a new file's default cube
    already sits: inside it the camera sees only the cube's walls.
    """
    collection, face = stage_collection(), face_object()
    if collection is None or face is None:
        return []
    camera = role_object("camera")
    points = [face.matrix_world.translation] + ([camera.matrix_world.translation] if camera is not None else [])
    ours = set(collection.all_objects)
    blocking = []
    for obj in scene.objects:
        if obj in ours or obj.type not in ("MESH", "CURVE", "SURFACE", "META", "FONT") or obj.hide_render:
            continue
        corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
        low = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
        high = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
        if any(all(low[i] <= p[i] <= high[i] for i in range(3)) for p in points):
            blocking.append(obj)
    return blocking
