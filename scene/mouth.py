"""The mouth: "Mouth", the teeth, the cavity and the tongue, moved by the face's jaw and mouth shape keys.

One object parented to the face, with the same 52 expression shape keys as the
face (the head model's mouth deltas: jawOpen turns the lower teeth with the
jaw), each driven by the face's key of the same name, so animating the face
opens the mouth with its teeth (and its rim follows the face's PhotoLips key). Its Basis is the fitted shape with the fitted
expression removed, like the face's, so the evaluated mouth is what the core
rendered. Two materials share mouth.png: "FaceTeeth" (slightly glossy enamel)
and "FaceMouth" (the wet cavity and tongue), with core.model.head.parts' values.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core.io.result import Result
from .material import LINEAR, build_part_material, packed_image
from .mesh import add_expression_keys, as_numpy, key_set, new_mesh
from .transaction import Transaction

MOUTH = "Mouth"
TEETH_MATERIAL = "FaceTeeth"
MOUTH_MATERIAL = "FaceMouth"
MOUTH_IMAGE = "FaceStage Mouth"


def build_mouth(tx: Transaction, result: Result, model: Any, face: bpy.types.Object,
                collection: bpy.types.Collection) -> bpy.types.Object:
    """The "Mouth" object: teeth (material 0) and interior (material 1), shape keys driven by the face's."""
    from ..core.apps.parts import part_vertices, textures  # imports torch: only once the dependencies are installed
    from ..core.model.head import parts as head_parts  # imports torch, as above

    _, fitted = part_vertices(result, model)
    names = [str(n) for n in model.expression_names]
    deltas = as_numpy(model.mouth_expression_basis)[[names.index(n) for n in result.expression_names]]
    lips = None
    if result.lips_shape is not None:  # the mouth's rim follows the lips' shape: its own PhotoLips key
        rotation = np.asarray(result.rotation, np.float64)
        unshaped = np.asarray(result.vertices, np.float64) - np.asarray(result.lips_shape) @ rotation.T
        lips = fitted - part_vertices(result, model, vertices=unshaped)[1]
    basis = fitted - np.einsum("e,evc->vc", np.asarray(result.expression, np.float64), deltas) - (
        0.0 if lips is None else lips)
    mesh = new_mesh(tx, MOUTH, basis, as_numpy(model.mouth_faces, np.int64), as_numpy(model.mouth_uvs),
                    as_numpy(model.mouth_face_uvs, np.int64))
    _, mouth_texture = textures(result, model)
    image = packed_image(tx, MOUTH_IMAGE, mouth_texture, LINEAR, float_buffer=True)
    mesh.materials.append(build_part_material(tx, TEETH_MATERIAL, image, head_parts.TEETH_MATERIAL))
    mesh.materials.append(build_part_material(tx, MOUTH_MATERIAL, image, head_parts.MOUTH_MATERIAL))
    teeth = head_parts.teeth_faces(model)
    mesh.polygons.foreach_set("material_index", np.where(teeth, 0, 1).astype(np.int32))  # type: ignore[arg-type]
    mouth = tx.new(bpy.data.objects.new(MOUTH, mesh), MOUTH, role="mouth")
    collection.objects.link(mouth)
    mouth.parent = face
    mouth.matrix_parent_inverse = Matrix.Identity(4)
    add_expression_keys(tx, mouth, MOUTH, basis, *key_set(result, deltas, lips))
    drive_keys(mouth, face)
    return mouth


def drive_keys(follower: bpy.types.Object, leader: bpy.types.Object) -> None:
    """Drive each shape key of `follower` by the value of `leader`'s key of the same name."""
    leader_keys = leader.data.shape_keys
    for key in follower.data.shape_keys.key_blocks[1:]:
        if key.name not in leader_keys.key_blocks:
            continue
        driver = key.driver_add("value").driver
        driver.type = "AVERAGE"
        variable = driver.variables.new()
        variable.type = "SINGLE_PROP"
        target = variable.targets[0]
        target.id_type = "KEY"
        target.id = leader_keys
        target.data_path = f'key_blocks["{key.name}"].value'
