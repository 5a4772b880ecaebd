"""Applications section: lighting presets, caricature and Render Shot."""

from __future__ import annotations

import bpy

from ..scene.query import face_object
from .panel import FaceStageSubPanel


class VIEW3D_PT_facestage_applications(FaceStageSubPanel):
    bl_label = "Applications"
    bl_idname = "VIEW3D_PT_facestage_applications"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator_menu_enum("facestage.relight_preset", "preset", text="Lighting Preset", icon="LIGHT_AREA")
        face = face_object()
        keys = face.data.shape_keys.key_blocks if face is not None and face.data.shape_keys else None
        if keys is not None and keys.get("Caricature") is not None:
            layout.prop(keys["Caricature"], "value", text="Caricature", slider=True)
        else:
            layout.operator("facestage.caricature", icon="MOD_SIMPLEDEFORM")
        layout.operator("facestage.render_shot", icon="RENDER_STILL")


classes: tuple[type, ...] = (VIEW3D_PT_facestage_applications,)
