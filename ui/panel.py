"""N-panel tab "FaceStage" in the 3D viewport: the parent panel; each section is a sub-panel in its own module."""

from __future__ import annotations

import bpy

from .. import deps


class VIEW3D_PT_facestage(bpy.types.Panel):
    """Reconstruct a face from a photo and edit its light stage."""

    bl_label = "FaceStage"
    bl_idname = "VIEW3D_PT_facestage"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceStage"

    def draw(self, context: bpy.types.Context) -> None:
        missing = deps.missing()
        if not missing:
            return
        box = self.layout.box()
        box.label(text=f"Missing: {', '.join(missing)}", icon="ERROR")
        box.operator("preferences.addon_show", text="Install in Preferences", icon="PREFERENCES").module = addon_module()


def addon_module() -> str:
    """The add-on's module name as Blender knows it (bl_ext.<repo>.facestage inside Blender)."""
    return __package__.rpartition(".")[0] if __package__ else "facestage"


class FaceStageSubPanel(bpy.types.Panel):
    """Placement shared by the sections of the FaceStage tab (not registered itself)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceStage"
    bl_parent_id = "VIEW3D_PT_facestage"


classes: tuple[type, ...] = (VIEW3D_PT_facestage,)
