"""Where each of MediaPipe's 478 landmarks sits on the head model's surface, and how much to trust it.

The landmark solver and the photometric stages tie detected landmarks to the
mesh through `model/data/landmarks_hm08.npz` (triangle + barycentrics per
landmark, built by tools/embed_landmarks.py). The jaw-line landmarks
(`contour`) are not fixed surface points: they slide on the occluding contour
over a band of jaw/cheek vertices (see fit/solver.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..common.errors import FaceStageError

EMBEDDING_PATH = Path(__file__).resolve().parents[1] / "model" / "data" / "landmarks_hm08.npz"

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
