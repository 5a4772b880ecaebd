"""Keep native libraries' own logging (TFLite, absl, glog, Warp's CUDA probe) off the user's terminal unless asked.

MediaPipe's C++ graph and Warp's native library write straight to file
descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK delegate", absl's
"W0000 ... inference_feedback_manager.cc", "Warp CUDA warning: Could not find
or load the NVIDIA CUDA driver"), past Python's sys.stderr and logging, and
none of them has a switch that works after the library is loaded. So the few
calls that trigger them run with descriptor 2 pointed at the null device.
`set_verbose(True)` (the CLI's -v) lets them through.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Shared:
    """The process-wide switch and the one redirection that overlapping users share."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.verbose = os.environ.get("FACESTAGE_VERBOSE", "") not in ("", "0")
        self.depth = 0
        self.saved: int | None = None  # the original descriptor 2 while redirected


_shared = _Shared()


def set_verbose(verbose: bool) -> None:
    """Let native libraries log to stderr (True) or silence them (False, the default)."""
    _shared.verbose = verbose


def is_verbose() -> bool:
    return _shared.verbose


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at the null device while native code that logs there runs.

    The descriptor is process-wide, so nested and concurrent uses (batch --jobs) share one redirection that the
    last one out restores; Python's own stderr output during it is lost too, so keep the block small.
    Where descriptor 2 cannot be duplicated (a GUI process without a console), nothing is redirected.
    """
    if _shared.verbose:
        yield
        return
    with _shared.lock:
        if _shared.depth == 0:
            _shared.saved = _redirect()
        _shared.depth += 1
    try:
        yield
    finally:
        with _shared.lock:
            _shared.depth -= 1
            if _shared.depth == 0 and _shared.saved is not None:
                _flush()
                os.dup2(_shared.saved, 2)
                os.close(_shared.saved)
                _shared.saved = None


def _flush() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # no stderr, or a closed one
        pass


def _redirect() -> int | None:
    """dup2 the null device onto descriptor 2; the saved original, or None when that is impossible."""
    _flush()
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:
        os.close(saved)
        return None
    return saved
