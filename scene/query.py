"""Find the parts of a built FaceStage scene again (for the panel and the operators), by tag rather than by name.

Users rename things; the builders tag what they create (scene.transaction.TAG)
and mark each stage light with its index, which is what these look up.
"""

from __future__ import annotations

import bpy

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

