"""What every FaceStage operator shares: the return type Blender accepts, and FaceStageError as a one-sentence report.

Subclasses implement `run`; `execute` turns a FaceStageError (the user's
doing: a bad photo, a damaged result folder...) into the operator's error
report and CANCELLED. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Literal

import bpy

from ..core.common.errors import FaceStageError

OperatorReturn = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]


class FaceStageOperator(bpy.types.Operator):
    """Base of the FaceStage operators (not registered itself)."""

    def execute(self, context: bpy.types.Context) -> OperatorReturn:
        try:
            return self.run(context)
        except FaceStageError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        raise NotImplementedError


def redraw_panels(context: bpy.types.Context) -> None:
    """Redraw the 3D views (the FaceStage panel) and the preferences after progress changed off the main thread."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()
