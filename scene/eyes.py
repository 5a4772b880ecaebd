"""The eyes: "Eye L" / "Eye R", eyeballs turned by the fitted gaze, with the recovered iris texture and a glossy cornea.

Each eye is its own object parented to the face, with its origin at the
eyeball centre and its mesh at rest (looking along the head's −Y), so the gaze
is the object's rotation — XYZ Euler (−pitch, 0, yaw) in the head frame, as
core/model/head/parts.py defines it — and an animator aims the eye by turning
it. The material is the core renderer's: Principled BSDF with Base Color from
eyes.png and a coat for the cornea (core.model.head.parts.EYE_MATERIAL), its weight from eyes_coat.png where
the photo showed less of the coat's reflection than the fitted light gives (core/fit/eyes.py coat_samples).
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core.io.result import Result
from .material import LINEAR, build_part_material, packed_image
from .mesh import as_numpy, new_mesh
from .transaction import Transaction

EYES = ("Eye L", "Eye R")  # the subject's left eye is on +X (the head faces −Y)
EYE_MATERIAL = "FaceEye"
EYE_IMAGE = "FaceStage Eyes"
EYE_COAT_IMAGE = "FaceStage Eye Coat"


def build_eyes(tx: Transaction, result: Result, model: Any, face: bpy.types.Object,
               collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """"Eye L" / "Eye R", parented to the face, origin at the eyeball centre, rotated by the fitted gaze."""
    from ..core.apps.parts import part_vertices, textures  # imports torch: only once the dependencies are installed
    from ..core.model.head import parts as head_parts  # imports torch, as above

    vertices, _ = part_vertices(result, model, turned=False)
    eye_texture, _ = textures(result, model)
    image = packed_image(tx, EYE_IMAGE, eye_texture, LINEAR, float_buffer=True)
    coat = (None if result.eye_coat is None
            else packed_image(tx, EYE_COAT_IMAGE, result.eye_coat, "Non-Color", float_buffer=True))
    material = build_part_material(tx, EYE_MATERIAL, image, head_parts.EYE_MATERIAL, coat)
    faces, face_uvs = as_numpy(model.eye_faces, np.int64), as_numpy(model.eye_face_uvs, np.int64)
    uvs = as_numpy(model.eye_uvs)
    gaze = np.zeros((2, 2)) if result.gaze is None else np.asarray(result.gaze, np.float64)
    half = len(vertices) // 2
    eyes = []
    for k, name in enumerate(EYES):
        first, last = k * half, (k + 1) * half
        keep = ((faces >= first) & (faces < last)).all(axis=1)
        local = vertices[first:last]
        centre = 0.5 * (local[0] + local[1])  # the poles' midpoint (model/head/model.py eye_centres_of)
        mesh = new_mesh(tx, name, local - centre, faces[keep] - first, uvs, face_uvs[keep])
        mesh.materials.append(material)
        eye = tx.new(bpy.data.objects.new(name, mesh), name, role="eye")
        collection.objects.link(eye)
        eye.parent = face
        eye.matrix_parent_inverse = Matrix.Identity(4)
        eye.location = tuple(float(c) for c in centre)
        eye.rotation_mode = "XYZ"
        eye.rotation_euler = (-float(gaze[k, 1]), 0.0, float(gaze[k, 0]))
        eyes.append(eye)
    return eyes
