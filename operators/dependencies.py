"""Install and check the pinned heavy dependencies from the preferences."""

from __future__ import annotations

import bpy

from .. import deps
from .types import Result


class FACESTAGE_OT_check_dependencies(bpy.types.Operator):
    """Report the installed versions of PyTorch, Warp and MediaPipe and the compute device"""

    bl_idname = "facestage.check_dependencies"
    bl_label = "Check"

    def execute(self, context: bpy.types.Context) -> Result:
        missing = deps.missing()
        if missing:
            self.report({"WARNING"}, f"Missing dependencies: {', '.join(missing)}.")
            return {"FINISHED"}
        from ..core.doctor import report

        info = report()
        self.report({"INFO"}, ", ".join(f"{k} {info[k]}" for k in ("torch", "warp", "mediapipe", "device")))
        return {"FINISHED"}


class FACESTAGE_OT_install_dependencies(bpy.types.Operator):
    """Install the pinned PyTorch, Warp and MediaPipe into this extension's own folder (needs internet)"""

    bl_idname = "facestage.install_dependencies"
    bl_label = "Install Dependencies"

    def execute(self, context: bpy.types.Context) -> Result:
        wm = context.window_manager
        wm.progress_begin(0, 100)

        def progress(step: int, total: int, line: str) -> None:
            wm.progress_update(int(100 * step / max(total, 1)))

        try:
            deps.install(progress)
        except (RuntimeError, OSError) as error:
            self.report({"ERROR"}, f"Installing dependencies failed: {error}")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        deps.activate()
        self.report({"INFO"}, "Dependencies installed.")
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_check_dependencies, FACESTAGE_OT_install_dependencies)
