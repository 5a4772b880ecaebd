"""Stages 0 → 1 → 2 of the reconstruction, with progress, cancel, rollback and a seed.

(Interface first; the stages are filled in as the renderer and head model land.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .config import ReconstructConfig
from .result import Result


@dataclass(frozen=True)
class Progress:
    """One progress report: stage name, step within the stage, steps in the stage, current loss."""

    stage: str
    step: int
    total: int
    loss: float = float("nan")
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def reconstruct(photo_path: str, config: ReconstructConfig, progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> Result:
    """Reconstruct one photo; raises FaceStageError (incl. Cancelled) on user-facing problems."""
    raise NotImplementedError
