"""Build Scene: make the FaceStage collection from an existing result folder (no reconstruction)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..properties import settings as get_settings
from . import polls
from .base import FaceStageOperator, OperatorReturn


class FACESTAGE_OT_build_scene(FaceStageOperator):
    """Build the face, material, light stage, world and camera from a FaceStage result folder"""

    bl_idname = "facestage.build_scene"
    bl_label = "Build Scene from Folder"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Result folder", subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.dependencies_ready(cls)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        if not self.directory:
            self.directory = get_settings(context).result_dir
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        from ..scene.build import build_scene  # imports torch (core): only once the dependencies are installed

        if not self.directory:
            self.report({"ERROR"}, "Choose a FaceStage result folder first.")
            return {"CANCELLED"}
        folder = Path(bpy.path.abspath(self.directory))
        build_scene(folder, context)
        get_settings(context).result_dir = str(folder)
        self.report({"INFO"}, f"Built the FaceStage scene from {folder}.")
        polls.warn_blocking(self, context)
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_build_scene,)
