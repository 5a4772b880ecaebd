"""How far a reconstructed head is from the true one, measured the way a sceptic (and the literature) would.

Every measure here is applied in exactly the same way to the fitted head and to the unfitted mean head, so
"beats the mean head" compares like with like:

* `face_errors`: similarity alignment (Umeyama: rotation, translation, scale) of the face-region vertices onto the
  truth's same vertices, then the per-vertex distance; the scale is free, so a head that is right up to size is
  not punished for the focal/distance ambiguity of one photo.
* `region_errors`: REALY-style per-region errors (nose, mouth, forehead, cheeks): each region re-aligned on its
  own vertices (similarity), then its mean vertex distance, as REALY aligns and scores regions separately.
* `now_errors`: NoW-style scan-to-mesh distance: the estimate is aligned to the "scan" (the true head's surface
  within 95 mm of its nose tip, as NoW crops its scans) by a similarity on 7 landmarks (eye corners, nose tip,
  mouth corners), refined by ICP on the scan-to-mesh closest points, then the distance of every scan point to
  the estimate's surface; median, mean and standard deviation in mm. Published NoW numbers (DECA 1.09/1.38/
  1.18 mm) are on real scans and photos, so they are a reference for scale, not a comparison.

bpy-free (numpy + scipy); tests, bench/geometry.py and tools/learn_landmarks.py use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ground_truth import face_region_mask, umeyama

REALY_REGIONS = ("nose", "mouth", "forehead", "cheeks")
# NoW's seven landmarks as MediaPipe ids: eye outer and inner corners, nose tip, mouth corners.
NOW_LANDMARKS = (33, 133, 362, 263, 1, 61, 291)
NOW_CROP_M = 0.095


def _np(value: Any, dtype: Any = np.float64) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def apply(similarity: tuple[float, np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    s, rotation, t = similarity
    return s * points @ rotation.T + t


def face_errors(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-vertex distances (same units) on mask after a similarity alignment of estimate onto truth over mask."""
    similarity = umeyama(estimate[mask], truth[mask])
    return np.linalg.norm(apply(similarity, estimate[mask]) - truth[mask], axis=1)


def region_masks(model: Any, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """(V,) bool per REALY region, within the face region."""
    names = [str(n) for n in model.region_names]
    weights = _np(model.region_weights)
    face = face_region_mask(model)
    return {name: (weights[names.index(name)] >= threshold) & face for name in REALY_REGIONS if name in names}


def region_errors(estimate: np.ndarray, truth: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean vertex error of each region after aligning that region alone (similarity), in the input units."""
    return {name: float(face_errors(estimate, truth, mask).mean()) for name, mask in regions.items()}


@dataclass(frozen=True)
class Surface:
    """A triangle mesh prepared for closest-point queries (vertex k-d tree + vertex → incident faces)."""

    vertices: np.ndarray
    faces: np.ndarray
    tree: cKDTree
    incident: np.ndarray  # (V, M) face ids, −1 padded

    @classmethod
    def of(cls, vertices: np.ndarray, faces: np.ndarray) -> Surface:
        counts = np.bincount(faces.reshape(-1), minlength=len(vertices))
        incident = -np.ones((len(vertices), int(counts.max())), np.int64)
        fill = np.zeros(len(vertices), np.int64)
        for f, tri in enumerate(faces):
            for v in tri:
                incident[v, fill[v]] = f
                fill[v] += 1
        return cls(vertices, faces, cKDTree(vertices), incident)

    def moved(self, vertices: np.ndarray) -> Surface:
        return Surface(vertices, self.faces, cKDTree(vertices), self.incident)

    def closest(self, points: np.ndarray, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
        """(closest surface point (N, 3), distance (N,)) over the faces around the k nearest vertices."""
        _, near = self.tree.query(points, k=k)
        candidates = self.incident[near].reshape(len(points), -1)  # (N, k·M)
        valid = candidates >= 0
        tri = self.vertices[self.faces[np.where(valid, candidates, 0)]]  # (N, C, 3, 3)
        closest = _closest_on_triangles(points[:, None, :], tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
        distance = np.where(valid, np.linalg.norm(closest - points[:, None, :], axis=-1), np.inf)
        best = distance.argmin(1)
        rows = np.arange(len(points))
        return closest[rows, best], distance[rows, best]


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point on triangle (a, b, c) to p, broadcast (Ericson, Real-Time Collision Detection 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = np.where(np.abs(va + vb + vc) < 1e-30, 1e-30, va + vb + vc)
    v, w = vb / denom, vc / denom
    out = a + ab * v[..., None] + ac * w[..., None]

    def safe(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x / np.where(np.abs(y) < 1e-30, 1e-30, y)

    # Edge and vertex regions, most specific last so they win (a point is in exactly one region).
    t_bc = safe(d4 - d3, (d4 - d3) + (d5 - d6))
    out = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None], b + (c - b) * t_bc[..., None], out)
    t_ac = safe(d2, d2 - d6)
    out = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], a + ac * t_ac[..., None], out)
    t_ab = safe(d1, d1 - d3)
    out = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], a + ab * t_ab[..., None], out)
    out = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    return out


def embedded_points(vertices: np.ndarray, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    return (vertices[faces[tri]] * bary[..., None]).sum(1)


def now_errors(estimate: np.ndarray, truth: np.ndarray, faces: np.ndarray, landmark_tri: np.ndarray,
               landmark_bary: np.ndarray, iterations: int = 30) -> np.ndarray:
    """NoW-style scan-to-mesh distances (N,) in the input units; see the module docstring.

    landmark_tri/bary: the 7 NoW landmarks on the head model's surface (the same for estimate and truth, as
    NoW's scan and mesh landmarks name the same anatomical points).
    """
    truth_landmarks = embedded_points(truth, faces, landmark_tri, landmark_bary)
    nose_tip = truth_landmarks[4]
    scan = truth[np.linalg.norm(truth - nose_tip, axis=1) <= NOW_CROP_M]
    similarity = umeyama(embedded_points(estimate, faces, landmark_tri, landmark_bary), truth_landmarks)
    surface = Surface.of(estimate, faces)
    distance = np.zeros(len(scan))
    for _ in range(iterations):
        moved = surface.moved(apply(similarity, estimate))
        closest, distance = moved.closest(scan)
        # Align the estimate's matched points onto the scan: compose with the current similarity.
        s, rotation, t = umeyama(closest, scan)
        step = (s, rotation, t)
        new = (step[0] * similarity[0], step[1] @ similarity[1], step[0] * step[1] @ similarity[2] + step[2])
        change = abs(new[0] / similarity[0] - 1) + np.abs(new[1] - similarity[1]).max() + np.abs(new[2] - similarity[2]).max()
        similarity = new
        if change < 1e-7:
            break
    _, distance = surface.moved(apply(similarity, estimate)).closest(scan)
    return distance


def summary_mm(distances_m: np.ndarray) -> dict[str, float]:
    d = 1000 * np.asarray(distances_m)
    return {"median": float(np.median(d)), "mean": float(d.mean()), "std": float(d.std())}
