"""A fake but complete result folder (no reconstruction needed) and helpers to run bpy scripts in subprocesses.

The fake result is the head model with a small identity and expression, a
slight head turn, a near-frontal camera with an off-centre principal point, a
default light stage with three lights on, a few SH coefficients and smooth
gradient maps (so orientation mistakes show): everything the scene builder
reads, with known numbers to assert against.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIT = (0, 5, 11)  # stage lights switched on in the fake result
SIZE = (96, 80)  # photo width, height
TEXTURE = 32


def fake_result(seed: int = 0, package: str = "facestage", size: tuple[int, int] = SIZE,  # type: ignore[no-untyped-def]
                distance: float = 0.9):
    """A Result with known, simple values.

    ``package`` is where facestage is imported from: inside an installed
    extension that is "bl_ext.user_default.facestage", whose Result class is
    not the repository's.
    """
    def module(name: str):  # type: ignore[no-untyped-def]
        return importlib.import_module(f"{package}.core.{name}")

    import torch

    camera, lightstage = module("model.camera"), module("model.lightstage")
    model = module("model.head").load_head_model()
    rng = np.random.Generator(np.random.PCG64(seed))
    names = [str(n) for n in model.expression_names]
    identity = np.clip(rng.standard_normal(model.n_identity), -1, 1) * 0.5
    expression = np.zeros(len(names))
    expression[:3] = (0.3, 0.6, 0.9)
    rotation = camera.rotation_from_yaw_pitch_roll(12.0, -4.0, 2.0)
    translation = np.array([0.01, -0.02, 0.03])
    shape = model.evaluate(torch.as_tensor(identity, dtype=torch.float32), torch.as_tensor(expression, dtype=torch.float32))
    vertices = shape.double().numpy() @ rotation.T + translation
    width, height = size
    K = camera.intrinsics(camera.focal_from_35mm(50.0, width, height), width, height)
    K[:2, 2] += (3.0, -2.0)
    world_from_camera = camera.look_at(np.array([0.08, -1.0, 0.06]) * distance, np.array([0.0, 0.0, 0.02]))
    stage = lightstage.default_stage(torch.tensor([0.0, 0.0, 0.02]), d=1.5, a=0.3)
    stage.d[:] = torch.linspace(1.2, 1.8, 20)
    for j, rgb in zip(LIT, ((2.0, 1.8, 1.6), (0.5, 0.5, 0.6), (0.3, 0.25, 0.2))):
        stage.i[j] = torch.tensor(rgb)
    sh = np.zeros((3, 9))
    sh[:, 0] = (0.3, 0.28, 0.25)
    sh[:, 2] = (0.1, 0.1, 0.12)
    t = TEXTURE
    rows, columns = np.linspace(0.6, 1.0, t)[:, None], np.linspace(0.0, 1.0, t)[None, :]
    photo = np.zeros((height, width, 3), np.float32)
    photo[..., 0] = np.linspace(0, 1, width)[None, :]
    photo[..., 1] = np.linspace(0, 1, height)[:, None]
    photo[..., 2] = 0.5
    Result = module("io.result").Result
    return Result(
        photo_srgb=photo, K=K, world_from_camera=world_from_camera, identity=identity, expression=expression,
        expression_names=names, rotation=rotation, translation=translation, vertices=vertices.astype(np.float32),
        faces=model.faces.numpy(), uvs=model.uvs.numpy(), face_uvs=model.face_uvs.numpy(),
        source_vertex_ids=model.source_vertex_ids.numpy(), sh=sh,
        stage={k: v.numpy().astype(np.float64) for k, v in lightstage.as_dict(stage).items()},
        lights=lightstage.blender_lights(stage),
        diffuse=(np.array([0.5, 0.35, 0.3]) * rows[..., None] * np.ones((t, t, 1))).astype(np.float32),
        specular=(0.2 + 0.4 * rows * np.ones((t, t))).astype(np.float32),
        roughness=(0.3 + 0.5 * columns * np.ones((t, t))).astype(np.float32), render=np.zeros((height, width, 3), np.float32),
        mask=np.zeros((height, width), np.float32), quality="fast")


def fake_result_folder(folder: Path, seed: int = 0, **options: object) -> Path:
    """Save fake_result(seed, **options) into folder with core.io.result.save; returns the folder."""
    from facestage.core.io.result import save

    return save(fake_result(seed, **options), folder, force=True)


def run_bpy(script: str, env: dict[str, str], *args: str, timeout: float = 300, tracebacks: bool = False) -> str:
    """Run a Python script that imports bpy in a fresh process; returns stdout, fails with its output.

    A traceback on stderr fails it too (Blender prints, rather than raises, errors in handlers and
    operators) unless ``tracebacks``.
    """
    preamble = f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
    done = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(script), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    if done.returncode != 0 or ("Traceback" in done.stderr and not tracebacks):
        raise AssertionError(f"bpy script failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    return done.stdout


def render_to_npy(scene, exr: str, npy: str, channels: int = 4) -> None:  # type: ignore[no-untyped-def]
    """Inside a bpy script: render `scene` to a 32-bit float EXR at `exr` and save its pixels to `npy` as
    (height, width, channels) float32 with row 0 at the top (Blender's pixels start at the bottom row).
    run_bpy puts tests/ on the script's path; a script run otherwise inserts it itself."""
    import bpy

    settings = scene.render.image_settings
    settings.file_format, settings.color_depth = "OPEN_EXR", "32"
    settings.color_mode = "RGBA" if channels == 4 else "RGB"
    scene.render.filepath = exr
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(exr)
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    np.save(npy, pixels.reshape(height, width, 4)[::-1, :, :channels])


def read_json_line(stdout: str, tag: str) -> dict:  # type: ignore[type-arg]
    """The JSON printed by a script on a line starting with tag."""
    for line in stdout.splitlines():
        if line.startswith(tag):
            return json.loads(line[len(tag):])
    raise AssertionError(f"no {tag} line in:\n{stdout[-3000:]}")


