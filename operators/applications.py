"""Applications on a built scene: relighting presets and caricature (filled in by the applications issue)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty

from . import polls
from .types import Result

PRESET_ITEMS = [
    ("three_point", "Studio Three-Point", "Key, fill and back light"),
    ("rembrandt", "Rembrandt", "Key high to one side: a triangle of light on the far cheek"),
    ("butterfly", "Butterfly", "Key high in front: a butterfly shadow under the nose"),
    ("split", "Split", "Key at 90°: half of the face in shadow"),
    ("rim", "Rim", "Lights behind the head outline it"),
    ("soft_box", "Soft Box", "One large soft light in front"),
]


class FACESTAGE_OT_relight_preset(bpy.types.Operator):
    """Set the 20 stage lights to a lighting preset (undoable)"""

    bl_idname = "facestage.relight_preset"
    bl_label = "Apply Lighting Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS)  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.stage_built(cls, context)

    def execute(self, context: bpy.types.Context) -> Result:
        self.report({"ERROR"}, "Lighting presets are not available yet.")
        return {"CANCELLED"}


class FACESTAGE_OT_caricature(bpy.types.Operator):
    """Add a "Caricature" shape key that exaggerates how this face differs from the average head"""

    bl_idname = "facestage.caricature"
    bl_label = "Add Caricature"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return polls.face_built(cls, context)

    def execute(self, context: bpy.types.Context) -> Result:
        self.report({"ERROR"}, "Caricature is not available yet.")
        return {"CANCELLED"}


classes: tuple[type, ...] = (FACESTAGE_OT_relight_preset, FACESTAGE_OT_caricature)
