"""Apps section (labelled Applications): lighting presets, environment rotation, caricature, passes and Render Shot."""

from __future__ import annotations

import bpy

from ..scene.caricature import CARICATURE, caricature_keys
from ..scene.query import face_object
from .panel import FaceStageSubPanel


class VIEW3D_PT_facestage_apps(FaceStageSubPanel):
    bl_label = "Applications"
    bl_idname = "VIEW3D_PT_facestage_apps"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.operator_menu_enum("facestage.relight_preset", "preset", text="Lighting Preset", icon="LIGHT_AREA")
        row.operator("facestage.rotate_environment", text="", icon="WORLD")
        row.operator("facestage.apply_rig", text="", icon="OUTLINER_OB_LIGHT")
        keys = caricature_keys(face_object())
        if keys:
            column = layout.column(align=True)
            column.label(text="Caricature (0 = fitted face, −1 = average head)")
            column.prop(keys[0], "value", text="Whole Face", slider=True)
            for key in keys[1:]:
                column.prop(key, "value", text=key.name.removeprefix(CARICATURE + " "), slider=True)
        else:
            layout.operator("facestage.caricature", icon="MOD_SIMPLEDEFORM")
        row = layout.row(align=True)
        row.operator("facestage.setup_passes", icon="NODE_COMPOSITING")
        row.operator("facestage.render_shot", icon="RENDER_STILL")


classes: tuple[type, ...] = (VIEW3D_PT_facestage_apps,)
