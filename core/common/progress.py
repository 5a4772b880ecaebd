"""Progress reports, cancel checks and NaN rollback around the optimiser loops of every stage.

One place for the three things a long loop owes its caller: a `Progress`
item after each step (the CLI draws tqdm bars from them, the Blender panel a
progress bar), a prompt stop when the user cancels (raising `Cancelled`, so
nothing is written), and recovery from a non-finite loss or gradient (the
parameters roll back to the last good snapshot and the step size halves).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import Cancelled, FaceStageError

log = logging.getLogger(__name__)

MAX_ROLLBACKS = 20
SNAPSHOT_EVERY = 10  # steps between snapshots of the last good state


@dataclass(frozen=True)
class Progress:
    """One progress report: stage name, step within the stage, steps in the stage, current loss."""

    stage: str
    step: int
    total: int
    loss: float = float("nan")
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise Cancelled when the user asked to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


class Guard:
    """Cancel checks, progress reports and NaN rollback around an optimiser loop."""

    def __init__(self, stage: str, total: int, progress: ProgressCallback | None, cancel: threading.Event | None,
                 params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        self.stage, self.total, self.progress, self.cancel = stage, total, progress, cancel
        self.params, self.optimizer = params, optimizer
        self.good = self._snapshot()
        self.rollbacks = 0

    def _snapshot(self) -> tuple[list[torch.Tensor], dict]:  # type: ignore[type-arg]
        return [p.detach().clone() for p in self.params], copy.deepcopy(self.optimizer.state_dict())

    def step(self, step: int, loss: torch.Tensor) -> bool:
        """After backward(): True if the optimiser may step; on NaN/Inf restore and halve the learning rate."""
        check_cancel(self.cancel)
        finite = bool(torch.isfinite(loss)) and all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in self.params)
        if not finite:
            self.rollbacks += 1
            if self.rollbacks > MAX_ROLLBACKS:
                raise FaceStageError(f"The {self.stage} stage diverged (non-finite values even after {MAX_ROLLBACKS} rollbacks).")
            values, state = self.good
            with torch.no_grad():
                for p, v in zip(self.params, values):
                    p.copy_(v)
            self.optimizer.load_state_dict(copy.deepcopy(state))
            for group in self.optimizer.param_groups:
                group["lr"] *= 0.5
            self.optimizer.zero_grad(set_to_none=True)
            log.warning("Non-finite loss or gradient in %s step %d; rolled back and halved the step size.", self.stage, step)
            return False
        if step % SNAPSHOT_EVERY == 0:
            self.good = self._snapshot()
        if self.progress is not None:
            self.progress(Progress(self.stage, step + 1, self.total, float(loss.detach())))
        return True
