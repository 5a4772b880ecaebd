"""Shared fixtures: the repository root, a Python that has the project's venv, and an isolated Blender config."""

from __future__ import annotations

import importlib
import io
import os
import sys
from types import ModuleType
from pathlib import Path

import facestage  # noqa: E402,F401  (sets torch's threading environment before torch loads; see its docstring)

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tools/ holds the synthetic ground truth (ground_truth.py) and its Cycles renderer (synthetic.py); not a package.
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))


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
    """A script from tools/ as a module (tools/ is on sys.path, see above)."""
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def model():  # type: ignore[no-untyped-def]
    from facestage.core.model.head import load_head_model

    return load_head_model()


@pytest.fixture(scope="session")
def scenes(model):  # type: ignore[no-untyped-def]
    """Eight synthetic heads with known answers, rendered once and cached by tools/synthetic.py."""
    from ground_truth import load_scene

    return [load_scene(folder) for folder in _load_tool("synthetic").ensure_scenes(list(range(8)))]


@pytest.fixture(scope="session")
def load_tool():  # type: ignore[no-untyped-def]
    return _load_tool


def _bad_file(case: str, folder: Path, source):  # type: ignore[no-untyped-def]
    """A photo file that must be refused, named <case>.jpg in folder; `source` is a PIL image to damage."""
    import numpy as np
    from PIL import Image

    path = folder / f"{case}.jpg"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        buffer = io.BytesIO()
        source.save(buffer, format="JPEG")
        path.write_bytes(buffer.getvalue()[:2000])
    elif case == "text":
        path.write_text("not a photo")
    elif case == "unsupported":
        source.save(path, format="GIF")
    elif case == "too-small":
        source.resize((63, 200)).save(path)  # one side short is enough
    elif case == "tiny-face":
        canvas = Image.new("RGB", (512, 512), (128, 128, 128))
        canvas.paste(source.resize((256, 256)), (100, 100))
        canvas.save(path)
    elif case == "no-face":
        y = np.linspace(0, 1, 300)[:, None, None]
        sky_and_field = np.where(y < 0.55, [0.45, 0.65, 0.95], [0.3, 0.55, 0.2]) * (0.8 + 0.2 * np.random.default_rng(0).random((300, 500, 1)))
        Image.fromarray((sky_and_field * 255).astype(np.uint8)).save(path)
    elif case == "aspect":
        Image.new("RGB", (2000, 100), (120, 90, 80)).save(path)
    return path


@pytest.fixture(scope="session")
def bad_file():  # type: ignore[no-untyped-def]
    """Factory for refused photo files (tests/test_image.py at the loader, tests/test_reliability.py at the CLI)."""
    return _bad_file


@pytest.fixture()
def sample_after_stage0():  # type: ignore[no-untyped-def]
    """The astronaut sample (a smile showing teeth) after stage 0 at fast quality, appearance started from a 64-px
    crop: (run, points, crop, target, mask). Function-scoped: users change the run's lights."""
    from facestage.core.common.config import preset
    from facestage.core.fit import stages
    from facestage.core.fit.landmarks import detect
    from facestage.core.fit.solver import fit_landmarks
    from facestage.core.fit.working import face_window
    from facestage.core.io.image import load_photo

    photo = load_photo(str(ROOT / "samples" / "astronaut.jpg"))
    points = detect(photo.data, "astronaut").points
    cfg = preset("fast", device="cpu")
    run = stages.Reconstruction(photo, cfg, None, None)
    run.face = face_window(photo, points, cfg.render_size)
    run.init_geometry(fit_landmarks(points, photo.width, photo.height, run.model, cfg))
    crop, target, mask, _ = stages.crop_targets(run, points, 64)
    run.init_appearance(target.cpu().numpy(), mask.cpu().numpy())
    return run, points, crop, target, mask
