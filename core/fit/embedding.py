"""Where each of MediaPipe's 478 landmarks sits on the head model's surface, and how much to trust it.

The landmark solver and the photometric stages tie detected landmarks to the
mesh through `model/data/landmarks_hm08.npz` (triangle + barycentrics per
landmark, built by tools/embed_landmarks.py). The jaw-line landmarks
(`contour`) are not fixed surface points: they slide on the occluding contour
over a band of jaw/cheek vertices (see fit/solver.py).

MediaPipe does not put its points on fixed surface points: on an unusual face it drifts towards its own
average face, by an amount that depends on the head's shape, expression and pose. `LandmarkModel`
(model/data/landmarks_hm08_learned.npz, learned by tools/learn_landmarks.py from MediaPipe run on renders
of heads with known geometry) corrects that: each landmark sits at its embedded point plus an offset that is
linear in the leading identity coefficients, some expression units and the viewing direction, and carries its
own measured noise level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..common.errors import FaceStageError

EMBEDDING_PATH = Path(__file__).resolve().parents[1] / "model" / "data" / "landmarks_hm08.npz"
LEARNED_PATH = EMBEDDING_PATH.with_name("landmarks_hm08_learned.npz")
VIEW_FEATURES = ("view_x", "view_z", "view_x2")

# Landmark groups (stored per landmark in the embedding file) and their weights in the fits.
GROUP_NAMES = ("other", "contour", "brow", "eye", "iris", "nose", "lips", "oval")
GROUP_WEIGHTS = {"other": 1.0, "contour": 1.0, "brow": 1.0, "eye": 2.0, "iris": 0.0, "nose": 2.0, "lips": 1.5, "oval": 0.5}


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Where each MediaPipe landmark sits on the head model, and how much to trust it."""

    faces: np.ndarray  # (478,) triangle of the head mesh
    bary: np.ndarray  # (478, 3) barycentrics in that triangle
    weights: np.ndarray  # (478,) in (0, 1], from the back-projection spread
    spread_mm: np.ndarray  # (478,) median distance of the per-view back-projections to the chosen point
    group: np.ndarray  # (478,) index into GROUP_NAMES
    contour: np.ndarray  # (C,) landmark ids that slide on the occluding contour (jaw line)
    band_vertices: np.ndarray  # (B,) head-mesh vertices the contour landmarks may slide over
    vertex_count: int

    def group_weights(self, table: dict[str, float] | None = None) -> np.ndarray:
        """(478,) weight of each landmark's group (GROUP_WEIGHTS unless `table` is given)."""
        table = GROUP_WEIGHTS if table is None else table
        return np.array([table[GROUP_NAMES[g]] for g in self.group])

    def used(self) -> np.ndarray:
        """(478,) bool: the landmarks the fit weighs at all (the ones its errors are reported over)."""
        return self.weights * self.group_weights() > 0

    def uv(self, uvs: np.ndarray, face_uvs: np.ndarray, ids: tuple[int, ...] | np.ndarray) -> np.ndarray:
        """(N, 2) texture coordinates of landmarks `ids` on the head mesh (its `uvs` (T, 2), `face_uvs` (F, 3))."""
        ids_np = np.asarray(ids)
        return (uvs[face_uvs[self.faces[ids_np]]] * self.bary[ids_np][..., None]).sum(1)


def load_embedding(path: str | Path | None = None) -> LandmarkEmbedding:
    """Read the landmark embedding (cached for the default file)."""
    return _load_embedding(str(Path(path) if path is not None else EMBEDDING_PATH))


@lru_cache(maxsize=4)
def _load_embedding(path: str) -> LandmarkEmbedding:
    if not Path(path).is_file():
        raise FaceStageError(f"The landmark embedding {path} is missing; reinstall FaceStage.")
    with np.load(path) as data:
        return LandmarkEmbedding(
            faces=data["faces"].astype(np.int64), bary=data["bary"].astype(np.float64),
            weights=data["weights"].astype(np.float64), spread_mm=data["spread_mm"].astype(np.float64),
            group=data["group"].astype(np.int64), contour=data["contour"].astype(np.int64),
            band_vertices=data["band_vertices"].astype(np.int64), vertex_count=int(data["vertex_count"].reshape(-1)[0]))


