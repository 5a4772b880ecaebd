"""Reconstruct Face: the core runs in a worker thread, a modal timer shows its progress, the scene is built on the main thread.

Interactive use (invoke) starts a modal operator: the worker only runs
core.fit.pipeline.reconstruct and core.io.result.save and puts Progress items on a
queue; a timer drains the queue into the window manager's progress and the
panel's status line. ESC or Cancel sets the cancel event. Nothing in the
scene changes until the worker has succeeded, so a cancel or an error leaves
the file as it was. Scripts and tests run the same work synchronously with
EXEC_DEFAULT.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, StringProperty

from ..core.common.config import PHOTO_SUFFIXES, preset
from ..core.common.errors import Cancelled, FaceStageError
from ..core.io.result import save
from ..jobs import RECONSTRUCT, Job, Work, cancel_all, running
from ..properties import settings as get_settings
from . import polls
from .base import FaceStageOperator, OperatorReturn, redraw_panels

PHOTO_FILTER = ";".join(f"*{suffix}" for suffix in PHOTO_SUFFIXES)


def output_folder(output_dir: str, photo: str) -> Path:
    """A new folder for this photo's result: under the Output setting, else next to the .blend, else in the temp folder."""
    if output_dir:
        base = Path(bpy.path.abspath(output_dir))
    elif bpy.data.filepath:
        base = Path(bpy.data.filepath).parent / "facestage"
    else:
        base = Path(tempfile.gettempdir()) / "facestage"
    stem = Path(photo).stem or "face"
    folder, n = base / stem, 2
    while folder.exists():
        folder, n = base / f"{stem}_{n}", n + 1
    return folder


def progress_line(item: Any, stage_steps: dict[str, int]) -> tuple[float, str]:
    """(overall fraction, status line) of one core Progress item."""
    stage, step, total = str(item.stage), int(item.step), max(int(item.total), 1)
    names = list(stage_steps)
    if stage in stage_steps:
        done = sum(stage_steps[n] for n in names[:names.index(stage)]) + min(step, total) / total * stage_steps[stage]
        fraction = done / max(sum(stage_steps.values()), 1)
    else:
        fraction = min(step, total) / total
    text = f"{stage.capitalize()} {min(step, total)}/{total}"
    if item.loss == item.loss:
        text += f", loss {item.loss:.4g}"
    if item.message:
        text += f" — {item.message}"
    return max(0.0, min(1.0, fraction)), text


def reconstruction(photo: str, config: Any, folder: Path) -> Work:
    """The worker's function: core only, no bpy (returns the Result, saved into folder)."""

    def work(progress: Any, cancel: threading.Event) -> Any:
        from ..core.fit import pipeline  # imports torch, warp and mediapipe: only once they are installed

        result = pipeline.reconstruct(photo, config, progress=progress, cancel=cancel)
        if cancel.is_set():
            raise Cancelled()
        save(result, folder)
        return result

    return work


class FACESTAGE_OT_reconstruct(FaceStageOperator):
    """Reconstruct an editable 3D face, its material and its lighting from the chosen photo"""

    bl_idname = "facestage.reconstruct"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Photo", subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: StringProperty(default=PHOTO_FILTER, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore[valid-type]

    _job: Job | None = None
    _timer: Any = None
    _interactive = False
    _steps: dict[str, int] = {}
    _folder = Path()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running(RECONSTRUCT) is not None:
            cls.poll_message_set("A reconstruction is already running; wait for it or press Cancel")
            return False
        return polls.dependencies_ready(cls)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        self._interactive = True
        if not get_settings(context).photo:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        settings = get_settings(context)
        if self.filepath:
            settings.photo = self.filepath
        job = self.prepare(context)
        if job is None:
            return {"CANCELLED"}
        if self._interactive:
            return self.start(context, job)
        job.run()
        self.pump(context, job)
        return self.finish(context, job)

    def prepare(self, context: bpy.types.Context) -> Job | None:
        """Check the inputs on the main thread and make the job; reports and returns None when they are wrong."""
        settings = get_settings(context)
        photo = bpy.path.abspath(settings.photo) if settings.photo else ""
        if not photo:
            self.report({"ERROR"}, "Choose a photo of a face first.")
            return None
        if not os.path.isfile(photo):
            self.report({"ERROR"}, f"Cannot read photo {photo}: the file does not exist.")
            return None
        try:
            config = preset(settings.quality, device=settings.device)
            folder = output_folder(settings.output_dir, photo)
        except (FaceStageError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return None
        self._steps = {"landmarks": config.steps.landmarks, "lighting": config.steps.lighting, "maps": config.steps.maps}
        self._folder = folder
        settings.status, settings.progress = "Starting…", 0.0
        return Job(RECONSTRUCT, reconstruction(photo, config, folder), "Reconstruction failed unexpectedly")

    def start(self, context: bpy.types.Context, job: Job) -> OperatorReturn:
        wm = context.window_manager
        self._job = job
        job.start()
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> OperatorReturn:
        job = self._job
        assert job is not None
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel.set()
            get_settings(context).status = "Cancelling…"
            return {"RUNNING_MODAL"}
        if event.type == "TIMER":
            self.pump(context, job)
            if job.done.is_set():
                return self.finish(context, job)
        return {"PASS_THROUGH"}

    def pump(self, context: bpy.types.Context, job: Job) -> None:
        """Move queued progress into the status line, the progress bar and the cursor's progress."""
        items = job.drain()
        if not items:
            return
        settings = get_settings(context)
        settings.progress, text = progress_line(items[-1], self._steps)
        if not job.cancel.is_set():
            settings.status = text
        if self._timer is not None:
            context.window_manager.progress_update(int(1000 * settings.progress))
        redraw_panels(context)

    def finish(self, context: bpy.types.Context, job: Job) -> OperatorReturn:
        """Main thread, worker done: report the error, or build the scene from the result."""
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            wm.progress_end()
            self._timer = None
        job.release()
        settings = get_settings(context)
        settings.progress = 0.0
        redraw_panels(context)
        if job.error is not None:
            settings.status = job.error
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        from ..scene.build import RESULT_DIR, build_scene  # imports torch (core)

        try:
            collection = build_scene(job.value, context)
        except FaceStageError as error:
            settings.status = str(error)
            self.report({"ERROR"}, f"The result was saved in {self._folder} but the scene could not be built: {error}")
            return {"CANCELLED"}
        collection[RESULT_DIR] = str(self._folder)
        settings.result_dir = str(self._folder)
        settings.status = f"Done: {self._folder}"
        self.report({"INFO"}, f"Face reconstructed; the files are in {self._folder}.")
        polls.warn_blocking(self, context)
        return {"FINISHED"}


class FACESTAGE_OT_cancel(FaceStageOperator):
    """Stop the running reconstruction; the scene stays as it was"""

    bl_idname = "facestage.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running(RECONSTRUCT) is None:
            cls.poll_message_set("No reconstruction is running")
            return False
        return True

    def run(self, context: bpy.types.Context) -> OperatorReturn:
        job = running(RECONSTRUCT)
        if job is not None:
            job.cancel.set()
            get_settings(context).status = "Cancelling…"
        return {"FINISHED"}


@bpy.app.handlers.persistent
def _cancel_on_load(*_: Any) -> None:
    """Loading another file ends the modal operator; stop its worker too."""
    cancel_all()


def register() -> None:
    bpy.app.handlers.load_pre.append(_cancel_on_load)


def unregister() -> None:
    cancel_all()
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)


classes: tuple[type, ...] = (FACESTAGE_OT_reconstruct, FACESTAGE_OT_cancel)
