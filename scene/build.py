"""Build the "FaceStage" collection from a result, all or nothing; and write face.blend headlessly.

`build_scene` runs every builder (mesh, material, eyes, mouth, light stage, world,
camera, compositor, render settings) inside one Transaction: if any step raises, every
datablock created so far is removed and every setting restored, so the
file is exactly as before. A successful build replaces the datablocks of
an earlier FaceStage build in the same file.
"""

from __future__ import annotations

import os
from typing import Any, cast
from pathlib import Path

import bpy

from ..core.io.result import Result, load
from .camera import build_camera
from .compositing import build_compositing
from .lights import build_stage
from .eyes import build_eyes
from .material import build_skin
from .mesh import build_face
from .mouth import build_mouth
from .transaction import Transaction
from .world import build_world

COLLECTION = "FaceStage"
RESULT_DIR = "facestage_result_dir"  # custom property on the collection: the OUT folder it was built from
VIEW = {"view_transform": "Standard", "look": "None", "exposure": 0.0, "gamma": 1.0}


def build_scene(result: Result | str | os.PathLike[str], context: bpy.types.Context | None = None) -> bpy.types.Collection:
    """Create the FaceStage collection in the context's scene from a Result or a result folder."""
    from ..core.model.head import load_head_model  # imports torch: only once the dependencies are installed

    folder = None
    if isinstance(result, str | os.PathLike):
        folder = Path(result)
        result = load(folder)
    model = load_head_model()
    scene = (context or bpy.context).scene
    if scene is None:
        raise RuntimeError("build_scene needs a context with a scene.")
    tx = Transaction()
    try:
        collection = tx.new(bpy.data.collections.new(COLLECTION), COLLECTION)
        if folder is not None:
            collection[RESULT_DIR] = str(folder.resolve())
        scene.collection.children.link(collection)
        face = build_face(tx, result, model, collection)
        face.data.materials.append(build_skin(tx, result))
        build_eyes(tx, result, model, face, collection)
        build_mouth(tx, result, model, face, collection)
        build_stage(tx, result, collection)
        build_world(tx, result, scene)
        camera = build_camera(tx, result, scene, collection)
        photo = camera.data.background_images[0].image
        assert photo is not None  # build_camera loads it
        build_compositing(tx, result, scene, photo)  # F12 = render.png's composite
        set_render(tx, scene)
    except BaseException:
        tx.rollback()
        raise
    tx.commit()
    view_layer = (context or bpy.context).view_layer
    if view_layer is not None:
        view_layer.update()  # world matrices of parented objects are valid from here on
    return collection


# The light transport the reconstruction modelled (core/render/renderer.py): direct light from the lamps and the
# world on the skin, no indirect diffuse or glossy bounce, and each pixel the box-filtered mean of its square.
LIGHT_PATHS = {"diffuse_bounces": 0, "glossy_bounces": 0, "pixel_filter_type": "BOX", "filter_width": 1.0}


def set_render(tx: Transaction, scene: bpy.types.Scene) -> None:
    """Cycles with plain sRGB output and the fit's light paths: the image formation the reconstruction assumed."""
    tx.set(scene.render, "engine", "CYCLES")
    for attribute, value in VIEW.items():
        tx.set(scene.view_settings, attribute, value)
    for attribute, value in LIGHT_PATHS.items():
        tx.set(cast(Any, scene).cycles, attribute, value)  # Cycles' settings: not in the bpy type stubs


def save_blend(result_dir: str | os.PathLike[str], blend_path: str | os.PathLike[str]) -> Path:
    """Write a .blend holding only the built scene (headless use: replaces the open file with a fresh one)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    collection = build_scene(result_dir, bpy.context)
    path = Path(blend_path).resolve()
    if path.parent == Path(result_dir).resolve():
        collection[RESULT_DIR] = "//"  # the folder moves after writing (core.io.result.save); stay relative to it
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    return path