def view_features(view: np.ndarray) -> np.ndarray:
    """(..., 3) pose features of unit head-to-camera directions (..., 3) in the model frame: x, z and x²."""
    view = np.asarray(view, np.float64)
    return np.stack([view[..., 0], view[..., 2], view[..., 0] ** 2], -1)


@dataclass(frozen=True)
class LandmarkModel:
    """Learned landmark positions: embedded point + offset(identity, expression, view), and per-landmark noise.

    offset = offset₀ + Σ_k identity_k · identity_offset_k + Σ_u expression_u · expression_offset_u
             + Σ_j view_features_j · view_offset_j          (model space, metres)
    """

    offset: np.ndarray  # (478, 3)
    identity_offset: np.ndarray  # (K', 478, 3) for the K' leading identity components
    expression_units: np.ndarray  # (U,) indices into the model's expression units
    expression_offset: np.ndarray  # (U, 478, 3)
    view_offset: np.ndarray  # (3, 478, 3), see VIEW_FEATURES
    sigma_pct_iod: np.ndarray  # (478,) per-axis noise after the correction, % of the inter-ocular distance
    corrected: np.ndarray  # (478,) bool: landmarks with a learned offset (not the sliding jaw line, not the irises)
    w_identity: float  # identity-prior weight calibrated with this model on validation heads (nan: not calibrated)
    focal_std_scale: float = 1.0  # reported focal uncertainty = this × the Laplace standard deviation (calibrated)
    w_expression: float = float("nan")  # expression-prior weight (L1 and L2 parts) calibrated alike
    w_focal: float = float("nan")  # focal-prior weight (1/σ² of log f) calibrated alike, on the focal error

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offset": self.offset.astype(np.float32), "identity_offset": self.identity_offset.astype(np.float32),
                "expression_units": self.expression_units.astype(np.int32),
                "expression_offset": self.expression_offset.astype(np.float32),
                "view_offset": self.view_offset.astype(np.float32), "sigma_pct_iod": self.sigma_pct_iod.astype(np.float32),
                "corrected": self.corrected.astype(np.bool_), "w_identity": np.array(self.w_identity, np.float64),
                "focal_std_scale": np.array(self.focal_std_scale, np.float64),
                "w_expression": np.array(self.w_expression, np.float64), "w_focal": np.array(self.w_focal, np.float64)}

    def identity_basis(self, n_identity: int) -> np.ndarray:
        """(n_identity, 478, 3) offset per identity coefficient (zero beyond the learned ones)."""
        out = np.zeros((n_identity, *self.offset.shape))
        k = min(n_identity, self.identity_offset.shape[0])
        out[:k] = self.identity_offset[:k]
        return out

    def expression_basis(self, n_expression: int) -> np.ndarray:
        """(n_expression, 478, 3) offset per expression unit (zero for the units without one)."""
        out = np.zeros((n_expression, *self.offset.shape))
        out[self.expression_units] = self.expression_offset
        return out

    def view_offsets(self, view: np.ndarray) -> np.ndarray:
        """(478, 3) offset of a head-to-camera direction (3,) in the model frame."""
        return np.einsum("j,jlc->lc", view_features(view), self.view_offset)


def load_landmark_model(path: str | Path | None = None) -> LandmarkModel | None:
    """The learned landmark model (cached), or None when the file is absent (the fit then uses fixed points)."""
    return _load_landmark_model(str(Path(path) if path is not None else LEARNED_PATH))


@lru_cache(maxsize=4)
def _load_landmark_model(path: str) -> LandmarkModel | None:
    if not Path(path).is_file():
        return None
    with np.load(path) as data:
        return LandmarkModel(
            offset=data["offset"].astype(np.float64), identity_offset=data["identity_offset"].astype(np.float64),
            expression_units=data["expression_units"].astype(np.int64),
            expression_offset=data["expression_offset"].astype(np.float64),
            view_offset=data["view_offset"].astype(np.float64), sigma_pct_iod=data["sigma_pct_iod"].astype(np.float64),
            corrected=data["corrected"].astype(bool), w_identity=data["w_identity"].item(),
            focal_std_scale=data["focal_std_scale"].item() if "focal_std_scale" in data else 1.0,
            w_expression=data["w_expression"].item() if "w_expression" in data else float("nan"),
            w_focal=data["w_focal"].item() if "w_focal" in data else float("nan"))
