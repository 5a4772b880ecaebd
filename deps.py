"""The add-on's heavy dependencies: where they live and how to install them.

torch, warp-lang and mediapipe are too large for the extension zip, so the
preferences offer to pip-install them, pinned, into the extension's own user
directory. Only the versions listed here are ever installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Exactly the versions the core is tested with (tests/test_deps.py keeps these in step with requirements.txt).
PINNED = ("torch==2.13.0", "warp-lang==1.19.0", "numpy==1.26.4", "scipy==1.15.3", "pillow==11.3.0", "tqdm==4.67.1")
# MediaPipe pulls a tree of optional extras; it is installed with --no-deps after its minimal runtime deps.
PINNED_MEDIAPIPE_DEPS = ("protobuf==4.25.8", "opencv-python-headless==4.11.0.86", "absl-py==2.3.1",
                         "attrs==25.3.0", "flatbuffers==25.2.10", "matplotlib==3.9.4")
PINNED_NO_DEPS = ("mediapipe==0.10.21",)
MODULES = {"torch": "torch", "warp": "warp-lang", "mediapipe": "mediapipe"}


def site_packages() -> Path | None:
    """The extension's private site-packages, or None outside Blender."""
    try:
        import bpy  # only inside Blender
    except ImportError:
        return None
    package = __package__ or "facestage"
    return Path(bpy.utils.extension_path_user(package, path="site-packages", create=True))


def activate() -> None:
    """Put the private site-packages on sys.path so installed deps import."""
    path = site_packages()
    if path is not None and str(path) not in sys.path:
        sys.path.insert(0, str(path))


def missing() -> list[str]:
    """Names of heavy dependencies that cannot be imported."""
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def pip_commands(target: Path) -> list[list[str]]:
    """The pip invocations that install the pinned set into ``target``."""
    base = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--target", str(target), "--upgrade"]
    return [base + list(PINNED + PINNED_MEDIAPIPE_DEPS), base + ["--no-deps", *PINNED_NO_DEPS]]


def install(progress: Callable[[int, int, str], None], target: Path | None = None) -> None:
    """Run pip for each step, reporting (step, total, last output line); raises RuntimeError on failure."""
    target = target or site_packages()
    if target is None:
        raise RuntimeError("Dependencies can only be installed from inside Blender.")
    commands = pip_commands(target)
    for step, command in enumerate(commands):
        progress(step, len(commands), "Running pip…")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        tail = ""
        for line in process.stdout:
            tail = line.strip() or tail
            progress(step, len(commands), tail[:120])
        if process.wait() != 0:
            raise RuntimeError(f"pip failed: {tail}")
    progress(len(commands), len(commands), "Done")
