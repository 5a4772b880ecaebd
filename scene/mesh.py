"""The "Face" mesh: model-space Basis, UV map, smooth shading, 52 expression shape keys, posed by its object transform.

The Basis is the fitted identity in the head model's frame with no
expression, the shape keys are the model's expression deltas with the
fitted weights as values, and the object's transform is the head pose, so
the evaluated mesh in world space is exactly `Result.vertices`. Any
per-vertex detail the fit added on top of the model's coefficients is kept
in the Basis for that reason, except the lips' edges moved to the photo's
opening (`Result.lips_shape`): they are one more key, "PhotoLips" at 1, shaped
for the photo's expression, which an artist who reshapes the mouth can turn off.
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
LIPS_KEY = "PhotoLips"


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
    """(V, 3) rest shape: Result.vertices brought back to the model frame, expression and lips' shape removed."""
    rotation = np.asarray(result.rotation, dtype=np.float64)
    posed = np.asarray(result.vertices, dtype=np.float64) - np.asarray(result.translation, dtype=np.float64)
    unposed = posed @ np.linalg.inv(rotation).T
    weights = np.asarray(result.expression, dtype=np.float64)
    lips = 0.0 if result.lips_shape is None else np.asarray(result.lips_shape, dtype=np.float64)
    return unposed - np.einsum("e,evc->vc", weights, expression_deltas(result, model)) - lips


def key_set(result: Result, deltas: np.ndarray, lips: np.ndarray | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, values, deltas) of an object's shape keys: the expression units, then LIPS_KEY at 1 with the
    offsets `lips` (V, 3), the object's share of the result's lips' shape (None where it has none)."""
    names, values = list(result.expression_names), np.asarray(result.expression, dtype=np.float64)
    if lips is None:
        return names, values, deltas
    return names + [LIPS_KEY], np.r_[values, 1.0], np.concatenate([deltas, lips[None]])


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
    """The "Face" object: Basis, 52 expression keys (values = fitted weights) and the lips' shape where the result
    has one (`key_set`), posed by its transform."""
    basis = model_space_basis(result, model)
    mesh = new_mesh(tx, FACE, basis, result.faces, result.uvs, result.face_uvs)
    face = tx.new(bpy.data.objects.new(FACE, mesh), FACE, role="face")
    collection.objects.link(face)
    face.matrix_basis = Matrix(pose_matrix(result).tolist())
    add_expression_keys(tx, face, FACE, basis, *key_set(result, expression_deltas(result, model), result.lips_shape))
    return face


def add_expression_keys(tx: Transaction, obj: bpy.types.Object, name: str, basis: np.ndarray, names: list[str],
                        weights: np.ndarray, deltas: np.ndarray) -> None:
    """Basis plus one shape key per expression unit (co = basis + delta, value = the fitted weight); `name` is
    what the shape-key datablock is called once the build commits."""
    obj.shape_key_add(name="Basis", from_mix=False)
    for unit, weight, delta in zip(names, weights, deltas):
        key = obj.shape_key_add(name=unit, from_mix=False)
        key.data.foreach_set("co", (basis + delta).astype(np.float32).ravel())  # type: ignore[arg-type]
        key.slider_min = min(0.0, float(weight))
        key.slider_max = max(1.0, float(weight))
        key.value = float(weight)
    keys = obj.data.shape_keys
    assert keys is not None
    tx.new(keys, name)
