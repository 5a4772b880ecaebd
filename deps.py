"""The add-on's dependencies: the one list of pins, where they live, and how to add what a zip does not bundle.

Every pin below is the version the project's venv is tested with
(tests/test_deps.py keeps them in step with requirements*.txt). The "full"
zip bundles the wheels of every pin for its platform, so Blender installs them
with the extension, offline. The "lite" zip leaves out the two big ones
(``HEAVY``: torch and warp-lang, ~340 MB of wheels on Linux); the preferences
then pip-install them into the extension's own folder, either from the
package index (needs *Allow Online Access*) or from wheel files the user
downloaded (no network). Nothing is ever downloaded without the user asking.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Inside Blender's own Python already (bpy 5.0.1 wants numpy 1.26.x): never bundled, never installed, so the
# extension can not shadow Blender's copy.
BLENDER_SHIPS = ("numpy==1.26.4",)
# The two big wheels: bundled by the full zip only.
HEAVY = ("torch==2.13.0", "warp-lang==1.19.0")
# What torch imports (its metadata's Requires-Dist, less setuptools, which only torch.utils.cpp_extension uses).
TORCH_DEPS = ("filelock==4.2.12", "typing_extensions==4.16.0", "sympy==1.14.0", "mpmath==1.3.0",
              "networkx==3.6.1", "Jinja2==3.1.6", "MarkupSafe==3.0.4", "fsspec==2026.9.0")
# pillow-heif: HEIC/HEIF photos from phones (Pillow reads AVIF itself); cp311 wheels for all three platforms.
LIGHT = ("scipy==1.15.3", "pillow==11.3.0", "pillow-heif==1.8.1", "tqdm==4.67.1")
# tqdm's on Windows only, but a pure wheel, and Blender's --split-platforms puts pure wheels in every zip.
TQDM_DEPS = ("colorama==0.4.6",)
# MediaPipe pulls a tree of optional extras (jax, sounddevice, opencv-contrib...); it gets only its minimal runtime
# deps, matplotlib's with them, and is installed with --no-deps.
PINNED_MEDIAPIPE_DEPS = ("protobuf==4.25.8", "opencv-python-headless==4.11.0.86", "absl-py==2.3.1",
                         "attrs==25.3.0", "flatbuffers==25.2.10", "matplotlib==3.9.4")
MATPLOTLIB_DEPS = ("contourpy==1.3.3", "cycler==0.12.1", "fonttools==4.68.0", "kiwisolver==1.5.1",
                   "packaging==26.3", "pyparsing==3.3.3", "python-dateutil==4.0.0", "tzdata==2026.6")
PINNED_NO_DEPS = ("mediapipe==0.10.21",)
# Everything but HEAVY: what the lite zip bundles.
BUNDLED_LITE = TORCH_DEPS + LIGHT + TQDM_DEPS + PINNED_MEDIAPIPE_DEPS + MATPLOTLIB_DEPS + PINNED_NO_DEPS

# The platforms a zip is built for (Blender's names) and, for each, the torch wheel's local version label:
# PyPI's Linux torch is the CUDA build (≈ 3 GB with its nvidia-* wheels); the zip carries the CPU build.
PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64")
TORCH_LOCAL = {"linux-x64": "+cpu"}
# Blender 4.2 to 5.0 all run Python 3.11 (the manifest stops before 5.1, which moved to 3.13).
PYTHONS = ("3.11",)

# Import name -> (pip name, what the user reads).
MODULES = {"torch": ("torch", "PyTorch"), "warp": ("warp-lang", "Warp"), "mediapipe": ("mediapipe", "MediaPipe"),
           "cv2": ("opencv-python-headless", "OpenCV"), "scipy": ("scipy", "SciPy"), "PIL": ("pillow", "Pillow"),
           "tqdm": ("tqdm", "tqdm"), "matplotlib": ("matplotlib", "Matplotlib"),
           "pillow_heif": ("pillow-heif", "pillow-heif")}
HEAVY_MODULES = ("torch", "warp")
HOW_TO_ADD = ("add {them} in Preferences › Add-ons › FaceStage with Install Dependencies (online) "
              "or Install from Wheel Files (offline)")


def bundled(variant: str = "full") -> tuple[str, ...]:
    """The pins whose wheels a zip carries (variant "full" or "lite"), on every platform."""
    return (HEAVY if variant == "full" else ()) + BUNDLED_LITE


def site_packages() -> Path | None:
    """The extension's private site-packages (what the preferences install), or None outside Blender."""
    try:
        import bpy  # only inside Blender
    except ImportError:
        return None
    package = __package__ or "facestage"
    return Path(bpy.utils.extension_path_user(package, path="site-packages", create=True))


def bundled_wheels() -> Path:
    """The wheels/ folder the zip carried: offline installs find the heavy wheels' small dependencies there."""
    return Path(__file__).resolve().parent / "wheels"


def activate() -> None:
    """Put the private site-packages on sys.path so what the preferences installed imports."""
    path = site_packages()
    if path is not None and str(path) not in sys.path:
        sys.path.insert(0, str(path))


def missing() -> list[str]:
    """Import names of the dependencies that cannot be imported (neither bundled nor installed)."""
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def missing_sentence(names: list[str]) -> str:
    """One sentence naming what is missing and the way to add it ("" when nothing is)."""
    if not names:
        return ""
    readable = [MODULES[name][1] for name in names]
    listed = readable[0] if len(readable) == 1 else ", ".join(readable[:-1]) + " and " + readable[-1]
    verb, them = ("is", "it") if len(readable) == 1 else ("are", "them")
    return f"{listed} {verb} not installed: {HOW_TO_ADD.format(them=them)}."


def pip_commands(target: Path, missing_names: list[str] | None = None,
                 wheel_folder: Path | None = None) -> list[list[str]]:
    """The pip invocations that install the pins of what is missing into ``target``.

    With ``wheel_folder`` pip reads only that folder and the zip's own wheels/
    (``--no-index``: no network), and every package is installed with
    --no-deps since the pins list the whole closure (on Linux that means
    PyTorch's CPU wheel: the CUDA one also needs its nvidia-* wheels). Online,
    torch resolves its own dependencies (PyPI's Linux build is the CUDA one);
    the ones it shares with the pins are held to them by naming them.
    """
    names = missing() if missing_names is None else missing_names
    base = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--target", str(target), "--upgrade"]
    if wheel_folder is not None:
        base += ["--no-index", "--find-links", str(wheel_folder), "--find-links", str(bundled_wheels())]
    commands = []
    if "torch" in names:
        # Offline, torch's small dependencies are already bundled (both zips carry TORCH_DEPS).
        commands.append(base + [HEAVY[0], *TORCH_DEPS] if wheel_folder is None else base + ["--no-deps", HEAVY[0]])
    if "warp" in names:
        commands.append(base + ["--no-deps", HEAVY[1]])
    if any(name not in HEAVY_MODULES for name in names):
        commands.append(base + ["--no-deps", *LIGHT, *TQDM_DEPS, *PINNED_MEDIAPIPE_DEPS, *MATPLOTLIB_DEPS,
                                *PINNED_NO_DEPS])
    return commands


def install(progress: Callable[[int, int, str], None], target: Path | None = None,
            wheel_folder: Path | None = None, missing_names: list[str] | None = None) -> None:
    """Run pip for each step, reporting (step, total, last output line); raises RuntimeError on failure."""
    target = target or site_packages()
    if target is None:
        raise RuntimeError("Dependencies can only be installed from inside Blender.")
    commands = pip_commands(target, missing_names, wheel_folder)
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
