"""The "Face" mesh: model-space Basis, UV map, smooth shading, 52 expression shape keys, posed by its object transform; plus the eyes.

The Basis is the fitted identity in the head model's frame with no
expression, the shape keys are the model's expression deltas with the
fitted weights as values, and the object's transform is the head pose, so
the evaluated mesh in world space is exactly `Result.vertices`. Any
per-vertex detail the fit added on top of the model's coefficients is kept
in the Basis for that reason.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core.common.errors import FaceStageError
from ..core.io.result import Result
from .transaction import Transaction

FACE = "Face"
EYES = ("Eye L", "Eye R")  # the subject's left eye is on +X (the head faces −Y)


def as_numpy(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A head-model array (numpy or torch) as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def mean_vertices(model: Any) -> np.ndarray:
    """The model's mean shape (V, 3), model space."""
    mean = getattr(model, "mean_vertices", None)
    return as_numpy(model.vertices if mean is None else mean)


def pose_matrix(result: Result) -> np.ndarray:
    """4x4 world_from_model of the head pose."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(result.rotation, dtype=np.float64)
    matrix[:3, 3] = np.asarray(result.translation, dtype=np.float64)
    return matrix


def expression_deltas(result: Result, model: Any) -> np.ndarray:
    """(E, V, 3) model-space deltas of the result's expression units, in the result's order."""
    names = [str(n) for n in model.expression_names]
    missing = [n for n in result.expression_names if n not in names]
    if missing:
        raise FaceStageError(f"The result uses expressions the head model does not have: {', '.join(missing[:5])}.")
    basis = as_numpy(model.expression_basis)
    return basis[[names.index(n) for n in result.expression_names]]


def model_space_basis(result: Result, model: Any) -> np.ndarray:
    """(V, 3) rest shape: Result.vertices brought back to the model frame, expression removed."""
    rotation = np.asarray(result.rotation, dtype=np.float64)
    posed = np.asarray(result.vertices, dtype=np.float64) - np.asarray(result.translation, dtype=np.float64)
    unposed = posed @ np.linalg.inv(rotation).T
    weights = np.asarray(result.expression, dtype=np.float64)
    return unposed - np.einsum("e,evc->vc", weights, expression_deltas(result, model))


def new_mesh(tx: Transaction, name: str, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
             face_uvs: np.ndarray | None = None) -> bpy.types.Mesh:
    """A triangle mesh with an optional face-varying "UVMap" and smooth shading."""
    mesh = tx.new(bpy.data.meshes.new(name), name)
    faces = np.asarray(faces, dtype=np.int32)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.asarray(vertices, dtype=np.float32).ravel())  # type: ignore[arg-type]
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())  # type: ignore[arg-type]
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))  # type: ignore[arg-type]
    if uvs is not None and face_uvs is not None and len(uvs):
        layer = mesh.uv_layers.new(name="UVMap")
        corners = np.asarray(uvs, dtype=np.float32)[np.asarray(face_uvs, dtype=np.int64).ravel()]
        layer.data.foreach_set("uv", corners.ravel())  # type: ignore[arg-type]
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    return mesh


def build_face(tx: Transaction, result: Result, model: Any, collection: bpy.types.Collection) -> bpy.types.Object:
    """The "Face" object: Basis, 52 expression keys (values = fitted weights), posed by its transform."""
    basis = model_space_basis(result, model)
    mesh = new_mesh(tx, FACE, basis, result.faces, result.uvs, result.face_uvs)
    face = tx.new(bpy.data.objects.new(FACE, mesh), FACE, role="face")
    collection.objects.link(face)
    face.matrix_basis = Matrix(pose_matrix(result).tolist())
    face.shape_key_add(name="Basis", from_mix=False)
    deltas = expression_deltas(result, model)
    for name, weight, delta in zip(result.expression_names, result.expression, deltas):
        key = face.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", (basis + delta).astype(np.float32).ravel())  # type: ignore[arg-type]
        key.slider_min = min(0.0, float(weight))
        key.slider_max = max(1.0, float(weight))
        key.value = float(weight)
    keys = face.data.shape_keys
    assert keys is not None
    tx.new(keys, FACE)
    return face


def eye_meshes(result: Result, model: Any) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """(name, model-space vertices, faces, uvs, face_uvs) of each eye: the model's eyeballs for the fitted coefficients.

    The model stores the left eye's vertices first, then the right eye's.
    """
    if len(model.eye_vertices) == 0:
        return []
    import torch  # heavy: only once the dependencies are installed

    names = [str(n) for n in model.expression_names]
    weights = np.zeros(len(names))
    for name, weight in zip(result.expression_names, result.expression):
        weights[names.index(name)] = weight
    vertices = as_numpy(model.eye_evaluate(torch.as_tensor(np.asarray(result.identity), dtype=torch.float32),
                                           torch.as_tensor(weights, dtype=torch.float32)))
    faces = as_numpy(model.eye_faces, np.int64)
    face_uvs = as_numpy(model.eye_face_uvs, np.int64)
    uvs = as_numpy(model.eye_uvs) if len(face_uvs) == len(faces) and len(model.eye_uvs) else None
    half = len(vertices) // 2
    out = []
    for name, first, last in ((EYES[0], 0, half), (EYES[1], half, len(vertices))):
        keep = ((faces >= first) & (faces < last)).all(axis=1)
        out.append((name, vertices[first:last], faces[keep] - first, uvs, face_uvs[keep] if uvs is not None else None))
    return out


def build_eyes(tx: Transaction, result: Result, model: Any, face: bpy.types.Object,
               collection: bpy.types.Collection, material: bpy.types.Material | None = None) -> list[bpy.types.Object]:
    """"Eye L" / "Eye R", parented to the face, each with its origin at the eyeball centre (rotate it to aim the gaze)."""
    eyes = []
    for name, vertices, faces, uvs, face_uvs in eye_meshes(result, model):
        centre = vertices.mean(axis=0)
        mesh = new_mesh(tx, name, vertices - centre, faces, uvs, face_uvs)
        if material is not None:
            mesh.materials.append(material)
        eye = tx.new(bpy.data.objects.new(name, mesh), name, role="eye")
        collection.objects.link(eye)
        eye.parent = face
        eye.matrix_parent_inverse = Matrix.Identity(4)
        eye.location = tuple(float(c) for c in centre)
        eyes.append(eye)
    return eyes
