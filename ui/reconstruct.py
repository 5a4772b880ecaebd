"""Reconstruct section: photo, quality, device, Run / Cancel, progress and status."""

from __future__ import annotations

import bpy

from ..jobs import RECONSTRUCT, running
from ..properties import settings as get_settings
from .panel import FaceStageSubPanel


class VIEW3D_PT_facestage_reconstruct(FaceStageSubPanel):
    bl_label = "Reconstruct"
    bl_idname = "VIEW3D_PT_facestage_reconstruct"

    def draw(self, context: bpy.types.Context) -> None:
        settings = get_settings(context)
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        busy = running(RECONSTRUCT) is not None
        column = layout.column()
        column.enabled = not busy
        column.prop(settings, "photo")
        column.prop(settings, "quality")
        column.prop(settings, "device")
        if busy:
            layout.progress(factor=settings.progress, type="BAR", text=settings.status or "Working…")
            layout.operator("facestage.cancel", icon="CANCEL")
            return
        layout.operator("facestage.reconstruct", icon="USER")
        if settings.status:
            layout.label(text=settings.status, icon="INFO")


classes: tuple[type, ...] = (VIEW3D_PT_facestage_reconstruct,)
