"""deps.py is the one list of pins: it matches the tested venv, is a closed set, and drives pip and the manifest."""

from __future__ import annotations

import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from facestage import deps

ALL_PINS = deps.BLENDER_SHIPS + deps.HEAVY + deps.BUNDLED_LITE
# Declared but never bundled, and why: setuptools only serves torch.utils.cpp_extension (never used); the rest are
# MediaPipe extras its FaceMesh does not import (it is installed with --no-deps).
NOT_BUNDLED = {"setuptools", "jax", "jaxlib", "opencv-contrib-python", "sounddevice", "sentencepiece"}
TARGETS = {"linux-x64": ("Linux", "linux"), "windows-x64": ("Windows", "win32"), "macos-arm64": ("Darwin", "darwin")}


def _pins(path: Path) -> dict[str, str]:
    rows = [line.split("==") for line in path.read_text().splitlines() if "==" in line]
    return {canonicalize_name(name): version for name, version in rows}


def test_every_pin_is_the_tested_version(root):
    tested = _pins(root / "requirements.txt") | _pins(root / "requirements-mediapipe.txt")
    for spec in ALL_PINS:
        name, version = spec.split("==")
        assert tested[canonicalize_name(name)] == version, spec
    assert len({canonicalize_name(p.split("==")[0]) for p in ALL_PINS}) == len(ALL_PINS)


@pytest.mark.parametrize("platform", sorted(TARGETS))
def test_the_bundled_pins_are_a_closed_set_on_every_platform(platform):
    """Every runtime requirement of a bundled package is bundled (at a version it accepts) or shipped by Blender."""
    system, sys_platform = TARGETS[platform]
    environment = {"extra": "", "platform_system": system, "sys_platform": sys_platform, "python_version": "3.11"}
    available = {canonicalize_name(p.split("==")[0]): Version(p.split("==")[1]) for p in deps.BLENDER_SHIPS
                 + deps.bundled("full")}
    for pin in deps.bundled("full"):
        for text in distribution(pin.split("==")[0]).requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = canonicalize_name(requirement.name)
            if name in NOT_BUNDLED:
                continue
            assert name in available, f"{pin} needs {text}, which is neither bundled nor shipped by Blender"
            assert requirement.specifier.contains(available[name], prereleases=True), f"{pin} needs {text}"


def test_numpy_is_never_bundled_nor_installed(tmp_path):
    assert not [p for p in deps.bundled("full") if p.startswith("numpy")]
    commands = deps.pip_commands(tmp_path, list(deps.MODULES)) + deps.pip_commands(tmp_path, list(deps.MODULES), tmp_path)
    assert not [arg for command in commands for arg in command if arg.startswith("numpy")]


def test_installer_runs_only_pinned_pip_commands_for_what_is_missing(tmp_path):
    online = deps.pip_commands(tmp_path, ["torch", "warp"])
    offline = deps.pip_commands(tmp_path / "t", ["torch", "warp"], wheel_folder=tmp_path / "downloads")
    for commands in (online, offline):
        packages = [arg for command in commands for arg in command[command.index("--upgrade") + 1:]
                    if not arg.startswith("-") and "/" not in arg]
        assert packages and all(p in deps.HEAVY + deps.TORCH_DEPS for p in packages)
        assert {"torch==2.13.0", "warp-lang==1.19.0"} <= set(packages)
    assert not any("--no-index" in command for command in online)
    for command in offline:
        assert "--no-index" in command and "--no-deps" in command
        links = [command[i + 1] for i, arg in enumerate(command) if arg == "--find-links"]
        assert links == [str(tmp_path / "downloads"), str(deps.bundled_wheels())]
    assert deps.pip_commands(tmp_path, []) == []
    light = deps.pip_commands(tmp_path, ["mediapipe"])
    assert len(light) == 1 and "mediapipe==0.10.21" in light[0] and "torch==2.13.0" not in light[0]


def test_what_is_missing_is_one_sentence_with_the_way_to_add_it():
    sentence = deps.missing_sentence(["torch", "warp"])
    assert sentence.startswith("PyTorch and Warp are not installed: add them in Preferences")
    assert "Install Dependencies (online)" in sentence and "Install from Wheel Files (offline)" in sentence
    assert sentence.endswith(".") and sentence.count(".") == 1
    assert deps.missing_sentence(["mediapipe"]).startswith("MediaPipe is not installed: add it in")
    assert deps.missing_sentence([]) == ""


def test_manifest_lists_one_wheel_per_pin_for_every_platform_and_python(root, load_tool):
    """The lock in the manifest matches deps.py, and every wheel suits the Python of each supported Blender."""
    fetch = load_tool("fetch_wheels")
    manifest = tomllib.loads((root / "blender_manifest.toml").read_text())
    assert list(manifest["platforms"]) == list(deps.PLATFORMS)
    # Blender 4.2 to 5.0 run Python 3.11 (bpy 4.2.0 to 5.0.1 on PyPI require ==3.11.*); 5.1 moved to 3.13.
    assert manifest["blender_version_min"] == "4.2.0" and manifest["blender_version_max"] == "5.1.0"
    assert deps.PYTHONS == ("3.11",)
    wheels = manifest["wheels"]
    assert wheels == sorted(set(wheels), key=str.lower) and all(w.startswith("./wheels/") for w in wheels)
    for platform in deps.PLATFORMS:
        assert fetch.check_pins(wheels, platform) == [], platform
        assert len(fetch.for_platform(wheels, platform)) == len(deps.bundled("full"))
    assert all(any(fetch.for_platform([w], p) for p in deps.PLATFORMS) for w in wheels)
    assert load_tool("build_extension").blender_ext_module().python_versions_from_wheels(wheels) == {(3, 11)}
