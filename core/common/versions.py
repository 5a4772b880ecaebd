"""What is installed and which device would run: for `facestage doctor`, scene.json and bug reports."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys

FACESTAGE_VERSION = "0.1.0"  # blender_manifest.toml's version
PACKAGES = {"torch": "torch", "warp": "warp-lang", "mediapipe": "mediapipe", "numpy": "numpy", "bpy": "bpy"}


def version(module: str, dist: str) -> str:
    """Installed version of `module` (distribution `dist`), "missing", or the reason it fails to import."""
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


def result_versions() -> dict[str, str]:
    """The versions a result records in scene.json (bpy is left out: the core does not depend on it)."""
    return {name: version(name, dist) for name, dist in PACKAGES.items() if name != "bpy"} | {"facestage": FACESTAGE_VERSION}


def report() -> dict[str, str]:
    """Versions of the heavy dependencies and the device `auto` resolves to."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    info.update({name: version(name, dist) for name, dist in PACKAGES.items()})
    try:
        import torch  # heavy: only when asked, and absent until the dependencies are installed

        from . import device  # imports torch

        info["device"] = device.describe(device.pick("auto"))
        info["cuda"] = torch.version.cuda or "not built with CUDA"
    except ImportError:
        info["device"] = "unknown (torch missing)"
    return info
