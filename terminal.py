"""What the command line shows while it works: tqdm bars on a terminal, short lines in a log, nothing when quiet.

tqdm redraws its bar with carriage returns, which a terminal overwrites and a
log file keeps: a log of one reconstruction became a single line thousands of
characters long. So bars are drawn only when stderr is a terminal and the
command does not run inside Blender (`blender -b --command facestage`, whose
console interleaves its own output); everywhere else each stage writes one
line when it starts and one per quarter of its steps. `--quiet` shows neither.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm import tqdm

QUARTERS = (0.25, 0.5, 0.75, 1.0)


def inside_blender() -> bool:
    """True in a Blender binary (bpy loaded there has the executable's path; the PyPI bpy module has none)."""
    bpy = sys.modules.get("bpy")
    return bool(getattr(getattr(bpy, "app", None), "binary_path", ""))


def draws_bars(stream: TextIO | None = None) -> bool:
    """Whether progress may be drawn as tqdm bars on `stream` (default stderr)."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not inside_blender()


class Lines:
    """Progress as short lines: one when a counter starts, one at each quarter of its total."""

    def __init__(self, name: str, total: int, unit: str = "steps", stream: TextIO | None = None) -> None:
        self.name, self.total, self.unit = name, max(1, int(total)), unit
        self.stream = sys.stderr if stream is None else stream
        self.start = time.perf_counter()
        self.quarter = 0
        self._write(f"{name}: {self.total} {unit}")

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def update(self, done: int, loss: float = float("nan")) -> None:
        """Report `done` of `total`; writes a line each time a new quarter is reached."""
        fraction = min(1.0, done / self.total)
        crossed = sum(fraction >= q for q in QUARTERS)
        if crossed <= self.quarter:
            return
        self.quarter = crossed
        tail = f", loss {loss:.4g}" if loss == loss else ""
        elapsed = time.perf_counter() - self.start
        self._write(f"{self.name}: {QUARTERS[crossed - 1]:.0%} ({done}/{self.total}) in {elapsed:.1f} s{tail}")


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Callable[[Any], None] | None]:
    """A core progress callback (core.common.progress.Progress items) for the CLI, or None when quiet."""
    if quiet:
        yield None
        return
    bars: dict[str, Any] = {}
    bar_mode = draws_bars()

    def update(p: Any) -> None:
        stage, step, total = p.stage, p.step, p.total
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                if bar_mode:
                    other.close()
            bar = bars[stage] = (tqdm(total=total, desc=f"{stage:>9s}", unit="step", leave=True, dynamic_ncols=True)
                                 if bar_mode else Lines(stage, total))
        loss = getattr(p, "loss", float("nan"))
        if not bar_mode:
            bar.update(step, loss)
            return
        bar.n = step
        if loss == loss:
            bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        if bar_mode:
            for bar in bars.values():
                bar.close()


@contextmanager
def counter(name: str, total: int, unit: str, quiet: bool = False) -> Iterator[Callable[[], None]]:
    """A plain counter (e.g. photos of a batch): yields a function that counts one more."""
    if quiet:
        yield lambda: None
        return
    if draws_bars():
        with tqdm(total=total, desc=name, unit=unit) as bar:
            yield bar.update
        return
    lines = Lines(name, total, unit)
    done = [0]

    def one() -> None:
        done[0] += 1
        lines.update(done[0])

    yield one
