"""Applications on a built scene: relighting presets, caricature shape keys and render passes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ..core.errors import FaceStageError
from ..scene.caricature import add_caricature
from ..scene.passes import setup_passes
from ..scene.query import face_object
from ..ui.properties import settings as get_settings
from . import polls
from .types import Result


FAILED = object()


def _attempt(operator: bpy.types.Operator, action: Callable[[], Any]) -> Any:
    """Run a scene edit; a FaceStageError becomes the operator's error report (and FAILED), not a traceback."""
    try:
        return action()
    except FaceStageError as error:
        operator.report({"ERROR"}, str(error))
        return FAILED


class _StageEdit(bpy.types.Operator):
    """Shared by operators that edit the built light stage and environment (undoable; need the core's torch)."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context) and polls.dependencies_ready(cls)


# Identifiers are core.edit.PRESETS' names (listed here so registering never imports torch).
PRESET_ITEMS = [
    ("fitted", "Fitted", "The lighting the reconstruction found in the photo"),
    ("three-point", "Studio Three-Point", "Key, fill and back light"),
    ("rembrandt", "Rembrandt", "Key high to one side: a triangle of light on the far cheek"),
    ("butterfly", "Butterfly", "Key high in front: a butterfly shadow under the nose"),
    ("split", "Split", "Key at 90°: half of the face in shadow"),
    ("rim", "Rim", "Two lights behind the head outline it"),
    ("soft-box", "Soft Box", "One large soft light in front"),
]


class FACESTAGE_OT_relight_preset(_StageEdit):
    """Set the 20 stage lights and the environment to a lighting preset, or back to the fitted lighting (undoable)"""

    bl_idname = "facestage.relight_preset"
    bl_label = "Apply Lighting Preset"

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        from ..scene.relight import apply_lighting

        scene = context.scene
        assert scene is not None
        if _attempt(self, lambda: apply_lighting(scene, self.preset)) is FAILED:
            return {"CANCELLED"}
        label = next(item[1] for item in PRESET_ITEMS if item[0] == self.preset)
        self.report({"INFO"}, f"Stage lights and environment set to {label}; press F12 or Render Shot to see it.")
        return {"FINISHED"}


class FACESTAGE_OT_rotate_environment(_StageEdit):
    """Turn the fitted environment light around the head (SH rotation, no re-fit); undoable"""

    bl_idname = "facestage.rotate_environment"
    bl_label = "Rotate Environment"

    yaw: FloatProperty(name="Yaw", subtype="ANGLE", default=0.5236, description="Turn about the vertical axis")  # type: ignore[valid-type]
    pitch: FloatProperty(name="Pitch", subtype="ANGLE", default=0.0, description="Tilt about the left-right axis")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        from ..scene.relight import rotate_environment

        scene = context.scene
        assert scene is not None
        rotated = _attempt(self, lambda: rotate_environment(scene, math.degrees(self.yaw), math.degrees(self.pitch)))
        return {"CANCELLED"} if rotated is FAILED else {"FINISHED"}


class FACESTAGE_OT_caricature(bpy.types.Operator):
    """Add "Caricature" shape keys (global and per region) that exaggerate how this face differs from the average head"""

    bl_idname = "facestage.caricature"
    bl_label = "Add Caricature"
    bl_options = {"REGISTER", "UNDO"}

    factor: FloatProperty(name="Factor", default=1.8, min=0.0, max=3.0,  # type: ignore[valid-type]
                          description="1 keeps the fitted face, 0 gives the average head, 2 doubles the differences")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.face_built(cls, context) and polls.dependencies_ready(cls)

    def execute(self, context: bpy.types.Context) -> Result:
        from ..core.head import load_head_model

        face = face_object()
        assert face is not None
        keys = _attempt(self, lambda: add_caricature(face, load_head_model()))
        if keys is FAILED:
            return {"CANCELLED"}
        keys[0].value = self.factor - 1.0
        self.report({"INFO"}, f"Added {len(keys)} caricature shape keys to {face.name}.")
        return {"FINISHED"}


class FACESTAGE_OT_setup_passes(bpy.types.Operator):
    """Separate the render into albedo, diffuse, specular, stage-light and ambient layers (Cycles passes and compositor)"""

    bl_idname = "facestage.setup_passes"
    bl_label = "Set Up Passes"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                              description="Where renders write passes_####.exr (empty: the result folder)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context)

    def execute(self, context: bpy.types.Context) -> Result:
        folder = self.directory or get_settings(context).result_dir
        directory = Path(bpy.path.abspath(folder or "//")) / ("" if self.directory else "passes")
        scene, view_layer = context.scene, context.view_layer
        assert scene is not None and view_layer is not None
        setup_passes(scene, view_layer, directory)
        self.report({"INFO"}, f"Renders now also write their passes to {directory}.")
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_relight_preset, FACESTAGE_OT_rotate_environment, FACESTAGE_OT_caricature,
                             FACESTAGE_OT_setup_passes)
