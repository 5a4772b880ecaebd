"""Tie MediaPipe's 478 face-mesh landmarks to the head model's surface, automatically and reproducibly.

The landmark detector knows faces, not our mesh: which triangle of the hm08
head a landmark like "left mouth corner" belongs to is found by rendering the
head (Cycles, several identities from the prior, yaw −30°..30°, neutral
expression, soft light), detecting the landmarks in each render, casting a
ray from the camera through every landmark pixel onto the known posed mesh,
and taking a robust average of the hits in the mean shape's topology. The
spread of the per-view hits says how well defined each landmark is and
becomes its weight in the fit.

Writes core/model/data/landmarks_hm08.npz (faces, bary, weights, spread_mm, group,
contour, band_vertices, vertex_count) and core/model/data/landmarks_hm08_report.json.

    python tools/embed_landmarks.py [--views-dir DIR] [--samples 16]

Deterministic: seeded identities, fixed Cycles seed, MediaPipe on CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from dataclasses import dataclass

import numpy as np
import torch

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
for path in (str(ROOT.parent), str(TOOLS)):
    if path not in sys.path:
        sys.path.insert(0, path)

import synthetic as render_tool  # noqa: E402  (tools/synthetic.py)

from facestage.core.fit.embedding import GROUP_NAMES  # noqa: E402
from facestage.core.fit.landmarks import N_LANDMARKS  # noqa: E402
from facestage.core.model import camera  # noqa: E402
from ground_truth import Light, Scene, camera_for, eye_vertices, head_vertices  # noqa: E402

log = logging.getLogger("embed_landmarks")

OUT_NPZ = ROOT / "core" / "model" / "data" / "landmarks_hm08.npz"
OUT_REPORT = ROOT / "core" / "model" / "data" / "landmarks_hm08_report.json"
SIZE = 512
FOCAL_MM = 50.0
YAWS = (-30.0, -15.0, 0.0, 15.0, 30.0)
EXTRA_PITCHES = (-8.0, 8.0)  # at yaw 0
N_RANDOM_IDENTITIES = 9
IDENTITY_SEED = 2024
SPREAD_SCALE_MM = 2.5  # weight = 1 / (1 + (spread / scale)²)
# Jaw line: the lower face oval, from ear level on one side round the chin to the other.
CONTOUR = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323)


# --------------------------------------------------------------------------- geometry (numpy)


def ray_mesh(origins: np.ndarray, directions: np.ndarray, triangles: np.ndarray, chunk: int = 32
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of each ray on a triangle soup (Möller–Trumbore): (distance, triangle, bary); inf/−1 on a miss."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e1, e2 = b - a, c - a
    n = len(origins)
    best_t = np.full(n, np.inf)
    best_f = -np.ones(n, np.int64)
    best_uv = np.zeros((n, 2))
    for s in range(0, n, chunk):
        o, d = origins[s:s + chunk, None, :], directions[s:s + chunk, None, :]
        p = np.cross(d, e2[None])
        det = (e1[None] * p).sum(-1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tvec = o - a[None]
        u = (tvec * p).sum(-1) * inv
        q = np.cross(tvec, e1[None])
        v = (d * q).sum(-1) * inv
        t = (e2[None] * q).sum(-1) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
        t = np.where(hit, t, np.inf)
        f = t.argmin(1)
        rows = np.arange(len(f))
        best_t[s:s + chunk] = t[rows, f]
        best_f[s:s + chunk] = np.where(np.isfinite(t[rows, f]), f, -1)
        best_uv[s:s + chunk] = np.stack([u[rows, f], v[rows, f]], 1)
    bary = np.stack([1 - best_uv[:, 0] - best_uv[:, 1], best_uv[:, 0], best_uv[:, 1]], 1)
    return best_t, best_f, bary


def closest_on_mesh(points: np.ndarray, triangles: np.ndarray, chunk: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of each query (Ericson, Real-Time Collision Detection 5.1.5): (point, triangle, bary)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    ab, ac = b - a, c - a
    out_p = np.zeros_like(points)
    out_f = np.zeros(len(points), np.int64)
    out_b = np.zeros((len(points), 3))
    for s in range(0, len(points), chunk):
        p = points[s:s + chunk, None, :]
        ap, bp, cp = p - a, p - b, p - c
        d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
        d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
        d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
        va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
        denom = va + vb + vc
        denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
        v, w = vb / denom, vc / denom
        bary = np.stack([1 - v - w, v, w], -1)
        safe = (lambda x, y: x / np.where(np.abs(y) < 1e-30, 1e-30, y))
        # Vertex and edge regions, in Ericson's order (later assignments only where earlier ones did not apply).
        done = np.zeros(d1.shape, bool)

        def assign(mask: np.ndarray, value: np.ndarray) -> None:
            nonlocal bary, done
            mask = mask & ~done
            bary = np.where(mask[..., None], value, bary)
            done = done | mask

        one, zero = np.ones_like(d1), np.zeros_like(d1)
        assign((d1 <= 0) & (d2 <= 0), np.stack([one, zero, zero], -1))
        assign((d3 >= 0) & (d4 <= d3), np.stack([zero, one, zero], -1))
        t_ab = safe(d1, d1 - d3)
        assign((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, zero], -1))
        assign((d6 >= 0) & (d5 <= d6), np.stack([zero, zero, one], -1))
        t_ac = safe(d2, d2 - d6)
        assign((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, zero, t_ac], -1))
        t_bc = safe(d4 - d3, (d4 - d3) + (d5 - d6))
        assign((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), np.stack([zero, 1 - t_bc, t_bc], -1))
        closest = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
        dist = np.linalg.norm(closest - p, axis=-1)
        f = dist.argmin(1)
        rows = np.arange(len(f))
        out_p[s:s + chunk] = closest[rows, f]
        out_f[s:s + chunk] = f
        out_b[s:s + chunk] = bary[rows, f]
    return out_p, out_f, out_b


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], fn)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- views


def groups() -> np.ndarray:
    """Group index (GROUP_NAMES) of every landmark, from MediaPipe's own connection sets."""
    from mediapipe.python.solutions import face_mesh_connections as c

    def ids(edges: Any) -> list[int]:
        return sorted({i for e in edges for i in e})

    group = np.zeros(N_LANDMARKS, np.int64)
    for name, edges in (("oval", c.FACEMESH_FACE_OVAL), ("nose", c.FACEMESH_NOSE), ("lips", c.FACEMESH_LIPS),
                        ("brow", c.FACEMESH_LEFT_EYEBROW | c.FACEMESH_RIGHT_EYEBROW),
                        ("eye", c.FACEMESH_LEFT_EYE | c.FACEMESH_RIGHT_EYE)):
        group[ids(edges)] = GROUP_NAMES.index(name)
    group[468:] = GROUP_NAMES.index("iris")
    group[list(CONTOUR)] = GROUP_NAMES.index("contour")
    return group


