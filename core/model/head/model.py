"""The statistical head model: mean + identity basis + ARKit expression basis, evaluated in torch.

Why it is shaped this way: the whole reconstruction is analysis by synthesis, so
the head must be a differentiable function of a few coefficients (identity
shape, expression) that also carries what the later stages need on the same
vertices — a UV layout for the texture maps, region weights for per-region
edits and priors, a mirror map for the symmetry prior, and eyeballs. All of it
comes from one committed file, core/model/data/head_hm08.npz, built from the CC0
MakeHuman hm08 assets by tools/build_head_model.py (which documents every
choice; the same text is in the file's `info` entry, `HeadModel.info`).

Facts a caller relies on (docs/conventions.md, "Head model"):
  * metres, Blender frame (Z up), the head faces −Y, origin at the head centre
    (eye-centre height, halfway through the head front to back);
    hm08 coordinates = 10 · (x, z, −y) of (vertices + origin_offset);
  * +X is the subject's left; ARKit "…Left" units move the +X side;
  * identity coefficient 1 = one standard deviation of the build's shape
    distribution; the basis is orthogonal in the metric ⟨a, b⟩ = Σ_v m_v a_v·b_v
    (m = `vertex_mass`, sums to 1), with ⟨basis_k, basis_l⟩ = identity_variance[k]·δ_kl;
    `identity_explained_variance` is the cumulative fraction of the total;
  * expression weights are meant for [0, 1];
  * eyes are separate meshes (left eye first): UV spheres whose vertex 0 / 1 are
    the front / back pole (gaze at rest: −Y), following the identity through
    `eye_identity_basis` (translation + uniform scale); expressions do not move
    them (gaze is a rotation about the centre: model/head/parts.py);
  * the mouth (`mouth_*`: cavity, upper teeth, lower teeth, tongue, see
    `mouth_part_names` / `mouth_face_part`) follows identity and expression like
    the head (jawOpen turns the lower teeth with the jaw).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...common.errors import FaceStageError

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "head_hm08.npz"

_FLOAT = ("vertices", "uvs", "identity_basis", "identity_variance", "identity_explained_variance",
          "expression_basis", "region_weights", "vertex_mass", "origin_offset", "eye_vertices", "eye_uvs",
          "eye_centres", "eye_identity_basis", "eye_expression_basis", "mouth_vertices", "mouth_uvs",
          "mouth_identity_basis", "mouth_expression_basis")
_INT = ("faces", "face_uvs", "symmetry", "source_vertex_ids", "eye_faces", "eye_face_uvs", "mouth_faces",
        "mouth_face_uvs", "mouth_face_part", "mouth_source_vertex_ids")


@dataclass(frozen=True, eq=False)
class HeadModel:
    """Arrays of head_hm08.npz as torch tensors on one device (float32, indices int64)."""

    vertices: torch.Tensor  # (V, 3) mean shape
    faces: torch.Tensor  # (F, 3)
    uvs: torch.Tensor  # (T, 2)
    face_uvs: torch.Tensor  # (F, 3) face-varying UV indices
    identity_basis: torch.Tensor  # (K, V, 3)
    identity_variance: torch.Tensor  # (K,) λ_k, m² in the vertex_mass metric
    identity_explained_variance: torch.Tensor  # (K,) cumulative fraction
    expression_basis: torch.Tensor  # (52, V, 3)
    expression_names: tuple[str, ...]
    region_names: tuple[str, ...]
    region_weights: torch.Tensor  # (R, V) in [0, 1]
    symmetry: torch.Tensor  # (V,) mirror vertex (x → −x)
    source_vertex_ids: torch.Tensor  # (V,) hm08 vertex ids
    vertex_mass: torch.Tensor  # (V,) area weights, sum 1
    origin_offset: torch.Tensor  # (3,)
    eye_vertices: torch.Tensor  # (E, 3), left eye then right eye
    eye_faces: torch.Tensor
    eye_uvs: torch.Tensor
    eye_face_uvs: torch.Tensor
    eye_centres: torch.Tensor  # (2, 3) mean shape, [left (+X), right]
    eye_identity_basis: torch.Tensor  # (K, E, 3)
    eye_expression_basis: torch.Tensor  # (52, E, 3) zero: expressions do not move the eyeballs
    mouth_vertices: torch.Tensor  # (M, 3) cavity, upper teeth, lower teeth, tongue
    mouth_faces: torch.Tensor  # (Fm, 3)
    mouth_uvs: torch.Tensor  # (Tm, 2) the mouth atlas
    mouth_face_uvs: torch.Tensor  # (Fm, 3)
    mouth_face_part: torch.Tensor  # (Fm,) index into mouth_part_names
    mouth_source_vertex_ids: torch.Tensor  # (M,) hm08 ids
    mouth_identity_basis: torch.Tensor  # (K, M, 3)
    mouth_expression_basis: torch.Tensor  # (52, M, 3)
    mouth_part_names: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    path: Path = DEFAULT_PATH

    @property
    def mean_vertices(self) -> torch.Tensor:
        return self.vertices

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def evaluate(self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices (..., V, 3) = mean + Σ identity·identity_basis + Σ expression·expression_basis.

        identity (..., K) and expression (..., 52) may be batched (same leading shape) or None (= zeros);
        differentiable in both.
        """
        return _combine(self.vertices, self.identity_basis, self.expression_basis, identity, expression)

    def eye_evaluate(self, identity: torch.Tensor | None = None,
                     expression: torch.Tensor | None = None) -> torch.Tensor:
        """Eyeball vertices (..., E, 3) for the same coefficients as `evaluate`."""
        return _combine(self.eye_vertices, self.eye_identity_basis, self.eye_expression_basis, identity, expression)

    def eye_centres_of(self, eye_vertices: torch.Tensor) -> torch.Tensor:
        """(..., 2, 3) centres [left, right] of evaluated eyeballs (the midpoint of each eye's two poles)."""
        half = eye_vertices.shape[-2] // 2
        return torch.stack([0.5 * (eye_vertices[..., 0, :] + eye_vertices[..., 1, :]),
                            0.5 * (eye_vertices[..., half, :] + eye_vertices[..., half + 1, :])], -2)

    def mouth_evaluate(self, identity: torch.Tensor | None = None,
                       expression: torch.Tensor | None = None) -> torch.Tensor:
        """Mouth vertices (..., M, 3) (cavity, teeth, tongue) for the same coefficients as `evaluate`."""
        return _combine(self.mouth_vertices, self.mouth_identity_basis, self.mouth_expression_basis, identity,
                        expression)

    def region(self, name: str) -> torch.Tensor:
        """(V,) weights of one region (see `region_names`)."""
        if name not in self.region_names:
            raise FaceStageError(f"Unknown head region '{name}'; choose one of {', '.join(self.region_names)}.")
        return self.region_weights[self.region_names.index(name)]

    def expression_index(self, name: str) -> int:
        if name not in self.expression_names:
            raise FaceStageError(f"Unknown expression '{name}'; the head model has the 52 ARKit names.")
        return self.expression_names.index(name)

    def mirrored(self, values: torch.Tensor) -> torch.Tensor:
        """Per-vertex positions or displacements (..., V, 3) reflected through the x = 0 plane."""
        flip = torch.tensor([-1.0, 1.0, 1.0], dtype=values.dtype, device=values.device)
        return values[..., self.symmetry, :] * flip

    def to_hm08(self, vertices: torch.Tensor) -> torch.Tensor:
        """Model-space metres → hm08 coordinates (decimetres, y up, +z front)."""
        p = vertices + self.origin_offset.to(vertices)
        return 10.0 * torch.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)


