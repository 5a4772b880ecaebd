"""Shared checks of the operators: poll() helpers that say why a button is greyed out, and post-build warnings."""

from __future__ import annotations

import bpy

from .. import deps
from ..scene.query import blocking_objects, face_object, stage_collection


def dependencies_ready(cls: type[bpy.types.Operator]) -> bool:
    missing = deps.missing()
    if missing:
        cls.poll_message_set(f"Install the dependencies first in the add-on preferences (missing: {', '.join(missing)})")
        return False
    return True


def stage_built(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    if stage_collection() is None:
        cls.poll_message_set("Build a FaceStage scene first (Reconstruct, or Build Scene from a result folder)")
        return False
    return True


def face_built(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    if face_object() is None:
        cls.poll_message_set("This file has no FaceStage face; reconstruct or build one first")
        return False
    return True


def has_camera(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    if context.scene is None or context.scene.camera is None:
        cls.poll_message_set("The scene has no active camera to render from")
        return False
    return True


def warn_blocking(operator: bpy.types.Operator, context: bpy.types.Context) -> None:
    """After a build: warn about objects (the default cube) that enclose the face or its camera."""
    blocking = blocking_objects(context.scene) if context.scene is not None else []
    if blocking:
        names = ", ".join(o.name for o in blocking[:3])
        operator.report({"WARNING"}, f"{names} enclose{'s' if len(blocking) == 1 else ''} the face or its camera "
                        "and will hide it in renders; hide or delete "
                        f"{'it' if len(blocking) == 1 else 'them'} to render the FaceStage shot.")
