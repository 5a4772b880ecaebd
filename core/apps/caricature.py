"""Caricature: exaggerate how a face differs from the average head, globally or per region.

It works on the recovered parameters, not on pixels: the identity's deviation
from the mean head is scaled per vertex, so expression, pose and textures are
untouched and the Blender shape keys (scene/caricature.py) use the same
`caricature_scale` and `caricature_vertices`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..common.errors import FaceStageError
from ..io.result import Result
from ..model.head import load_head_model

MAX_UNFOLD_PASSES = 12


def parse_region_factors(text: str, known: list[str]) -> dict[str, float]:
    """'nose=2.5,jaw=1.5' → {'nose': 2.5, 'jaw': 1.5}, refusing unknown regions."""
    factors: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise FaceStageError(f"Region {name!r} is not one of: {', '.join(known)} (write e.g. nose=2.5,jaw=1.5).")
        try:
            factors[name] = float(value)
        except ValueError:
            raise FaceStageError(f"Region factor {item!r} is not a number.") from None
    return factors


def caricature_scale(region_weights: dict[str, np.ndarray], factor: float, regions: dict[str, float]) -> np.ndarray:
    """Per-vertex exaggeration factor s (V,).

    Without regions every vertex gets ``factor``. With regions, s = 1 + Σ_r w_r (f_r − 1),
    the weights renormalised where regions overlap, so vertices outside every
    selected region (w = 0) keep s = 1 exactly and borders blend smoothly.
    """
    n_vertices = len(next(iter(region_weights.values())))
    if not regions:
        return np.full(n_vertices, float(factor), np.float64)
    weights = np.stack([region_weights[name] for name in regions]).astype(np.float64)
    total = weights.sum(0)
    weights = weights / np.maximum(total, 1.0)
    return 1.0 + (weights * (np.array(list(regions.values()))[:, None] - 1.0)).sum(0)


def caricature_vertices(mean: torch.Tensor, identity_offset: torch.Tensor, expression_offset: torch.Tensor,
                        scale: torch.Tensor) -> torch.Tensor:
    """Model-space vertices with the identity deviation scaled per vertex: factor 1 = identity, 0 = mean head."""
    return mean + scale[:, None] * identity_offset + expression_offset


def folded_faces(before: np.ndarray, after: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) bool: triangles whose normal turned by more than 90° between two shapes (a fold or self-intersection)."""
    def normals(v: np.ndarray) -> np.ndarray:
        return np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])

    return (normals(before) * normals(after)).sum(1) <= 0


def caricature_result(result: Result, factor: float, regions: dict[str, float]) -> Result:
    """A copy of the result whose identity deviation is scaled (see caricature_scale); maps, pose and expression kept.

    Large factors can fold thin features (eyelids, lip corners) over; where a triangle would flip,
    the exaggeration of its corners is halved until none does, so the mesh stays valid.
    """
    model = load_head_model()
    weights = {name: model.region_weights[k].numpy() for k, name in enumerate(model.region_names)}
    for name in regions:
        if name not in weights:
            raise FaceStageError(f"Region {name!r} is not one of: {', '.join(model.region_names)}.")
    scale = torch.as_tensor(caricature_scale(weights, factor, regions), dtype=torch.float32)
    identity = torch.as_tensor(result.identity, dtype=torch.float32)
    expression = torch.as_tensor(result.expression, dtype=torch.float32)
    mean = model.vertices
    offset_id = model.evaluate(identity, None) - mean
    offset_ex = model.evaluate(None, expression) - mean
    base = (mean + offset_id + offset_ex).double().numpy()
    faces = model.faces.numpy()
    for _ in range(MAX_UNFOLD_PASSES):
        local = caricature_vertices(mean, offset_id, offset_ex, scale).double().numpy()
        folded = folded_faces(base, local, faces)
        if not folded.any():
            break
        # Pull the exaggeration of folded triangles (and their corners' neighbours) halfway back towards 1.
        corners = np.unique(faces[folded])
        scale[corners] = 1.0 + 0.5 * (scale[corners] - 1.0)
    out = copy.copy(result)
    if result.lips_shape is not None:  # the lips' edges keep the photo's opening
        local = local + np.asarray(result.lips_shape, np.float64)
    out.vertices = (local @ np.asarray(result.rotation).T + np.asarray(result.translation)).astype(np.float32)
    out.edits = {**result.edits, "caricature": {"factor": factor, "regions": regions}}
    return out