def _combine(mean: torch.Tensor, id_basis: torch.Tensor, ex_basis: torch.Tensor,
             identity: torch.Tensor | None, expression: torch.Tensor | None) -> torch.Tensor:
    out = mean
    if identity is not None:
        identity = torch.as_tensor(identity, dtype=mean.dtype, device=mean.device)
        out = out + torch.einsum("...k,kvc->...vc", identity, id_basis)
    if expression is not None:
        expression = torch.as_tensor(expression, dtype=mean.dtype, device=mean.device)
        out = out + torch.einsum("...e,evc->...vc", expression, ex_basis)
    return out


def posed(vertices: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """World positions R·v + t of model-space vertices (..., N, 3); R (..., 3, 3), t (..., 3)."""
    return vertices @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit vertex normals (..., V, 3) of triangles `faces` (F, 3), each face weighted by its corner angle at
    the vertex, as Blender computes a mesh's vertex normals (area weighting differs from Blender's by 2° on
    average, 5° at the 90th percentile on the head mesh, which Cycles' shading shows); differentiable."""
    faces = faces.long()
    corners = [vertices[..., faces[:, i], :] for i in range(3)]
    unit_face = torch.nn.functional.normalize(torch.linalg.cross(corners[1] - corners[0], corners[2] - corners[0]),
                                              dim=-1, eps=1e-20)
    normals = torch.zeros_like(vertices)
    for i in range(3):
        p, q, r = corners[i], corners[(i + 1) % 3], corners[(i + 2) % 3]
        e1 = torch.nn.functional.normalize(q - p, dim=-1, eps=1e-20)
        e2 = torch.nn.functional.normalize(r - p, dim=-1, eps=1e-20)
        angle = torch.atan2(torch.linalg.cross(e1, e2).norm(dim=-1), (e1 * e2).sum(-1))
        normals = normals.index_add(-2, faces[:, i], unit_face * angle[..., None])
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


_CACHE: dict[tuple[str, str], HeadModel] = {}


def load_head_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> HeadModel:
    """The head model from `path` (default: the committed core/model/data/head_hm08.npz) on `device`, cached."""
    path = Path(path) if path is not None else DEFAULT_PATH
    device = torch.device(device)
    key = (str(path.resolve()), str(device))
    if key not in _CACHE:
        if not path.is_file():
            raise FaceStageError(f"Head model file {path} is missing; rebuild it with tools/build_head_model.py.")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        missing = [n for n in (*_FLOAT, *_INT, "expression_names", "region_names", "mouth_part_names") if n not in arrays]
        if missing:
            raise FaceStageError(f"Head model file {path} lacks {', '.join(missing)}; rebuild it.")
        tensors: dict[str, Any] = {n: torch.from_numpy(np.asarray(arrays[n], np.float32)).to(device) for n in _FLOAT}
        tensors.update({n: torch.from_numpy(arrays[n].astype(np.int64)).to(device) for n in _INT})
        _CACHE[key] = HeadModel(
            **tensors,
            expression_names=tuple(str(n) for n in arrays["expression_names"]),
            region_names=tuple(str(n) for n in arrays["region_names"]),
            mouth_part_names=tuple(str(n) for n in arrays["mouth_part_names"]),
            info=json.loads(arrays["info"].item()) if "info" in arrays else {},
            path=path,
        )
    return _CACHE[key]
