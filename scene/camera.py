"""Camera "FaceStage Camera" matching the photo: lens, sensor and shift from K, pose from world_from_camera, the photo behind it.

core.model.camera.blender_camera converts the pinhole intrinsics; this module
only copies the numbers onto the camera and sets the render size to the
photo's, so looking through the camera lines the mesh up with the photo. The
photo is the full-resolution one: when the result came from a folder, Blender
reads its photo.png itself and packs the file (no float copy of a 48 MP photo
passes through Python); a Result in memory is packed from its pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core.io.image import to_float
from ..core.io.result import Result
from .material import packed_image
from .transaction import Transaction

CAMERA = "FaceStage Camera"
PHOTO = "FaceStage Photo"


def build_camera(tx: Transaction, result: Result, scene: bpy.types.Scene, collection: bpy.types.Collection) -> bpy.types.Object:
    from ..core.model.camera import blender_camera  # imports torch: only once the dependencies are installed

    settings: dict[str, Any] = blender_camera(np.asarray(result.K), result.width, result.height)
    data = tx.new(bpy.data.cameras.new(CAMERA), CAMERA)
    data.clip_start, data.clip_end = 0.01, 100.0
    data.sensor_fit = settings["sensor_fit"]
    setattr(data, "sensor_height" if data.sensor_fit == "VERTICAL" else "sensor_width", float(settings["sensor_width"]))
    data.lens = float(settings["lens_mm"])
    data.shift_x, data.shift_y = float(settings["shift_x"]), float(settings["shift_y"])
    photo = _photo_image(tx, result)
    data.show_background_images = True
    background = data.background_images.new()
    background.image = photo
    background.alpha = 1.0
    background.display_depth = "BACK"
    camera = tx.new(bpy.data.objects.new(CAMERA, data), CAMERA, role="camera")
    camera.matrix_basis = Matrix(np.asarray(result.world_from_camera, dtype=np.float64).tolist())
    collection.objects.link(camera)
    tx.set(scene, "camera", camera)
    render = scene.render
    tx.set(render, "resolution_x", int(settings["resolution_x"]))
    tx.set(render, "resolution_y", int(settings["resolution_y"]))
    tx.set(render, "resolution_percentage", 100)
    tx.set(render, "pixel_aspect_x", 1.0)  # K has square pixels
    tx.set(render, "pixel_aspect_y", 1.0)
    return camera



def _photo_image(tx: Transaction, result: Result) -> bpy.types.Image:
    """The photo as a packed sRGB image: its photo.png read by Blender when there is one, else from the pixels."""
    path = result.photo_file
    if path is not None and Path(path).is_file():
        image = tx.new(bpy.data.images.load(str(path), check_existing=False), PHOTO)
        image.colorspace_settings.name = "sRGB"
        image.pack()
        return image
    return packed_image(tx, PHOTO, to_float(result.photo_srgb), "sRGB", float_buffer=False)
