"""Small light-stage operators used by the panel's light list."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..scene.lights import is_on, is_stage_light, set_on
from . import polls
from .base import FaceStageOperator, OperatorReturn


class FACESTAGE_OT_toggle_light(FaceStageOperator):
    """Switch this stage light on or off (in renders and in the viewport)"""

    bl_idname = "facestage.toggle_light"
    bl_label = "Toggle Stage Light"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    name: StringProperty(name="Light", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        obj = bpy.data.objects.get(self.name)
        if obj is None or not is_stage_light(obj):
            self.report({"ERROR"}, f"{self.name!r} is not a FaceStage stage light.")
            return {"CANCELLED"}
        set_on(obj, not is_on(obj))
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_toggle_light,)
