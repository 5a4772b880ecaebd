"""Apps on a built scene (core/apps/ in Blender): relighting presets, environment rotation, caricature shape keys, passes."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ..core.common.config import LIGHTING_PRESETS
from ..properties import settings as get_settings
from ..scene.caricature import add_caricature
from ..scene.passes import setup_passes
from ..scene.query import face_object
from . import polls
from .base import FaceStageOperator, OperatorReturn


class _StageEdit(FaceStageOperator):
    """Shared by operators that edit the built light stage and environment (undoable; need the core's torch)."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context) and polls.dependencies_ready(cls)


# "Fitted", then config.LIGHTING_PRESETS (core.apps.relight.PRESETS) with their labels and tooltips.
PRESET_ITEMS = [("fitted", "Fitted", "The lighting the reconstruction found in the photo"),
                *((name, *text) for name, text in zip(LIGHTING_PRESETS, [
                    ("Studio Three-Point", "Key, fill and back light"),
                    ("Rembrandt", "Key high to one side, a soft fill: a triangle of light on the far cheek"),
                    ("Butterfly", "Key high in front, a reflector below: a butterfly shadow under the nose"),
                    ("Split", "Key at 90°: half of the face in shadow"),
                    ("Rim", "Two lights behind the head outline it"),
                    ("Soft Box", "A large soft light in front, a fill on the other side"),
                ], strict=True))]


class FACESTAGE_OT_relight_preset(_StageEdit):
    """Set the 20 stage lights and the environment to a lighting preset, or back to the fitted lighting (undoable)"""

    bl_idname = "facestage.relight_preset"
    bl_label = "Apply Lighting Preset"

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS)  # type: ignore[valid-type]

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        from ..scene.relight import apply_lighting  # imports torch (core): only once the dependencies are installed

        scene = context.scene
        assert scene is not None
        note = apply_lighting(scene, self.preset)
        label = next(item[1] for item in PRESET_ITEMS if item[0] == self.preset)
        note = f" ({note})" if note else ""
        self.report({"INFO"}, f"Stage lights and environment set to {label}{note}; press F12 or Render Shot to see it.")
        return {"FINISHED"}


class FACESTAGE_OT_apply_rig(_StageEdit):
    """Light the scene with a rig file of area, point and spot lights and a world (the stage lights go off); undoable"""

    bl_idname = "facestage.apply_rig"
    bl_label = "Apply Light Rig"

    filepath: StringProperty(name="Rig File", subtype="FILE_PATH", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                             description="A FaceStage rig JSON (see docs/skin.md): the file `facestage relight --rig` reads")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        if self.filepath:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        from ..scene.relight import apply_rig  # imports torch (core): only once the dependencies are installed

        scene = context.scene
        assert scene is not None
        if not self.filepath:
            self.report({"ERROR"}, "Choose a rig file to apply.")
            return {"CANCELLED"}
        count = apply_rig(scene, bpy.path.abspath(self.filepath))
        self.report({"INFO"}, f"Lit by {count} rig light{'s' if count != 1 else ''} from {Path(self.filepath).name}; "
                    "the stage lights are off (Lighting Preset › Fitted brings them back).")
        return {"FINISHED"}


class FACESTAGE_OT_rotate_environment(_StageEdit):
    """Turn the fitted environment light around the head (SH rotation, no re-fit); undoable"""

    bl_idname = "facestage.rotate_environment"
    bl_label = "Rotate Environment"

    yaw: FloatProperty(name="Yaw", subtype="ANGLE", default=0.5236, description="Turn about the vertical axis")  # type: ignore[valid-type]
    pitch: FloatProperty(name="Pitch", subtype="ANGLE", default=0.0, description="Tilt about the left-right axis")  # type: ignore[valid-type]

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        from ..scene.relight import rotate_environment  # imports torch (core): only once the dependencies are installed

        scene = context.scene
        assert scene is not None
        rotate_environment(scene, math.degrees(self.yaw), math.degrees(self.pitch))
        return {"FINISHED"}


class FACESTAGE_OT_caricature(FaceStageOperator):
    """Add "Caricature" shape keys (global and per region) that exaggerate how this face differs from the average head"""

    bl_idname = "facestage.caricature"
    bl_label = "Add Caricature"
    bl_options = {"REGISTER", "UNDO"}

    factor: FloatProperty(name="Factor", default=1.8, min=0.0, max=3.0,  # type: ignore[valid-type]
                          description="1 keeps the fitted face, 0 gives the average head, 2 doubles the differences")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.face_built(cls, context) and polls.dependencies_ready(cls)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        from ..core.model.head import load_head_model  # imports torch: only once the dependencies are installed

        face = face_object()
        assert face is not None
        keys = add_caricature(face, load_head_model())
        keys[0].value = self.factor - 1.0
        self.report({"INFO"}, f"Added {len(keys)} caricature shape keys to {face.name}.")
        return {"FINISHED"}


class FACESTAGE_OT_setup_passes(FaceStageOperator):
    """Separate the render into albedo, diffuse, specular, stage-light and ambient layers (Cycles passes and compositor)"""

    bl_idname = "facestage.setup_passes"
    bl_label = "Set Up Passes"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                              description="Where renders write passes_####.exr (empty: the result folder)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        folder = self.directory or get_settings(context).result_dir
        directory = Path(bpy.path.abspath(folder or "//")) / ("" if self.directory else "passes")
        scene, view_layer = context.scene, context.view_layer
        assert scene is not None and view_layer is not None
        setup_passes(scene, view_layer, directory)
        self.report({"INFO"}, f"Renders now also write their passes to {directory}.")
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_relight_preset, FACESTAGE_OT_apply_rig, FACESTAGE_OT_rotate_environment, FACESTAGE_OT_caricature,
                             FACESTAGE_OT_setup_passes)
