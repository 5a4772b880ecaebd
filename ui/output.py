"""Output section: where results go, the last result folder, and building a scene from any result folder."""

from __future__ import annotations

import bpy

from .panel import FaceStageSubPanel
from ..properties import settings as get_settings


class VIEW3D_PT_facestage_output(FaceStageSubPanel):
    bl_label = "Output"
    bl_idname = "VIEW3D_PT_facestage_output"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = get_settings(context)
        layout = self.layout
        layout.prop(settings, "output_dir")
        if settings.result_dir:
            row = layout.row(align=True)
            row.label(text=settings.result_dir, icon="FILE_FOLDER")
            row.operator("wm.path_open", text="", icon="FOLDER_REDIRECT").filepath = settings.result_dir
        layout.operator("facestage.build_scene", icon="FILEBROWSER")


classes: tuple[type, ...] = (VIEW3D_PT_facestage_output,)