def view_scenes(model: Any, samples: int = 16) -> list[Scene]:
    """The embedding views: mean + seeded random identities, each at every yaw (and two pitches frontally)."""
    rng = np.random.Generator(np.random.PCG64(IDENTITY_SEED))
    n_id = int(np.asarray(model.identity_basis).shape[0])
    identities = [np.zeros(n_id)] + [np.clip(rng.standard_normal(n_id), -1.5, 1.5) for _ in range(N_RANDOM_IDENTITIES)]
    names = [str(n) for n in model.expression_names]
    poses = [(yaw, 0.0) for yaw in YAWS] + [(0.0, pitch) for pitch in EXTRA_PITCHES]
    lights = [Light(position=[-0.9, -1.3, 0.8], size=1.5, power_w=22.0, color=[1.0, 1.0, 1.0]),
              Light(position=[1.2, -1.0, 0.2], size=1.5, power_w=9.0, color=[1.0, 1.0, 1.0])]
    scenes = []
    for i, identity in enumerate(identities):
        for yaw, pitch in poses:
            rotation = camera.rotation_from_yaw_pitch_roll(yaw, pitch, 0.0)
            distance = camera.focal_from_35mm(FOCAL_MM, SIZE, SIZE) * 0.24 / (0.6 * SIZE)
            K, world_from_camera = camera_for(FOCAL_MM, SIZE, SIZE, distance)
            scenes.append(Scene(seed=1000 + len(scenes), width=SIZE, height=SIZE,
                                identity=list(identity), expression=[0.0] * len(names), expression_names=names,
                                rotation=rotation.tolist(), translation=[0.0, 0.0, 0.0], focal_mm=FOCAL_MM, K=K.tolist(),
                                world_from_camera=world_from_camera.tolist(), lights=lights, ambient=[0.12, 0.12, 0.12],
                                melanin=0.3, haemoglobin=0.45, samples=samples, extra={"identity_index": i, "yaw": yaw, "pitch": pitch}))
    return scenes


