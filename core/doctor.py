"""What is installed and which device would run: the first thing to ask when a user reports a problem."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys

PACKAGES = {"torch": "torch", "warp": "warp-lang", "mediapipe": "mediapipe", "numpy": "numpy", "bpy": "bpy"}


def _version(module: str, dist: str) -> str:
    if module == "bpy" and "bpy" in sys.modules:
        return str(sys.modules["bpy"].app.version_string)
    try:
        importlib.import_module(module)
    except Exception as error:  # a broken install must be reported, not crash the report
        return f"missing ({type(error).__name__}: {error})" if not isinstance(error, ModuleNotFoundError) else "missing"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(sys.modules[module], "__version__", "unknown"))


def report() -> dict[str, str]:
    """Versions of the heavy dependencies and the device `auto` resolves to."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    info.update({name: _version(name, dist) for name, dist in PACKAGES.items()})
    try:
        from . import device

        info["device"] = device.describe(device.pick("auto"))
        import torch

        info["cuda"] = torch.version.cuda or "not built with CUDA"
    except ImportError:
        info["device"] = "unknown (torch missing)"
    return info
