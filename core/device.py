"""Resolve the compute device once, explicitly, instead of a global default."""

from __future__ import annotations

import torch

from .errors import FaceStageError

DEVICES = ("auto", "cpu", "cuda")


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
