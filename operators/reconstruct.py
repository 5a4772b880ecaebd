"""Reconstruct Face: runs the core off the main thread and builds the scene on it."""

from __future__ import annotations

import bpy

from .. import deps
from .types import Result


class FACESTAGE_OT_reconstruct(bpy.types.Operator):
    """Reconstruct an editable 3D face, its material and its lighting from the chosen photo"""

    bl_idname = "facestage.reconstruct"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        missing = deps.missing()
        if missing:
            cls.poll_message_set(f"Install dependencies first (missing: {', '.join(missing)})")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> Result:
        self.report({"ERROR"}, "Reconstruction is not available in this build yet.")
        return {"CANCELLED"}


classes: tuple[type, ...] = (FACESTAGE_OT_reconstruct,)
