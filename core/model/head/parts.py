"""The eyes and the mouth of the head model: gaze, their materials, default textures, and following the face.

The head mesh has holes where the eyes and the mouth open; what shows through
them are separate meshes of the same model (HeadModel.eye_* and mouth_*). This
module holds what every user of those meshes must agree on — the fit that
recovers them (fit/eyes.py, fit/mouth.py), the re-render (apps/parts.py) and
the Blender scene (scene/eyes.py, scene/mouth.py):

* gaze: each eyeball turns about its centre by yaw (about +Z, positive towards
  the subject's left, +X) then pitch (positive up): R = Rz(yaw)·Rx(−pitch), which
  is Blender's XYZ Euler (−pitch, 0, yaw) of the eye object;
* the eye texture (eyes.png) is a frontal picture of each eyeball in its own
  disc (the left eye's on the right, as when facing the subject): a point at
  angle θ from the gaze axis and azimuth φ (from +X towards +Z) has UV
  centre + ρ(θ)·(cos φ, sin φ), ρ = EYE_UV_FRONT·θ/90° in front (the back half
  is a thin rim); iris and pupil are concentric discs there;
* materials: Principled parameters of the eyes (a glossy coat for the cornea),
  the teeth and the mouth interior, shared by the core renderer and Blender;
* when the face mesh was edited after the fit (caricature), the parts follow
  it: each eye and the mouth take the similarity transform that best maps their
  anchor vertices of the unedited face onto the edited one, and the mouth's
  rim, shared with the lips, takes the lips' exact positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..uvmaps import dilate_into_gutter, rasterize_uv
from .model import HeadModel

EYE_UV_CENTRES = ((0.75, 0.5), (0.25, 0.5))  # [left (+X) eye, right eye] (tools/build_head_model.py)
EYE_UV_FRONT = 0.23  # UV radius at 90° from the gaze axis
IRIS_RADIUS_M = 0.0059  # human iris, 11.8 mm across: the default when the photo does not say
PUPIL_FRACTION = 0.4  # pupil radius / iris radius, ordinary indoor light
EYE_ANCHOR_M = 0.022  # face vertices this close to an eye centre carry that eye when the face is edited
MOUTH_ANCHOR_M = 0.012  # face vertices this close to the mouth rim carry the mouth


@dataclass(frozen=True)
class PartMaterial:
    """Principled BSDF values of a part (the base colour comes from its texture)."""

    specular: float  # Specular IOR Level
    roughness: float
    coat: float = 0.0  # Coat Weight
    coat_roughness: float = 0.15  # the core samples lights only: keep ≥ 0.1 (core/render/renderer.py)
    coat_ior: float = 1.5


# Sclera and iris under a wet cornea: a diffuse base with a sharp coat (the catch-light in relit shots). The tear
# film and the cornea are the eye's only mirror (IOR 1.376, F0 0.025): the iris sits behind index-matched aqueous
# humour and the sclera under the film, so the base has no specular of its own. A base specular of 0.5 on top of
# a 1.5 coat reflected 3x too much of the world and the de-lit eyes came out black under a grey-blue sheen.
EYE_MATERIAL = PartMaterial(specular=0.0, roughness=0.5, coat=1.0, coat_roughness=0.15, coat_ior=1.376)
TEETH_MATERIAL = PartMaterial(specular=0.6, roughness=0.35)  # enamel: F0 ≈ 0.05, slightly glossy
MOUTH_MATERIAL = PartMaterial(specular=0.5, roughness=0.45)  # wet mucosa of the cavity and the tongue
SCLERA_ALBEDO = (0.62, 0.58, 0.55)
IRIS_ALBEDO = (0.10, 0.06, 0.035)  # brown, the commonest iris
PUPIL_ALBEDO = (0.012, 0.012, 0.012)
TEETH_ALBEDO = (0.66, 0.62, 0.53)
CAVITY_ALBEDO = (0.11, 0.03, 0.028)
TONGUE_ALBEDO = (0.30, 0.09, 0.08)
TEETH_PARTS = ("upper_teeth", "lower_teeth")  # mouth parts drawn with TEETH_MATERIAL; the others with MOUTH_MATERIAL


def gaze_rotation(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) eyeball rotation Rz(yaw)·Rx(−pitch) in the head frame; differentiable."""
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rz = torch.stack([torch.stack([cy, -sy, zero], -1), torch.stack([sy, cy, zero], -1),
                      torch.stack([zero, zero, one], -1)], -2)
    rx = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cp, sp], -1),
                      torch.stack([zero, -sp, cp], -1)], -2)
    return rz @ rx


