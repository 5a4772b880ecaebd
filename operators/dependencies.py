"""Check the dependencies, and add what the zip did not bundle: from the package index or from wheel files.

The installers run pip in a worker thread (no bpy there) so Blender stays
responsive; a modal timer copies pip's last line and the step count into the
preferences' status line. Scripts and tests run them synchronously
(EXEC_DEFAULT). "Install Dependencies" needs *Allow Online Access*; "Install
from Wheel Files" never touches the network (pip --no-index).
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import bpy

from .. import deps
from ..core.common.errors import FaceStageError
from ..jobs import INSTALL, Job, Work, running
from ..properties import install_status
from .base import FaceStageOperator, OperatorReturn, redraw_panels


def installation(progress: Any, cancel: threading.Event) -> None:
    """The online installer's worker: pip only, no bpy."""
    try:
        deps.install(lambda step, total, line: progress((step, total, line)))
    except (RuntimeError, OSError) as error:
        detail = str(error).strip().rstrip(".")
        raise FaceStageError(f"Installing the dependencies failed ({detail}). Check the internet connection "
                             "and the free disk space, then try again.") from None


def installation_from(folder: Path) -> Work:
    """The offline installer's worker for one folder of wheel files: pip --no-index, no bpy."""
    def work(progress: Any, cancel: threading.Event) -> None:
        try:
            deps.install(lambda step, total, line: progress((step, total, line)), wheel_folder=folder)
        except (RuntimeError, OSError) as error:
            detail = str(error).strip().rstrip(".")
            pins = " and ".join(pin.replace("==", " ") for pin in deps.HEAVY)
            raise FaceStageError(f"Installing from the wheel files in {folder} failed ({detail}). The folder must "
                                 f"hold the {pins} wheels for this computer and Python 3.11.") from None
    return work


class FACESTAGE_OT_check_dependencies(FaceStageOperator):
    """Report the installed versions of PyTorch, Warp and MediaPipe and the compute device"""

    bl_idname = "facestage.check_dependencies"
    bl_label = "Check"

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        missing = deps.missing()
        if missing:
            self.report({"WARNING"}, deps.missing_sentence(missing))
            return {"FINISHED"}
        from ..core.common.versions import report  # imports torch: only once the dependencies are installed

        info = report()
        self.report({"INFO"}, ", ".join(f"{k} {info[k]}" for k in ("torch", "warp", "mediapipe", "device")))
        return {"FINISHED"}


class Installer(FaceStageOperator):
    """What both installers share: the job, its modal progress and its outcome (not registered itself)."""

    _job: Job | None = None
    _timer: Any = None

    def work(self) -> Work:
        raise NotImplementedError

    @classmethod
    def busy(cls) -> bool:
        """True (and the tooltip says why) while an installation runs."""
        if running(INSTALL) is not None:
            cls.poll_message_set("The dependencies are being installed")
            return True
        return False

    def start(self, context: bpy.types.Context) -> OperatorReturn:
        wm = context.window_manager
        self._job = Job(INSTALL, self.work(), "Installing the dependencies failed unexpectedly")
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

    def run_now(self, context: bpy.types.Context) -> OperatorReturn:
        job = Job(INSTALL, self.work(), "Installing the dependencies failed unexpectedly")
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
        still = deps.missing()
        status.status = deps.missing_sentence(still) if still else "Installed. FaceStage has everything it needs."
        self.report({"WARNING"} if still else {"INFO"}, status.status if still else "Dependencies installed.")
        return {"FINISHED"}


class FACESTAGE_OT_install_dependencies(Installer):
    """Download and install the pinned dependencies this build does not bundle into the extension's own folder (needs internet)"""

    bl_idname = "facestage.install_dependencies"
    bl_label = "Install Dependencies"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if cls.busy():
            return False
        if not getattr(bpy.app, "online_access", True):
            cls.poll_message_set("Allow online access in Preferences > System > Network first, "
                                 "or use Install from Wheel Files")
            return False
        return True

    def work(self) -> Work:
        return installation

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        return self.start(context)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        return self.run_now(context)


class FACESTAGE_OT_install_wheel_files(Installer):
    """Install the pinned PyTorch and Warp from wheel files you downloaded (pick the .whl files or their folder); no network"""

    bl_idname = "facestage.install_wheel_files"
    bl_label = "Install from Wheel Files…"

    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: bpy.props.StringProperty(default="*.whl", options={"HIDDEN"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not cls.busy()

    def work(self) -> Work:
        return installation_from(Path(bpy.path.abspath(self.directory)))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else None
        if folder is None or not folder.is_dir():
            self.report({"ERROR"}, f"Choose the folder that holds the wheel files (not found: {self.directory or 'none'}).")
            return {"CANCELLED"}
        if not any(folder.glob("*.whl")):
            self.report({"ERROR"}, f"{folder} holds no .whl files; download the {' and '.join(deps.HEAVY)} "
                                   "wheels for this computer there first.")
            return {"CANCELLED"}
        return self.start(context) if self.options.is_invoke else self.run_now(context)


classes: tuple[type, ...] = (FACESTAGE_OT_check_dependencies, FACESTAGE_OT_install_dependencies,
                             FACESTAGE_OT_install_wheel_files)
