"""Add-on preferences: dependency status and the pinned installer."""

from __future__ import annotations

import bpy

from .. import deps
from .properties import DEVICE_ITEMS, QUALITY_ITEMS


class FACESTAGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__.rpartition(".")[0] if __package__ else "facestage"

    default_quality: bpy.props.EnumProperty(name="Default quality", items=QUALITY_ITEMS, default="default")  # type: ignore[valid-type]
    default_device: bpy.props.EnumProperty(name="Default device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        missing = deps.missing()
        box = layout.box()
        if missing:
            box.label(text=f"Missing: {', '.join(missing)}", icon="ERROR")
        else:
            box.label(text="PyTorch, Warp and MediaPipe are installed", icon="CHECKMARK")
        row = box.row()
        row.operator("facestage.install_dependencies", icon="IMPORT")
        row.operator("facestage.check_dependencies", icon="VIEWZOOM")
        layout.prop(self, "default_quality")
        layout.prop(self, "default_device")


classes: tuple[type, ...] = (FACESTAGE_AP_preferences,)
