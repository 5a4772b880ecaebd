"""Long work off the main thread: a worker that never touches bpy and reports through a queue.

Neutral ground between operators/ (which start jobs) and ui/ (which shows
their progress): neither imports the other, both import this module.

The worker runs a plain function (core code, pip) with a progress callback
that only puts items on a `queue.Queue` and a `threading.Event` to stop it.
The main thread (a modal operator's timer, or the caller itself when run
synchronously) drains the queue and reads the outcome: the function's value,
or the error as one sentence.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .core.common.errors import Cancelled, FaceStageError

log = logging.getLogger(__name__)

Work = Callable[[Callable[[Any], None], threading.Event], Any]
# Kinds of job; at most one of each runs at a time.
RECONSTRUCT = "reconstruct"
INSTALL = "install"

_running: dict[str, Job] = {}


class Job:
    """One piece of work, its progress queue, its cancel flag and its outcome."""

    def __init__(self, kind: str, work: Work, failure: str) -> None:
        self.kind = kind
        self.work = work
        self.failure = failure  # sentence start for unexpected errors, e.g. "Reconstruction failed"
        self.queue: queue.Queue[Any] = queue.Queue()
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.value: Any = None
        self.error: str | None = None
        self.cancelled = False
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """Do the work in the calling thread; never raises."""
        try:
            self.value = self.work(self.queue.put, self.cancel)
        except FaceStageError as error:
            self.error = str(error)
            self.cancelled = isinstance(error, Cancelled)
        except Exception as error:  # a bug: the user gets one sentence, the console gets the traceback
            log.exception("%s", self.failure)
            detail = str(error).strip().rstrip(".")
            self.error = (f"{self.failure} ({type(error).__name__}{': ' + detail if detail else ''}); "
                          "see the system console for details.")
        finally:
            self.done.set()

    def start(self) -> None:
        """Run in a daemon thread and register as the running job of its kind."""
        _running[self.kind] = self
        self.thread = threading.Thread(target=self.run, name=f"FaceStage {self.kind}", daemon=True)
        self.thread.start()

    def drain(self) -> list[Any]:
        """Every progress item reported since the last call (main thread)."""
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return items

    def release(self) -> None:
        """Forget this job once its outcome has been handled."""
        if _running.get(self.kind) is self:
            del _running[self.kind]


def running(kind: str) -> Job | None:
    """The job of that kind still in progress or not yet handled, if any."""
    return _running.get(kind)


def cancel_all() -> None:
    """Ask every job to stop and forget them (file load, add-on unregister)."""
    for job in list(_running.values()):
        job.cancel.set()
    _running.clear()
