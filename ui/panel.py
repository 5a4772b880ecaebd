"""N-panel tab "FaceStage" in the 3D viewport."""

from __future__ import annotations

import bpy

from .properties import settings as get_settings


class VIEW3D_PT_facestage(bpy.types.Panel):
    """Reconstruct a face from a photo and edit its light stage."""

    bl_label = "FaceStage"
    bl_idname = "VIEW3D_PT_facestage"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceStage"

    def draw(self, context: bpy.types.Context) -> None:
        settings = get_settings(context)
        layout = self.layout
        layout.prop(settings, "photo")
        row = layout.row(align=True)
        row.prop(settings, "quality", text="")
        row.prop(settings, "device", text="")
        layout.operator("facestage.reconstruct", icon="USER")
        if settings.status:
            layout.label(text=settings.status)


classes: tuple[type, ...] = (VIEW3D_PT_facestage,)
