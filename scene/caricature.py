"""Caricature shape keys on the Face: exaggerate how the fitted face differs from the average head, globally or per region.

The deviation is the Basis (the fitted identity, model space) minus the head
model's mean shape; core.apps.caricature defines how a factor scales it per vertex.
"Caricature" holds the deviation added once more (factor 2 at value 1), and
"Caricature <Region>" the same inside one region with its smooth border, so
the key value v gives the factor 1 + v: 0 keeps the fitted face, −1 is the
average head, 1.5 is a factor of 2.5. Expression keys still apply on top,
and pose and textures are untouched.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core.common.errors import FaceStageError
from .mesh import as_numpy, mean_vertices

CARICATURE = "Caricature"
SLIDER = (-1.0, 2.0)


def region_key(region: str) -> str:
    return f"{CARICATURE} {region.replace('_', ' ').title()}"


def key_names(model: Any) -> list[str]:
    """The global key's name, then one per head-model region."""
    return [CARICATURE, *(region_key(str(r)) for r in model.region_names)]


def add_caricature(face: bpy.types.Object, model: Any) -> list[bpy.types.ShapeKey]:
    """Create (or recompute) the caricature keys of a FaceStage face; their values are left as they were."""
    import torch  # heavy: only once the dependencies are installed

    from ..core.apps.caricature import caricature_scale, caricature_vertices  # imports torch: only once the dependencies are installed

    keys = face.data.shape_keys
    if keys is None or keys.key_blocks.get("Basis") is None:
        raise FaceStageError(f"{face.name} has no Basis shape key; rebuild the FaceStage scene.")
    basis_key = keys.key_blocks["Basis"]
    basis = np.empty(len(basis_key.data) * 3, np.float32)
    basis_key.data.foreach_get("co", basis)  # type: ignore[arg-type]
    mean = mean_vertices(model)
    if len(basis) != mean.size:
        raise FaceStageError(f"{face.name} has {len(basis) // 3} vertices but the head model has {len(mean)}; "
                             "caricature needs the FaceStage face's own topology.")
    weights = {str(name): as_numpy(w) for name, w in zip(model.region_names, model.region_weights)}
    mean_t = torch.as_tensor(mean)
    deviation = torch.as_tensor(basis.reshape(-1, 3).astype(np.float64)) - mean_t
    still = torch.zeros_like(deviation)
    scales = {CARICATURE: caricature_scale(weights, 2.0, {})}
    scales.update({region_key(name): caricature_scale(weights, 1.0, {name: 2.0}) for name in weights})
    created = []
    for name, scale in scales.items():
        positions = caricature_vertices(mean_t, deviation, still, torch.as_tensor(scale))
        key = keys.key_blocks.get(name) or face.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", positions.numpy().astype(np.float32).ravel())  # type: ignore[arg-type]
        key.relative_key = basis_key
        key.slider_min, key.slider_max = SLIDER
        created.append(key)
    face.data.update()
    return created


def caricature_keys(face: bpy.types.Object | None) -> list[bpy.types.ShapeKey]:
    """The caricature keys a face has, global first."""
    if face is None or face.data.shape_keys is None:
        return []
    blocks = face.data.shape_keys.key_blocks
    return [k for k in blocks if k.name == CARICATURE] + [k for k in blocks if k.name.startswith(CARICATURE + " ")]