def gaze_direction(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit gaze in the head frame: (cos p sin y, −cos p cos y, sin p)."""
    return torch.stack([torch.cos(pitch) * torch.sin(yaw), -torch.cos(pitch) * torch.cos(yaw), torch.sin(pitch)], -1)


def eye_radius(model: HeadModel, eye_vertices: torch.Tensor) -> torch.Tensor:
    """(..., 2) eyeball radii [left, right] of evaluated eyes (half the pole-to-pole distance)."""
    half = eye_vertices.shape[-2] // 2
    return torch.stack([0.5 * (eye_vertices[..., 0, :] - eye_vertices[..., 1, :]).norm(dim=-1),
                        0.5 * (eye_vertices[..., half, :] - eye_vertices[..., half + 1, :]).norm(dim=-1)], -1)


def turned_eyes(model: HeadModel, eye_vertices: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """Eyeball vertices (E, 3) turned about their centres by gaze (2, 2) [left, right] × (yaw, pitch) radians."""
    half = eye_vertices.shape[-2] // 2
    centres = model.eye_centres_of(eye_vertices)
    rotation = gaze_rotation(gaze[:, 0], gaze[:, 1])  # (2, 3, 3)
    out = []
    for eye, (first, last) in enumerate(((0, half), (half, eye_vertices.shape[-2]))):
        local = eye_vertices[first:last] - centres[eye]
        out.append(local @ rotation[eye].T + centres[eye])
    return torch.cat(out)


def eye_texture_angles(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per texel of an eye texture (size²): eye (0 left, 1 right), angle from the gaze axis (degrees; > 90 is the
    back), azimuth (radians, from +X towards +Z)."""
    centre = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(centre, 1.0 - centre)
    eye = (u < 0.5).astype(np.int64)
    cu = np.where(eye == 0, EYE_UV_CENTRES[0][0], EYE_UV_CENTRES[1][0])
    du, dv = u - cu, v - 0.5
    angle = np.hypot(du, dv) / EYE_UV_FRONT * 90.0
    return eye, angle, np.arctan2(dv, du)


def iris_angle_deg(iris_radius_m: float, eyeball_radius_m: float) -> float:
    """Angle from the gaze axis (degrees) of the iris rim on an eyeball of that radius."""
    return math.degrees(math.asin(min(iris_radius_m / max(eyeball_radius_m, 1e-6), 0.95)))


def default_eye_texture(size: int, iris_deg: float, iris: tuple[float, float, float] = IRIS_ALBEDO,
                        sclera: tuple[float, float, float] = SCLERA_ALBEDO) -> np.ndarray:
    """(size, size, 3) linear albedo of both eyes: sclera, an iris disc with a darker limbal ring, a pupil."""
    _, angle, _ = eye_texture_angles(size)
    r = angle / iris_deg  # 1 at the iris rim
    iris_colour = np.asarray(iris) * (1.0 - 0.45 * np.clip((r - 0.8) / 0.2, 0, 1))[..., None]  # limbal ring
    out = np.where((r < 1.0)[..., None], iris_colour, np.asarray(sclera))
    out = np.where((r < PUPIL_FRACTION)[..., None], np.asarray(PUPIL_ALBEDO), out)
    return out.astype(np.float32)


@lru_cache(maxsize=4)
def mouth_vertex_parts(model: HeadModel) -> np.ndarray:
    """(M,) part index of each mouth vertex (parts share no vertex); cached, do not modify."""
    out = np.full(int(model.mouth_vertices.shape[0]), -1, np.int64)
    faces, part = model.mouth_faces.cpu().numpy(), model.mouth_face_part.cpu().numpy()
    for k in range(len(model.mouth_part_names)):
        out[np.unique(faces[part == k])] = k
    return out


@lru_cache(maxsize=4)
def teeth_faces(model: HeadModel) -> np.ndarray:
    """(Fm,) bool: the mouth faces that are teeth (TEETH_PARTS: drawn with TEETH_MATERIAL); cached, do not modify."""
    teeth = [k for k, name in enumerate(model.mouth_part_names) if name in TEETH_PARTS]
    return np.isin(model.mouth_face_part.cpu().numpy(), teeth)


def shift_teeth(model: HeadModel, mouth: torch.Tensor, shift: np.ndarray | None) -> torch.Tensor:
    """Mouth vertices (M, 3, model space) with the upper and lower teeth moved up by shift = (upper, lower[, widen])
    metres along the head's +Z: how far this person's teeth show below (or above) the model's; and both rows'
    sides moved out by `widen`, each vertex in proportion to its distance from the midline: a wide smile shows
    teeth out to the corners of the mouth, where the model's narrower arch left the cavity (fit/mouth.py)."""
    if shift is None or not np.any(shift):
        return mouth
    part = torch.as_tensor(mouth_vertex_parts(model), device=mouth.device)
    names = list(model.mouth_part_names)
    upper, lower, widen = (list(np.asarray(shift, np.float64)) + [0.0])[:3]
    dz = torch.zeros(mouth.shape[0], dtype=mouth.dtype, device=mouth.device)
    for name, value in zip(TEETH_PARTS, (upper, lower)):
        dz = torch.where(part == names.index(name), torch.as_tensor(float(value), dtype=mouth.dtype), dz)
    teeth = (part == names.index(TEETH_PARTS[0])) | (part == names.index(TEETH_PARTS[1]))
    side = widen * mouth[:, 0] / mouth[teeth, 0].abs().max().clamp(min=1e-9) * teeth.to(mouth.dtype)
    return mouth + torch.stack([side, torch.zeros_like(dz), dz], -1)


def shift_tongue(model: HeadModel, mouth: torch.Tensor, shift: np.ndarray | None) -> torch.Tensor:
    """Mouth vertices (M, 3, model space) with the tongue moved by shift = (forward, up[, raise[, widen]]) metres:
    forward along the head's −Y (out of the face), up along +Z, its top raised by `raise` over its lowest point, each
    vertex in proportion to its height above it, the base held, and its sides moved out by `widen`, each vertex in
    proportion to its distance from the midline: where this person's tongue shows in an open mouth (fit/mouth.py).
    The model's tongue lies flat on the floor of the mouth; a laughing mouth shows one that fills it up to the upper
    teeth, and moving the flat one up only uncovered the floor behind it. It is also 44 mm wide, where a wide smile
    opens 55-60 mm: the cavity showed black in the corners beside it (open_smile_man)."""
    if shift is None or not np.any(shift):
        return mouth
    part = torch.as_tensor(mouth_vertex_parts(model), device=mouth.device)
    on_tongue = part == list(model.mouth_part_names).index("tongue")
    forward, up, raised, widen = (list(np.asarray(shift, np.float64)) + [0.0, 0.0])[:4]
    height = mouth[on_tongue, 2]
    base, top = height.min(), height.max()
    lift = raised * ((mouth[:, 2] - base) / (top - base).clamp(min=1e-9)).clamp(0.0, 1.0)
    side = widen * mouth[:, 0] / mouth[on_tongue, 0].abs().max().clamp(min=1e-9)
    move = torch.stack([side, torch.full_like(lift, -forward), up + lift], -1)
    return mouth + on_tongue.to(mouth.dtype)[:, None] * move


@lru_cache(maxsize=4)
def mouth_texel_parts(model: HeadModel, size: int) -> np.ndarray:
    """(size, size) part index of each texel of the mouth atlas (−1 between islands); cached, do not modify."""
    raster = rasterize_uv(model.mouth_uvs.cpu().numpy(), model.mouth_face_uvs.cpu().numpy(), size)
    part = model.mouth_face_part.cpu().numpy()[np.maximum(raster.face, 0)]
    return np.where(raster.inside, part, -1)


def default_mouth_texture(model: HeadModel, size: int, teeth: tuple[float, float, float] = TEETH_ALBEDO) -> np.ndarray:
    """(size, size, 3) linear albedo of the mouth atlas: teeth, a dark cavity, the tongue; gutters take the nearest."""
    part = mouth_texel_parts(model, size)
    colours = {"cavity": CAVITY_ALBEDO, "upper_teeth": teeth, "lower_teeth": teeth, "tongue": TONGUE_ALBEDO}
    out = np.zeros((size, size, 3), np.float32)
    for k, name in enumerate(model.mouth_part_names):
        out[part == k] = colours[name]
    return dilate_into_gutter(out, part >= 0)


@lru_cache(maxsize=4)
def mouth_rim(model: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """(mouth ids, face ids): the mouth vertices that are also face vertices (the rim sealed to the lips), and
    which face vertex each one is; cached, do not modify."""
    position = {int(s): i for i, s in enumerate(model.source_vertex_ids.cpu().numpy())}
    mouth_ids = model.mouth_source_vertex_ids.cpu().numpy()
    rim_mouth = np.array([i for i, s in enumerate(mouth_ids) if int(s) in position], np.int64)
    return rim_mouth, np.array([position[int(mouth_ids[i])] for i in rim_mouth], np.int64)


@lru_cache(maxsize=4)
def _anchors(model: HeadModel) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Face vertices that carry each eye and the mouth, and the mouth rim: (mouth ids, face ids) pairs."""
    face = model.vertices.cpu().numpy()
    centres = model.eye_centres.cpu().numpy()
    eyes = [np.nonzero(np.linalg.norm(face - c, axis=1) < EYE_ANCHOR_M)[0] for c in centres]
    rim_mouth, rim_face = mouth_rim(model)
    near = np.linalg.norm(face[:, None] - face[rim_face][None], axis=2).min(1) < MOUTH_ANCHOR_M
    return eyes, np.nonzero(near)[0], rim_mouth, rim_face


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising Σ|s R source + t − target|² (Umeyama 1991)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    u, d, vt = np.linalg.svd(xt.T @ xs / len(source))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / xs.var(0).sum())
    return scale, rotation, mu_t - scale * rotation @ mu_s


def follow_face(model: HeadModel, fitted_face: np.ndarray, face: np.ndarray, eyes: np.ndarray,
                mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye and mouth vertices (model space) moved with an edited face.

    `fitted_face` is the face the parts were evaluated with, `face` the edited one (both (V, 3), model space).
    Each eye takes the similarity that maps its anchors of fitted_face onto face; so does the mouth, whose
    rim then takes the lips' exact positions. Unedited faces return the parts unchanged.
    """
    if np.abs(face - fitted_face).max() < 1e-5:  # face.obj keeps 1e-6 m: a saved, unedited face is unedited
        return eyes, mouth
    eye_anchors, mouth_anchors, rim_mouth, rim_face = _anchors(model)
    half = len(eyes) // 2
    moved = []
    for k, ids in enumerate(eye_anchors):
        s, rotation, t = _similarity(fitted_face[ids], face[ids])
        moved.append(s * eyes[k * half:(k + 1) * half] @ rotation.T + t)
    s, rotation, t = _similarity(fitted_face[mouth_anchors], face[mouth_anchors])
    mouth = s * mouth @ rotation.T + t
    mouth[rim_mouth] = face[rim_face]
    return np.concatenate(moved), mouth
