"""Install and check the pinned heavy dependencies from the preferences.

The installer runs pip in a worker thread (no bpy there) so Blender stays
responsive; a modal timer copies pip's last line and the step count into the
preferences' status line. Scripts and tests run it synchronously (EXEC_DEFAULT).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

import bpy

from .. import deps
from ..core.common.errors import FaceStageError
from ..jobs import INSTALL, Job, running
from ..properties import install_status
from .base import FaceStageOperator, OperatorReturn, redraw_panels


def installation(progress: Any, cancel: threading.Event) -> None:
    """The worker's function: pip only, no bpy."""
    try:
        deps.install(lambda step, total, line: progress((step, total, line)))
    except (RuntimeError, OSError) as error:
        detail = str(error).strip().rstrip(".")
        raise FaceStageError(f"Installing the dependencies failed ({detail}). Check the internet connection "
                             "and the free disk space, then try again.") from None


class FACESTAGE_OT_check_dependencies(FaceStageOperator):
    """Report the installed versions of PyTorch, Warp and MediaPipe and the compute device"""

    bl_idname = "facestage.check_dependencies"
    bl_label = "Check"

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        missing = deps.missing()
        if missing:
            self.report({"WARNING"}, f"Missing dependencies: {', '.join(missing)}.")
            return {"FINISHED"}
        from ..core.common.versions import report  # imports torch: only once the dependencies are installed

        info = report()
        self.report({"INFO"}, ", ".join(f"{k} {info[k]}" for k in ("torch", "warp", "mediapipe", "device")))
        return {"FINISHED"}


class FACESTAGE_OT_install_dependencies(FaceStageOperator):
    """Install the pinned PyTorch, Warp and MediaPipe into this extension's own folder (needs internet, about 3 GB)"""

    bl_idname = "facestage.install_dependencies"
    bl_label = "Install Dependencies"

    _job: Job | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running(INSTALL) is not None:
            cls.poll_message_set("The dependencies are being installed")
            return False
        if not getattr(bpy.app, "online_access", True):
            cls.poll_message_set("Allow online access in Preferences > System > Network first")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        wm = context.window_manager
        self._job = Job(INSTALL, installation, "Installing the dependencies failed unexpectedly")
        self._job.start()
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        install_status(context).status = "Starting pip…"
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        job = self._job
        assert job is not None
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        self.pump(context, job)
        if not job.done.is_set():
            return {"PASS_THROUGH"}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        return self.finish(context, job)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        job = Job(INSTALL, installation, "Installing the dependencies failed unexpectedly")
        job.run()
        self.pump(context, job)
        return self.finish(context, job)

    def pump(self, context: bpy.types.Context, job: Job) -> None:
        items = job.drain()
        if not items:
            return
        step, total, line = items[-1]
        status = install_status(context)
        status.progress = step / max(total, 1)
        status.status = f"Step {min(step + 1, total)} of {total}: {line}"
        if self._timer is not None:
            context.window_manager.progress_update(int(100 * status.progress))
        redraw_panels(context)

    def finish(self, context: bpy.types.Context, job: Job) -> OperatorReturn:
        job.release()
        status = install_status(context)
        status.progress = 0.0
        if job.error is not None:
            status.status = job.error
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        deps.activate()
        importlib.invalidate_caches()
        status.status = "Installed. PyTorch, Warp and MediaPipe are ready."
        self.report({"INFO"}, "Dependencies installed.")
        return {"FINISHED"}


classes: tuple[type, ...] = (FACESTAGE_OT_check_dependencies, FACESTAGE_OT_install_dependencies)