def pixel_rays(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space ray origins (N, 3) and unit directions (N, 3) through pixel positions (core.model.camera.pixel_rays)."""
    origin, d = camera.pixel_rays(torch.as_tensor(K, dtype=torch.float64), torch.as_tensor(world_from_camera, dtype=torch.float64),
                                  torch.as_tensor(points, dtype=torch.float64))
    return np.repeat(origin.numpy()[None], len(points), 0), d.numpy()


@dataclass(frozen=True)
class Posed:
    """One view's geometry in the world: skin vertices and normals, occluders (skin + eyes), camera centre."""

    head: np.ndarray  # (V, 3)
    normals: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (F + F_eye, 3, 3)
    n_skin: int
    camera: np.ndarray  # (3,)


def pose_view(scene: Scene, model: Any) -> Posed:
    identity, expression = np.asarray(scene.identity), np.asarray(scene.expression)
    rotation = np.asarray(scene.rotation)
    faces = np.asarray(model.faces, np.int64)
    head = head_vertices(model, identity, expression) @ rotation.T + np.asarray(scene.translation)
    triangles = head[faces]
    eyes = eye_vertices(model, identity, expression)
    if eyes is not None:
        eyes = eyes @ rotation.T + np.asarray(scene.translation)
        triangles = np.concatenate([triangles, eyes[np.asarray(model.eye_faces, np.int64)]])
    return Posed(head=head, normals=vertex_normals(head, faces), triangles=triangles, n_skin=len(faces),
                 camera=np.asarray(scene.world_from_camera)[:3, 3].copy())


def backproject(scene: Scene, posed: Posed, faces: np.ndarray, points: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(triangle, bary, ok, |cos| between ray and surface normal) on the skin for each landmark pixel of
    one view. Eye hits snap to the nearest skin; a miss (just outside the outline) or a hit from inside
    (through the lips' gap) takes the skin point nearest to the ray, i.e. the outline or lip edge meant."""
    origins, directions = pixel_rays(points, np.asarray(scene.K), np.asarray(scene.world_from_camera))
    t, f, bary = ray_mesh(origins, directions, posed.triangles)
    skin_triangles = posed.triangles[:posed.n_skin]
    ok = f >= 0
    on_eye = ok & (f >= posed.n_skin)
    if on_eye.any():
        hit = origins[on_eye] + t[on_eye, None] * directions[on_eye]
        _, f[on_eye], bary[on_eye] = closest_on_mesh(hit, skin_triangles)
    skin = ok & ~on_eye
    facing = np.zeros(len(points))
    facing[skin] = ((posed.normals[faces[f[skin]]] * bary[skin, :, None]).sum(1) * directions[skin]).sum(1)
    retry = ~ok | (skin & (facing > 0))
    if retry.any():
        depth = float(np.linalg.norm(posed.head.mean(0) - posed.camera))
        steps = np.linspace(depth - 0.15, depth + 0.05, 81)
        centroids = skin_triangles.mean(1)
        for i in np.nonzero(retry)[0]:
            samples = origins[i] + steps[:, None] * directions[i]
            along = (centroids - origins[i]) @ directions[i]
            off_ray = np.linalg.norm(centroids - origins[i] - along[:, None] * directions[i], axis=1)
            candidates = np.nonzero(off_ray < 0.03)[0]
            if not len(candidates):
                ok[i] = False
                continue
            near, f_near, b_near = closest_on_mesh(samples, skin_triangles[candidates])
            k = int(np.linalg.norm(near - samples, axis=1).argmin())
            ok[i] = np.linalg.norm(near[k] - samples[k]) < 0.01
            f[i], bary[i] = candidates[f_near[k]], b_near[k]
    f = np.where(ok, f, 0)
    cosine = np.abs(((posed.normals[faces[f]] * bary[..., None]).sum(1) * directions).sum(1))
    return f, bary, ok, cosine


def visible(posed: Posed, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray, tolerance: float = 0.002) -> np.ndarray:
    """Whether each skin point (triangle, bary) is seen by the view's camera (front-facing, unoccluded)."""
    points = (posed.head[faces[tri]] * bary[..., None]).sum(1)
    directions = points - posed.camera
    distance = np.linalg.norm(directions, axis=1)
    directions /= distance[:, None]
    t, _, _ = ray_mesh(np.repeat(posed.camera[None], len(points), 0), directions, posed.triangles)
    n = (posed.normals[faces[tri]] * bary[..., None]).sum(1)
    return (t > distance - tolerance) & ((n * directions).sum(1) < 0)


def contour_band(model: Any, identities: list[np.ndarray]) -> np.ndarray:
    """(V,) bool: lower-face skin vertices that lie on the visible occluding contour for some plausible pose.

    Yaw −40°..40°, pitch −15°..15°, the embedding identities; nose, mouth, eyes and ears are left out (their
    outlines are not the jaw line); the result is grown by one ring of neighbours.
    """
    faces = np.asarray(model.faces, np.int64)
    names = list(model.region_names)
    excluded = np.zeros(len(model.vertices), bool)
    for name in ("nose", "mouth", "eyes", "ears", "brows", "forehead", "scalp", "neck"):
        if name in names:
            excluded |= np.asarray(model.region_weights[names.index(name)]) > 0.3
    mean = head_vertices(model, identities[0] * 0, np.zeros(len(model.expression_names)))
    lower = mean[:, 2] < -0.01
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
    band = np.zeros(len(mean), bool)
    distance = camera.focal_from_35mm(FOCAL_MM, SIZE, SIZE) * 0.24 / (0.6 * SIZE)
    for identity in identities:
        shape = head_vertices(model, identity, np.zeros(len(model.expression_names)))
        for yaw in range(-40, 41, 10):
            for pitch in (-15.0, 0.0, 15.0):
                head = shape @ camera.rotation_from_yaw_pitch_roll(yaw, pitch, 0.0).T
                eye = np.array([0.0, -distance, 0.0])
                view = head - eye
                s = (vertex_normals(head, faces) * view).sum(1) / np.linalg.norm(view, axis=1)
                crossing = edges[s[edges[:, 0]] * s[edges[:, 1]] < 0]
                pick = np.where(np.abs(s[crossing[:, 0]]) < np.abs(s[crossing[:, 1]]), crossing[:, 0], crossing[:, 1])
                pick = np.unique(pick[lower[pick] & ~excluded[pick]])
                if not len(pick):
                    continue
                directions = head[pick] - eye
                d = np.linalg.norm(directions, axis=1)
                t, _, _ = ray_mesh(np.repeat(eye[None], len(pick), 0), directions / d[:, None], head[faces])
                band[pick[t > d - 0.003]] = True
    grown = band.copy()
    for a, b in edges:
        if band[a] or band[b]:
            grown[a] = grown[b] = True
    return grown & ~excluded


def robust_point(samples: np.ndarray) -> np.ndarray:
    """Mean of the samples within 1.5× the median distance of their medoid (the medoid itself if that is all)."""
    if len(samples) == 1:
        return samples[0]
    d = np.linalg.norm(samples[:, None] - samples[None], axis=2)
    medoid = samples[d.sum(1).argmin()]
    r = np.linalg.norm(samples - medoid, axis=1)
    keep = r <= 1.5 * max(np.median(r), 1e-4)
    return samples[keep].mean(0)


# --------------------------------------------------------------------------- main


def model_digest() -> str:
    path = ROOT / "core" / "model" / "data" / "head_hm08.npz"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


def embed(model: Any, views_dir: Path, samples: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from facestage.core.common.errors import FaceStageError
    from facestage.core.io.image import load_png
    from facestage.core.fit.landmarks import detect

    faces = np.asarray(model.faces, np.int64)
    mean = head_vertices(model, np.zeros(np.asarray(model.identity_basis).shape[0]), np.zeros(len(model.expression_names)))
    scenes = view_scenes(model, samples)
    views: list[tuple[Scene, Posed, np.ndarray, np.ndarray, np.ndarray]] = []  # scene, geometry, tri, bary, ok
    failures = []
    for index, scene in enumerate(scenes):
        folder = views_dir / f"view_{index:02d}"
        if not render_tool.is_rendered(folder, scene):
            render_tool.render_scene(folder, scene, model, map_size=512)
        image = load_png(folder / "image.png")[..., :3]
        try:
            points = detect(image, source=str(folder / "image.png")).points.astype(np.float64)
        except FaceStageError as error:
            failures.append({"view": index, **scene.extra, "error": str(error)})
            log.warning("view %d (%s): %s", index, scene.extra, error)
            continue
        posed = pose_view(scene, model)
        tri, bary, ok, _ = backproject(scene, posed, faces, points)
        views.append((scene, posed, tri, bary, ok))
        log.info("view %d (%s): %d/478 landmarks on the skin", index, scene.extra, int(ok.sum()))
    if len(views) < 5:
        raise SystemExit(f"only {len(views)} views had a detectable face; cannot embed")

    n = N_LANDMARKS
    ok_all = np.stack([ok for *_, ok in views])  # (views, 478)
    hits_all = np.stack([(mean[faces[tri]] * bary[..., None]).sum(1) for _, _, tri, bary, _ in views])  # mean shape
    frontal = np.array([s.extra["yaw"] == 0.0 and s.extra["pitch"] == 0.0 for s, *_ in views])
    contour = np.isin(np.arange(n), CONTOUR)

    def aggregate(use: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Robust point per landmark over the views in use (views, 478) → (triangle, bary, spread mm)."""
        use = use | (use.sum(0) == 0)[None]
        points = np.stack([robust_point(hits_all[use[:, lm], lm]) for lm in range(n)])
        surface, tri, bary = closest_on_mesh(points, mean[faces])
        spread = np.array([1000 * np.median(np.linalg.norm(hits_all[use[:, lm], lm] - surface[lm], axis=1))
                           for lm in range(n)])
        return tri, bary, spread

    # Jaw-line landmarks slide at fit time; their fixed fallback comes from the frontal views only.
    use = ok_all & np.where(contour[None], frontal[:, None], True)
    use[:, contour & (use.sum(0) == 0)] = ok_all[:, contour & (use.sum(0) == 0)]
    tri, bary, _ = aggregate(use)
    # Second pass: a view that cannot see a landmark's point (the far side of a turned head) does not vote.
    seen = np.stack([visible(posed, faces, tri, bary) for _, posed, *_ in views])
    keep = use & np.where(contour[None], True, seen)
    enough = keep.sum(0) >= 3
    use = np.where(enough[None], keep, use)
    out_tri, out_bary, spread = aggregate(use)
    used = use.sum(0)
    weights = np.clip(1.0 / (1.0 + (spread / SPREAD_SCALE_MM) ** 2), 0.05, 1.0)
    weights[contour] = 1.0
    identities = sorted({tuple(s.identity) for s, *_ in views}, key=lambda t: np.abs(t).sum())
    near = contour_band(model, [np.array(i) for i in identities[:3]])
    group = groups()
    arrays = {"faces": out_tri.astype(np.int32), "bary": out_bary.astype(np.float32), "weights": weights.astype(np.float32),
              "spread_mm": spread.astype(np.float32), "group": group.astype(np.int8),
              "contour": np.array(CONTOUR, np.int32), "band_vertices": np.nonzero(near)[0].astype(np.int32),
              "vertex_count": np.array(len(mean), np.int32)}
    fixed = np.isin(np.arange(n), CONTOUR, invert=True) & (group != GROUP_NAMES.index("iris"))
    report = {
        "model": model_digest(),
        "views": [{k: float(v) for k, v in s.extra.items()} for s, *_ in views],
        "failed_views": failures,
        "settings": {"size": SIZE, "focal_mm": FOCAL_MM, "yaws": YAWS, "extra_pitches": EXTRA_PITCHES,
                     "identities": 1 + N_RANDOM_IDENTITIES, "identity_seed": IDENTITY_SEED, "samples": samples,
                     "spread_scale_mm": SPREAD_SCALE_MM},
        "summary": {
            "fixed_landmarks": int(fixed.sum()),
            "spread_mm_median": round(float(np.median(spread[fixed])), 3),
            "spread_mm_p90": round(float(np.percentile(spread[fixed], 90)), 3),
            "spread_mm_max": round(float(spread[fixed].max()), 3),
            "worst": [int(i) for i in np.argsort(-np.where(fixed, spread, -1))[:10]],
            "by_group": {name: {"count": int((group == g).sum()),
                                "spread_mm_median": round(float(np.median(spread[group == g])), 3) if (group == g).any() else None,
                                "spread_mm_max": round(float(spread[group == g].max()), 3) if (group == g).any() else None}
                         for g, name in enumerate(GROUP_NAMES)},
            "band_vertices": int(near.sum()),
        },
        "spread_mm": [round(float(s), 3) for s in spread],
        "views_used": [int(u) for u in used],
    }
    return arrays, report


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez without timestamps in the zip entries, so re-running gives the same bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views-dir", type=Path, default=None, help="keep the renders here (default: a temp dir)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT_NPZ)
    parser.add_argument("--report", type=Path, default=OUT_REPORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from facestage.core.model.head import load_head_model

    model = load_head_model()
    with tempfile.TemporaryDirectory(prefix="facestage-embed-") as tmp:
        views_dir = args.views_dir or Path(tmp)
        arrays, report = embed(model, views_dir, args.samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(args.out, arrays)
    args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
