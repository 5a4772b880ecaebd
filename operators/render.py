"""Render Shot: what F12 does, always with Cycles, optionally written to a file."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import polls
from .base import FaceStageOperator, OperatorReturn


class FACESTAGE_OT_render_shot(FaceStageOperator):
    """Render the scene through its camera with Cycles, under the current stage lights and shape keys"""

    bl_idname = "facestage.render_shot"
    bl_label = "Render Shot"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                             description="Also save the image here (empty: only the Render Result)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.has_camera(cls, context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        if context.scene.render.engine != "CYCLES":
            context.scene.render.engine = "CYCLES"
            self.report({"INFO"}, "Switched the render engine to Cycles.")
        bpy.ops.render.render("INVOKE_DEFAULT")
        return {"FINISHED"}

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        render = context.scene.render
        engine = render.engine
        render.engine = "CYCLES"
        try:
            bpy.ops.render.render()
        finally:
            render.engine = engine
        if self.filepath:
            path = Path(bpy.path.abspath(self.filepath))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                bpy.data.images["Render Result"].save_render(filepath=str(path), scene=context.scene)
            except (OSError, RuntimeError) as error:
                self.report({"ERROR"}, f"Cannot write the render to {path}: {error}")
                return {"CANCELLED"}
            self.report({"INFO"}, f"Rendered {path}.")
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_render_shot,)
