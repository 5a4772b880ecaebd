"""Resolve the compute device once, explicitly, instead of a global default."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .config import DEVICES
from .errors import FaceStageError


def pick(name: str = "auto") -> torch.device:
    """Map "auto" | "cpu" | "cuda" to a torch.device, failing clearly if CUDA is absent."""
    if name not in DEVICES:
        raise FaceStageError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FaceStageError("Device 'cuda' was requested but no CUDA GPU is available to PyTorch.")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """Human-readable device name for logs and `facestage doctor`."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


class _SharedMode:
    """torch's deterministic mode is process-global: overlapping runs (`batch --jobs`) share it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved = (False, False)  # the caller's (enabled, warn_only), kept by the first run in


_shared = _SharedMode()


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic torch kernels while a reconstruction runs, on CUDA and on CPU.

    CUDA's index_add/scatter backward use atomics whose order varies run to run; torch's deterministic
    mode swaps in sorted reductions. cuBLAS needs a fixed workspace for the same reason. On CPU, without
    it, the same photo and seed gave stage-1 focal lengths of 915.2-917.0 px on 2 threads depending on
    machine load (some multi-threaded accumulation); with it, runs are bit-identical idle and loaded, for
    about 2 % more time. The last of overlapping runs restores the caller's setting.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with _shared.lock:
        if _shared.users == 0:
            _shared.saved = (torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled())
            torch.use_deterministic_algorithms(True, warn_only=True)
        _shared.users += 1
    try:
        yield
    finally:
        with _shared.lock:
            _shared.users -= 1
            if _shared.users == 0:
                torch.use_deterministic_algorithms(_shared.saved[0], warn_only=_shared.saved[1])
