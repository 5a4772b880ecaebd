"""Shared fixtures: the repository root, a Python that has the project's venv, and an isolated Blender config."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType
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


def _load_tool(name: str) -> ModuleType:
    """A script from tools/ as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"facestage_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def model():  # type: ignore[no-untyped-def]
    from facestage.core.head import load_head_model

    return load_head_model()


@pytest.fixture(scope="session")
def scenes(model):  # type: ignore[no-untyped-def]
    """Eight synthetic heads with known answers, rendered once and cached by tools/synthetic.py."""
    from facestage.core.synthetic import load_scene

    return [load_scene(folder) for folder in _load_tool("synthetic").ensure_scenes(list(range(8)))]


@pytest.fixture(scope="session")
def load_tool():  # type: ignore[no-untyped-def]
    return _load_tool
