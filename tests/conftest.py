"""Shared fixtures: the repository root, a Python that has the project's venv, and an isolated Blender config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see cli.py)

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture()
def blender_env(tmp_path) -> dict[str, str]:
    """Environment for a subprocess that runs the bpy module with a throw-away user config."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


@pytest.fixture()
def reconstructed_stub():
    """A complete fake Result (no reconstruction): see tests/blender_helpers.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    from blender_helpers import fake_result

    return fake_result()
