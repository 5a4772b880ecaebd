"""Stage 0: head pose, focal length, identity and expression from the 478 MediaPipe landmarks.

Everything later (the photometric stages, the Blender camera) starts from this
fit, so it has to be right without a renderer, fast, and deterministic. Fitting
landmarks is a small robust least-squares problem (~100 unknowns, ~1000
residuals), so it is solved with Levenberg–Marquardt on a hand-written
analytic Jacobian (`_pixels_and_jacobian`; torch is used as an array library,
not for autodiff) and iteratively reweighted Geman–McClure residuals: a few dozen
steps, no learning rate, no randomness, and the ill-conditioned
focal/distance/identity valley that first-order optimisers crawl along is
handled by the Gauss–Newton model.

Landmarks are tied to the head surface by the embedding (fit/embedding.py:
triangle + barycentrics, built by `tools/embed_landmarks.py`) plus, by default,
the learned correction of `LandmarkModel` (tools/learn_landmarks.py): where
MediaPipe really puts each point on a head of this shape, expression and pose,
and how noisy it is there. The learned offset is linear in identity and
expression, so it simply adds to the model's basis at the landmark; its view
term is re-evaluated at every iteration from the current pose. The jaw-line
landmarks are not fixed surface points: the jaw outline in a photo is an
occluding contour that moves over the skin as the head turns, so each of them
slides, at every step, to the nearest point of the posed mesh's contour
generator (n · view = 0) inside a band of jaw/cheek vertices, and only its
distance across the detected outline counts.

World frame (what `FitResult` reports; model/camera.py): the head model's
origin is the world origin and the camera keeps the canonical frontal
orientation (Blender camera rotation (90°, 0, 0): looking along +Y, Z up) and
sits wherever the photo puts it. So ``rotation`` is the head's pose relative to a frontal camera
(world = R · model + t, with t = 0), and ``world_from_camera`` carries the
camera's position.

Focal lengths in millimetres are 35 mm-equivalent: a 36 mm sensor across the
longer image side. When the photo says its focal length (EXIF, `focal_known`),
it becomes a strong prior; otherwise the landmarks estimate it under a weak
prior, and the result carries an uncertainty (`focal_log_std`): the Laplace
(Gauss–Newton) standard deviation of log f, scaled by the factor that made it
cover the true focal length on validation heads (`LandmarkModel.focal_std_scale`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..common.config import ReconstructConfig
from ..common.errors import FaceStageError
from ..common.progress import Progress, ProgressCallback, check_cancel
from ..model import camera
from ..model.head import HeadModel, vertex_normals
from .embedding import (GROUP_NAMES, GROUP_WEIGHTS, LandmarkEmbedding, LandmarkModel, load_embedding,
                        load_landmark_model)
from .landmarks import FACE_OVAL, N_LANDMARKS, interocular_px

log = logging.getLogger(__name__)

SENSOR_MM = camera.SENSOR_WIDTH_MM
DEFAULT_FOCAL_MM = 50.0
FOCAL_RANGE_MM = (12.0, 400.0)
W_IDENTITY_FIXED_POINTS = 0.1  # identity prior without a learned landmark model (fixed embedded points)
W_EXPRESSION_FIXED_POINTS = 0.01  # expression prior (L1 and L2 parts) without one
W_FOCAL_FIXED_POINTS = 1.0  # focal prior (1/σ² of log f) without one
ROBUST_SIGMAS = 2.0  # with a learned model, the Geman–McClure scale is this many times its median landmark noise


@dataclass(frozen=True)
class FitOptions:
    """Numbers of the stage-0 solver; `from_config` maps the user-facing config onto them.

    Cost = mean over landmarks of weight × robust(residual / 1 % of the inter-ocular distance)²
         + w_identity Σ identity² + w_expression Σ (expression + expression²) + w_focal (log f − log f_guess)².
    Landmarks cannot tell focal length from face depth (an identity with a deeper face at a longer distance
    projects almost identically), so the focal prior is what keeps f plausible; the data move it only
    when the perspective cue is strong. When the photo's EXIF records the focal length (core/io/exif.py),
    `with_known_focal` centres the prior there and weights it by w_focal_known (focal_known) instead of w_focal.
    """

    max_iterations: int = 60  # LM iterations of the full stage (the pose-only warm-up adds `rigid_iterations`)
    rigid_iterations: int = 12
    w_identity: float | None = None  # None: the learned model's calibrated value (W_IDENTITY_FIXED_POINTS without one)
    w_expression: float | None = None  # L1 part (weights are ≥ 0) ... (None: calibrated, else W_EXPRESSION_FIXED_POINTS)
    w_expression_l2: float | None = None  # ... and L2 part (None: the same as the L1 part)
    w_focal: float | None = None  # None: the learned model's calibrated value (W_FOCAL_FIXED_POINTS without one)
    robust_scale: float | None = None  # Geman–McClure scale, % IOD (None: ROBUST_SIGMAS × learned noise, else 4)
    robust_scale_start: float = 3.0  # graduated non-convexity: from this many times robust_scale down to it
    focal_mm: float = DEFAULT_FOCAL_MM  # guess and prior centre (35 mm equivalent)
    focal_known: bool = False  # focal_mm comes from the photo (EXIF): the prior becomes w_focal_known
    w_focal_known: float = 400.0  # 1/σ² of log f: EXIF 35 mm-equivalent values are good to about 5 %
    fit_focal: bool = True
    identity_bound: float = 3.0  # |coefficient| in standard deviations
    identity_components: int | None = None  # fit only the leading components (None: all)
    slide_contour: bool = True  # jaw-line landmarks slide on the occluding contour (else: fixed surface points)
    group_weights: tuple[tuple[str, float], ...] = tuple(GROUP_WEIGHTS.items())
    spread_scale_mm: float | None = None  # re-derive landmark weights 1 / (1 + (spread / s)²) (None: the file's)
    correspondence: str = "learned"  # "learned": LandmarkModel offsets and noise (if its file exists); "embedded": fixed points
    landmark_model: str | None = None  # path of the learned model (None: the committed one)
    tolerance: float = 1e-7  # stop when the relative cost decrease of an accepted step is below this

    def with_known_focal(self, focal_mm: float) -> FitOptions:
        """These options with the focal prior centred on a recorded 35 mm-equivalent focal length, at w_focal_known."""
        return replace(self, focal_mm=float(focal_mm), focal_known=True)

    @classmethod
    def from_config(cls, config: ReconstructConfig | None) -> FitOptions:
        """Config prior weights act as multipliers relative to the config defaults; steps cap the iterations."""
        if config is None:
            return cls()
        base, defaults = cls(), ReconstructConfig()
        data = config.w_landmarks if config.w_landmarks > 0 else 1.0
        id_scale = config.w_identity / defaults.w_identity / data
        ex_scale = config.w_expression / defaults.w_expression / data
        l1, l2 = expression_weights(base)
        return cls(max_iterations=max(10, min(config.steps.landmarks // 5, 100)),
                   w_identity=None if id_scale == 1.0 else identity_weight(base) * id_scale,
                   w_expression=None if ex_scale == 1.0 else l1 * ex_scale,
                   w_expression_l2=None if ex_scale == 1.0 else l2 * ex_scale)


def learned_model(options: FitOptions) -> LandmarkModel | None:
    """The learned landmark model these options use, or None (fixed embedded points)."""
    return load_landmark_model(options.landmark_model) if options.correspondence == "learned" else None


def robust_scale(options: FitOptions) -> float:
    """The Geman–McClure scale in force (% of the inter-ocular distance)."""
    if options.robust_scale is not None:
        return options.robust_scale
    learned = learned_model(options)
    if learned is None:
        return 4.0
    return ROBUST_SIGMAS * float(np.median(learned.sigma_pct_iod[learned.corrected]))


def _prior_weight(options: FitOptions, explicit: float | None, name: str, fallback: float) -> float:
    """A prior weight in force: the explicit one, else the learned model's calibrated `name`, else `fallback`."""
    if explicit is not None:
        return explicit
    learned = learned_model(options)
    calibrated = float(getattr(learned, name)) if learned is not None else math.nan
    return calibrated if math.isfinite(calibrated) else fallback


def expression_weights(options: FitOptions) -> tuple[float, float]:
    """(L1, L2) expression-prior weights in force: explicit, else the learned model's calibrated one, else defaults."""
    l1 = _prior_weight(options, options.w_expression, "w_expression", W_EXPRESSION_FIXED_POINTS)
    return l1, l1 if options.w_expression_l2 is None else options.w_expression_l2


def identity_weight(options: FitOptions) -> float:
    """The identity-prior weight in force: the explicit one, else the learned model's calibrated one."""
    return _prior_weight(options, options.w_identity, "w_identity", W_IDENTITY_FIXED_POINTS)


def focal_weight(options: FitOptions) -> float:
    """The focal-prior weight in force: EXIF's when the photo states its focal length, else the explicit one, else
    the learned model's calibrated one. On the validation heads the landmarks barely tell focal length from depth:
    at the old weight 1 (σ = 1 in log f) the estimate was off by 0.61 in log f (rms), further than the prior's own
    centre (0.55), and 60–135 mm lenses came out at about half their focal length. A wrong focal length puts the
    head at the wrong distance, so lights placed in the camera frame (relighting, `--rig`) meet it at wrong angles."""
    if options.focal_known:
        return options.w_focal_known
    return _prior_weight(options, options.w_focal, "w_focal", W_FOCAL_FIXED_POINTS)


@dataclass
class FitResult:
    """The stage-0 answer in the world frame described in the module docstring."""

    identity: np.ndarray  # (K,) standard deviations
    expression: np.ndarray  # (52,) in [0, 1]
    rotation: np.ndarray  # (3, 3) head pose, world = R @ model + t
    translation: np.ndarray  # (3,) always 0: the head sits at the world origin
    focal_px: float
    K: np.ndarray  # (3, 3)
    world_from_camera: np.ndarray  # (4, 4) Blender camera convention
    camera_from_model: np.ndarray  # (4, 4) OpenCV camera (x right, y down, z forward)
    vertices: np.ndarray  # (V, 3) posed head mesh, world, metres
    landmarks_px: np.ndarray  # (478, 2) fitted landmarks (contour ones at their slid positions)
    detected_px: np.ndarray  # (478, 2) the input
    errors_px: np.ndarray  # (478,) |fitted − detected| (contour: distance across the outline)
    reprojection_error_px: float  # median of errors_px over the weighted landmarks
    interocular_px: float
    width: int
    height: int
    iterations: int = 0
    cost: float = float("nan")
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    focal_source: str = "estimated"  # "exif" (the photo's own focal length, as a strong prior) or "estimated"
    focal_log_std: float = float("nan")  # 1-σ uncertainty of log(focal) ≈ relative uncertainty of the focal length

    @property
    def focal_mm(self) -> float:
        """35 mm-equivalent focal length."""
        return self.focal_px * SENSOR_MM / max(self.width, self.height)

    @property
    def yaw_pitch_roll_deg(self) -> tuple[float, float, float]:
        return camera.yaw_pitch_roll(self.rotation)


# --------------------------------------------------------------------------- model tensors


@dataclass(frozen=True)
class _Tensors:
    """The head model reduced to what stage 0 touches: landmark points and the contour band, in float64."""

    mean: torch.Tensor  # (N, 3) landmark points of the mean shape
    basis: torch.Tensor  # (K + E, N, 3) identity then expression displacements at the landmarks
    n_identity: int
    band_mean: torch.Tensor  # (B, 3) band-mesh vertices (band + their face neighbours)
    band_basis: torch.Tensor  # (K + E, B, 3)
    band_faces: torch.Tensor  # (Fb, 3) local indices
    band_edges: torch.Tensor  # (Eb, 2) local indices, both ends in the band proper
    band_side: torch.Tensor  # (B,) sign of the mean shape's x (−1, 0, +1)
    contour: torch.Tensor  # (C,) landmark ids
    contour_side: torch.Tensor  # (C,)
    contour_prev: torch.Tensor  # (C,) neighbours along the face oval, for the outline normal
    contour_next: torch.Tensor
    weights: torch.Tensor  # (N,) embedding weight × group weight (or learned noise weight)
    rigid: torch.Tensor  # (N,) bool: used by the pose-only warm-up
    view_offset: torch.Tensor | None  # (3, N, 3) learned offsets per view feature (None: fixed points)


def _model_arrays(model: HeadModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean vertices, faces, identity basis, expression basis) of the head model as float64/int64 numpy."""
    def to_np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    return (to_np(model.vertices).astype(np.float64), to_np(model.faces).astype(np.int64),
            to_np(model.identity_basis).astype(np.float64), to_np(model.expression_basis).astype(np.float64))


def _interpolate(values: np.ndarray, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex values (..., V, 3) at (tri, bary)."""
    corners = values[..., faces[tri], :]  # (..., N, 3, 3)
    return np.einsum("...nkc,nk->...nc", corners, bary)


_TENSOR_CACHE: dict[tuple[int, int], _Tensors] = {}


def _tensors(model: HeadModel, embedding: LandmarkEmbedding, options: FitOptions | None = None) -> _Tensors:
    options = options or FitOptions()
    learned = learned_model(options)
    key = (id(model), id(embedding), options.group_weights, options.spread_scale_mm, id(learned))
    if key not in _TENSOR_CACHE:
        _TENSOR_CACHE.clear()
        _TENSOR_CACHE[key] = _build_tensors(model, embedding, options, learned)
    return _TENSOR_CACHE[key]


def _build_tensors(model: HeadModel, embedding: LandmarkEmbedding, options: FitOptions,
                   learned: LandmarkModel | None) -> _Tensors:
    mean, faces, id_basis, ex_basis = _model_arrays(model)
    if mean.shape[0] != embedding.vertex_count:
        raise FaceStageError(f"The landmark embedding was built for a {embedding.vertex_count}-vertex head, "
                             f"this head model has {mean.shape[0]}; rebuild it with tools/embed_landmarks.py.")
    tri, bary = embedding.faces, embedding.bary
    band = np.unique(embedding.band_vertices)
    in_band = np.zeros(mean.shape[0], bool)
    in_band[band] = True
    band_faces_global = faces[in_band[faces].any(1)]
    local_ids = np.unique(band_faces_global)
    local = -np.ones(mean.shape[0], np.int64)
    local[local_ids] = np.arange(len(local_ids))
    band_faces = local[band_faces_global]
    edges = np.concatenate([band_faces_global[:, [0, 1]], band_faces_global[:, [1, 2]], band_faces_global[:, [2, 0]]])
    edges = np.unique(np.sort(edges, 1), axis=0)
    edges = edges[in_band[edges].all(1)]
    side_of = (lambda x: np.where(np.abs(x) < 0.005, 0, np.sign(x)))
    contour_points = _interpolate(mean, faces, tri[embedding.contour], bary[embedding.contour])
    oval = list(FACE_OVAL)
    prev = [oval[(oval.index(int(c)) - 1) % len(oval)] for c in embedding.contour]
    nxt = [oval[(oval.index(int(c)) + 1) % len(oval)] for c in embedding.contour]
    table = dict(options.group_weights)
    group_weight = embedding.group_weights(table)
    weights = embedding.weights
    if options.spread_scale_mm is not None:
        weights = np.clip(1.0 / (1.0 + (embedding.spread_mm / options.spread_scale_mm) ** 2), 0.02, 1.0)
        weights[embedding.contour] = 1.0
    weights = weights * group_weight
    landmark_mean = _interpolate(mean, faces, tri, bary)
    landmark_basis = np.concatenate([_interpolate(id_basis, faces, tri, bary), _interpolate(ex_basis, faces, tri, bary)])
    view_offset = None
    if learned is not None:
        landmark_mean = landmark_mean + learned.offset
        landmark_basis = landmark_basis + np.concatenate([learned.identity_basis(id_basis.shape[0]),
                                                          learned.expression_basis(ex_basis.shape[0])])
        view_offset = learned.view_offset
        weights = _learned_weights(learned, embedding, weights)
    rigid = np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True) & (
        np.isin(embedding.group, [GROUP_NAMES.index(g) for g in ("eye", "nose", "brow", "other")]))
    t = (lambda a: torch.as_tensor(np.ascontiguousarray(a)))
    return _Tensors(
        mean=t(landmark_mean), basis=t(landmark_basis),
        n_identity=int(id_basis.shape[0]),
        band_mean=t(mean[local_ids]), band_basis=t(np.concatenate([id_basis[:, local_ids], ex_basis[:, local_ids]])),
        band_faces=t(band_faces), band_edges=t(local[edges]), band_side=t(side_of(mean[local_ids, 0])),
        contour=t(embedding.contour), contour_side=t(side_of(contour_points[:, 0])),
        contour_prev=t(np.array(prev, np.int64)), contour_next=t(np.array(nxt, np.int64)),
        weights=t(weights), rigid=t(rigid), view_offset=None if view_offset is None else t(view_offset))


def _learned_weights(learned: LandmarkModel, embedding: LandmarkEmbedding, weights: np.ndarray) -> np.ndarray:
    """Weights of a learned model: (median noise / landmark noise)² for corrected landmarks, the old ones elsewhere."""
    sigma = learned.sigma_pct_iod
    reference = float(np.median(sigma[learned.corrected]))
    out = weights.copy()
    out[learned.corrected] = np.clip((reference / np.maximum(sigma[learned.corrected], 1e-6)) ** 2, 0.02, 4.0)
    return out


def _view_offsets(tensors: _Tensors, state: _State) -> torch.Tensor | float:
    """(N, 3) learned offsets for the current pose (the head-to-camera direction in the model frame), or 0."""
    if tensors.view_offset is None:
        return 0.0
    with torch.no_grad():
        view = -state.rotation().T @ state.translation()
        view = view / view.norm()
        features = torch.stack([view[0], view[2], view[0] ** 2])
        return torch.einsum("j,jnc->nc", features, tensors.view_offset)


# --------------------------------------------------------------------------- geometry


@dataclass
class _State:
    """The unknowns: rotation = exp(omega) · base; translation = depth · (u, v, 1)."""

    base: torch.Tensor  # (3, 3) camera_from_model rotation the increments are applied to
    omega: torch.Tensor  # (3,)
    uv: torch.Tensor  # (2,)
    log_depth: torch.Tensor  # ()
    log_focal: torch.Tensor  # ()
    identity: torch.Tensor  # (K,)
    expression: torch.Tensor  # (E,)

    def vector(self) -> torch.Tensor:
        return torch.cat([self.omega, self.uv, self.log_depth[None], self.log_focal[None], self.identity, self.expression])

    def with_vector(self, x: torch.Tensor) -> _State:
        k = self.identity.shape[0]
        return _State(self.base, x[0:3], x[3:5], x[5], x[6], x[7:7 + k], x[7 + k:])

    def rotation(self) -> torch.Tensor:
        return camera.rotation_from_axis_angle(self.omega) @ self.base

    def translation(self) -> torch.Tensor:
        depth = torch.exp(self.log_depth)
        return torch.stack([self.uv[0] * depth, self.uv[1] * depth, depth])

    def normalised(self) -> _State:
        """Fold the rotation increment into the base so omega stays near zero."""
        return _State(self.rotation().detach(), torch.zeros(3, dtype=self.omega.dtype), self.uv, self.log_depth,
                      self.log_focal, self.identity, self.expression)


def _shape(mean: torch.Tensor, basis: torch.Tensor, state: _State) -> torch.Tensor:
    return mean + torch.einsum("m,mnc->nc", torch.cat([state.identity, state.expression]), basis)


def _landmark_points(tensors: _Tensors, state: _State) -> torch.Tensor:
    """(N, 3) model-space landmark points of the state: the (learned) landmark model at its shape and pose."""
    return _shape(tensors.mean, tensors.basis, state) + _view_offsets(tensors, state)


def _project(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, focal: torch.Tensor,
             centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    in_camera = points @ rotation.T + translation
    return focal * in_camera[:, :2] / in_camera[:, 2:3] + centre, in_camera


@dataclass(frozen=True)
class _Contour:
    """Per contour landmark: the band edge (local a, b) and the fraction t where the contour generator crosses it."""

    a: torch.Tensor
    b: torch.Tensor
    t: torch.Tensor
    valid: torch.Tensor  # (C,) bool
    normal: torch.Tensor  # (C, 2) unit normal of the detected outline


def _find_contour(tensors: _Tensors, state: _State, centre: torch.Tensor, detected: torch.Tensor) -> _Contour:
    """Slide every contour landmark to the nearest point of the posed band's occluding contour."""
    with torch.no_grad():
        verts = _shape(tensors.band_mean, tensors.band_basis, state)
        in_camera = verts @ state.rotation().T + state.translation()
        normals = vertex_normals(in_camera, tensors.band_faces)
        facing = (normals * in_camera).sum(1) / in_camera.norm(dim=1)
        ea, eb = tensors.band_edges[:, 0], tensors.band_edges[:, 1]
        sa, sb = facing[ea], facing[eb]
        crossing = sa * sb < 0
        t = (sa / (sa - sb)).clamp(0, 1)
        point = in_camera[ea] + t[:, None] * (in_camera[eb] - in_camera[ea])
        pixels = torch.exp(state.log_focal) * point[:, :2] / point[:, 2:3] + centre
        side = tensors.band_side[ea]
        targets = detected[tensors.contour]
        distance = (pixels[None] - targets[:, None]).norm(dim=2)  # (C, Eb)
        allowed = crossing[None] & ((tensors.contour_side[:, None] == 0) | (side[None] == 0)
                                    | (side[None] == tensors.contour_side[:, None]))
        distance = torch.where(allowed, distance, torch.full_like(distance, float("inf")))
        best = distance.argmin(1)
        valid = torch.isfinite(distance.gather(1, best[:, None])[:, 0])
        tangent = detected[tensors.contour_next] - detected[tensors.contour_prev]
        normal = torch.stack([-tangent[:, 1], tangent[:, 0]], 1)
        normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-9)
        return _Contour(a=ea[best], b=eb[best], t=t[best], valid=valid, normal=normal)


# --------------------------------------------------------------------------- the solver


@dataclass
class _Problem:
    tensors: _Tensors
    detected: torch.Tensor  # (N, 2)
    centre: torch.Tensor  # (2,)
    scale: float  # pixels per residual unit (1 % of the inter-ocular distance)
    options: FitOptions
    log_focal_guess: float
    log_focal_bounds: tuple[float, float]
    w_identity: float
    w_expression: tuple[float, float]
    w_focal: float


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) cross-product matrices: skew(v) @ w = v × w."""
    zero = torch.zeros_like(v[:, 0])
    return torch.stack([torch.stack([zero, -v[:, 2], v[:, 1]], 1), torch.stack([v[:, 2], zero, -v[:, 0]], 1),
                        torch.stack([-v[:, 1], v[:, 0], zero], 1)], 1)


def _pixels_and_jacobian(points: torch.Tensor, basis: torch.Tensor, state: _State, centre: torch.Tensor,
                         with_jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pixels (n, 2) of model points and, optionally, their Jacobian (n, 2, P) in the state's parameters.

    Parameters: omega (3, a left increment of the rotation, evaluated at omega = 0), (u, v), log depth,
    log focal, then the coefficients whose displacement fields at the points are `basis` (M, n, 3).
    """
    rotation, translation, focal = state.rotation(), state.translation(), torch.exp(state.log_focal)
    rotated = points @ rotation.T
    in_camera = rotated + translation
    z = in_camera[:, 2:3]
    pixels = focal * in_camera[:, :2] / z + centre
    if not with_jacobian:
        return pixels, None
    n, m = points.shape[0], basis.shape[0]
    d_camera = torch.zeros(n, 3, 7 + m, dtype=points.dtype)
    d_camera[:, :, 0:3] = -_skew(rotated)
    d_camera[:, 0, 3] = translation[2]
    d_camera[:, 1, 4] = translation[2]
    d_camera[:, :, 5] = translation
    d_camera[:, :, 7:] = torch.einsum("ij,mnj->nim", rotation, basis)
    x, y = in_camera[:, 0] / z[:, 0], in_camera[:, 1] / z[:, 0]
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    d_pixel = (focal / z)[:, :, None] * torch.stack([torch.stack([one, zero, -x], 1), torch.stack([zero, one, -y], 1)], 1)
    jacobian = d_pixel @ d_camera
    jacobian[:, :, 6] = pixels - centre
    return pixels, jacobian


def _linearise(problem: _Problem, state: _State, contour: _Contour | None, point_w: torch.Tensor,
               contour_w: torch.Tensor, with_jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weighted residual rows (in % of the inter-ocular distance) and, optionally, their Jacobian."""
    tensors = problem.tensors
    coefficients = torch.cat([state.identity, state.expression])
    points = _landmark_points(tensors, state)
    pixels, jacobian = _pixels_and_jacobian(points, tensors.basis, state, problem.centre, with_jacobian)
    point_sqrt = point_w.sqrt()
    rows = [((pixels - problem.detected) / problem.scale * point_sqrt[:, None]).reshape(-1)]
    blocks = [] if jacobian is None else [(jacobian / problem.scale * point_sqrt[:, None, None]).reshape(-1, jacobian.shape[2])]
    if contour is not None:
        t = contour.t[:, None]
        ends_a, ends_b = tensors.band_mean[contour.a], tensors.band_mean[contour.b]
        basis = (1 - t) * tensors.band_basis[:, contour.a] + t * tensors.band_basis[:, contour.b]
        slid_points = (1 - t) * ends_a + t * ends_b + torch.einsum("m,mnc->nc", coefficients, basis)
        slid, slid_jacobian = _pixels_and_jacobian(slid_points, basis, state, problem.centre, with_jacobian)
        weight = contour_w.sqrt() / problem.scale
        rows.append(((slid - problem.detected[tensors.contour]) * contour.normal).sum(1) * weight)
        if slid_jacobian is not None:
            blocks.append((slid_jacobian * contour.normal[:, :, None]).sum(1) * weight[:, None])
    opt = problem.options
    k = state.identity.shape[0]
    l1, l2 = problem.w_expression
    expression_weight = torch.sqrt(l1 / (state.expression.abs() + 0.05) + l2)
    prior_weights = torch.cat([torch.full((k,), math.sqrt(problem.w_identity), dtype=points.dtype), expression_weight])
    rows.append(prior_weights * coefficients)
    rows.append((math.sqrt(problem.w_focal) * (state.log_focal - problem.log_focal_guess))[None])
    if jacobian is None:
        return torch.cat(rows), None
    n_params = jacobian.shape[2]
    prior_block = torch.zeros(coefficients.shape[0] + 1, n_params, dtype=points.dtype)
    prior_block[torch.arange(coefficients.shape[0]), 7 + torch.arange(coefficients.shape[0])] = prior_weights
    prior_block[-1, 6] = math.sqrt(problem.w_focal)
    blocks.append(prior_block)
    return torch.cat(rows), torch.cat(blocks)


def _weights(problem: _Problem, point_res: torch.Tensor, contour_res: torch.Tensor, contour: _Contour | None,
             robust_scale: float, use: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row weights: landmark weight × Geman–McClure IRLS weight, normalised to a mean over landmarks."""
    tensors = problem.tensors
    base = tensors.weights * use
    c2 = robust_scale ** 2
    irls = (c2 / (c2 + (point_res ** 2).sum(1))) ** 2
    point_w = base * irls
    if contour is None:
        contour_w = torch.zeros(0, dtype=base.dtype)
    else:
        point_w[tensors.contour] = 0.0
        contour_w = tensors.weights[tensors.contour] * contour.valid * (c2 / (c2 + contour_res ** 2)) ** 2
    total = base.sum().clamp_min(1e-9)
    return point_w / total, contour_w / total


def _clamp(problem: _Problem, state: _State) -> _State:
    bound = problem.options.identity_bound
    lo, hi = problem.log_focal_bounds
    return _State(state.base, state.omega, state.uv, state.log_depth, state.log_focal.clamp(lo, hi),
                  state.identity.clamp(-bound, bound), state.expression.clamp(0.0, 1.0))


def _point_residuals(problem: _Problem, state: _State, contour: _Contour | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unweighted residuals: points (N, 2) and contour (C,), in % of the inter-ocular distance."""
    n = problem.tensors.mean.shape[0]
    c = 0 if contour is None else contour.a.shape[0]
    rows, _ = _linearise(problem, state, contour, torch.ones(n, dtype=torch.float64), torch.ones(c, dtype=torch.float64),
                         with_jacobian=False)
    return rows[:2 * n].reshape(n, 2), rows[2 * n:2 * n + c]


def _pinned(problem: _Problem, x: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Parameters sitting on a bound that the descent direction pushes further out (frozen for this step)."""
    k = problem.tensors.n_identity
    lower = torch.full_like(x, -math.inf)
    upper = torch.full_like(x, math.inf)
    lower[6], upper[6] = problem.log_focal_bounds
    lower[7:7 + k], upper[7:7 + k] = -problem.options.identity_bound, problem.options.identity_bound
    lower[7 + k:], upper[7 + k:] = 0.0, 1.0
    return ((x <= lower + 1e-9) & (gradient > 0)) | ((x >= upper - 1e-9) & (gradient < 0))


def _lm(problem: _Problem, state: _State, active: torch.Tensor, iterations: int, robust_scales: list[float],
        use: torch.Tensor, sliding: bool, report: Callable[[int, float], None]) -> tuple[_State, float, int]:
    """Levenberg–Marquardt with IRLS weights and contour re-assignment recomputed at every iteration."""
    damping = 1e-3
    cost = float("inf")
    done = 0
    for it in range(iterations):
        robust = robust_scales[min(it, len(robust_scales) - 1)]
        state = state.normalised()
        contour = _find_contour(problem.tensors, state, problem.centre, problem.detected) if sliding else None
        point_res, contour_res = _point_residuals(problem, state, contour)
        point_w, contour_w = _weights(problem, point_res, contour_res, contour, robust, use)
        r, jacobian = _linearise(problem, state, contour, point_w, contour_w, with_jacobian=True)
        assert jacobian is not None
        x0 = state.vector()
        free = active & ~_pinned(problem, x0, jacobian.T @ r)
        jacobian = jacobian[:, free]
        cost = float(r @ r)
        jtj = jacobian.T @ jacobian
        gradient = jacobian.T @ r
        diagonal = jtj.diagonal().clamp_min(1e-9)
        accepted = False
        for _ in range(10):
            step = torch.linalg.solve(jtj + damping * torch.diag(diagonal), -gradient)
            x = x0.clone()
            x[free] = x0[free] + step
            trial = _clamp(problem, state.with_vector(x))
            r_new, _ = _linearise(problem, trial, contour, point_w, contour_w, with_jacobian=False)
            new_cost = float(r_new @ r_new)
            if math.isfinite(new_cost) and new_cost < cost:
                damping = max(damping / 3, 1e-12)
                accepted = True
                break
            damping = min(damping * 4, 1e9)
        done = it + 1
        report(it, cost)
        if not accepted:
            break
        decrease = (cost - new_cost) / max(cost, 1e-30)
        state, cost = trial, new_cost
        if decrease < problem.options.tolerance and robust == robust_scales[-1]:
            break
    return state.normalised(), cost, done


def _initial_pose(tensors: _Tensors, detected: np.ndarray, focal: float, centre: np.ndarray
                  ) -> tuple[np.ndarray, float, np.ndarray]:
    """Weak-perspective alignment of the mean landmarks: (camera_from_model rotation, depth, (u, v))."""
    use = tensors.rigid.numpy() & (tensors.weights.numpy() > 0)
    model = tensors.mean.numpy()[use]
    image = detected[use]
    model_c = model - model.mean(0)
    image_c = image - image.mean(0)
    affine, *_ = np.linalg.lstsq(model_c, image_c, rcond=None)  # (3, 2): image_c ≈ model_c @ affine
    r1, r2 = affine[:, 0], affine[:, 1]
    scale = (np.linalg.norm(r1) + np.linalg.norm(r2)) / 2
    r1 = r1 / np.linalg.norm(r1)
    r2 = r2 - (r2 @ r1) * r1
    r2 = r2 / np.linalg.norm(r2)
    rotation = np.stack([r1, r2, np.cross(r1, r2)])
    if rotation[2] @ (camera.FRONT_CV[2]) < 0:  # looking away from the camera: take the mirrored solution
        rotation = camera.FRONT_CV.copy()
    depth = focal / scale
    centroid = (image.mean(0) - centre) / focal  # direction of the centroid of the landmarks
    offset = rotation @ model.mean(0)
    uv = centroid - offset[:2] / depth
    return rotation, depth, uv


def fit_landmarks(landmarks_px: np.ndarray, width: int, height: int, model: HeadModel,
                  config: ReconstructConfig | None = None, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None, embedding: LandmarkEmbedding | None = None,
                  options: FitOptions | None = None) -> FitResult:
    """Fit pose, focal, identity and expression of `model` to 478 detected landmarks (pixels, x right, y down).

    Deterministic: the same inputs give bit-identical outputs (no random numbers are drawn; the seed in
    `config` is therefore irrelevant here). Runs on the CPU in float64 whatever `config.device` says: the
    problem is far too small for a GPU to help.
    """
    start = time.perf_counter()
    detected_np = np.asarray(landmarks_px, dtype=np.float64)
    if detected_np.shape != (N_LANDMARKS, 2) or not np.all(np.isfinite(detected_np)):
        raise ValueError(f"landmarks_px must be a finite ({N_LANDMARKS}, 2) array, got {detected_np.shape}")
    options = options or FitOptions.from_config(config)
    embedding = embedding or load_embedding()
    tensors = _tensors(model, embedding, options)
    iod = interocular_px(detected_np)
    if iod < 1.0:
        raise FaceStageError("The detected eyes coincide; the landmarks cannot be fitted.")
    centre_np = np.array([width / 2.0, height / 2.0])
    log_focal_guess = math.log(camera.focal_from_35mm(options.focal_mm, width, height))
    problem = _Problem(tensors=tensors, detected=torch.as_tensor(detected_np), centre=torch.as_tensor(centre_np),
                       scale=iod / 100.0, options=options, log_focal_guess=log_focal_guess,
                       log_focal_bounds=tuple(math.log(camera.focal_from_35mm(f, width, height)) for f in FOCAL_RANGE_MM),
                       w_identity=identity_weight(options), w_expression=expression_weights(options),
                       w_focal=focal_weight(options))
    rotation0, depth0, uv0 = _initial_pose(tensors, detected_np, math.exp(log_focal_guess), centre_np)
    k, e = tensors.n_identity, tensors.basis.shape[0] - tensors.n_identity
    dtype = torch.float64
    state = _State(base=torch.as_tensor(rotation0), omega=torch.zeros(3, dtype=dtype), uv=torch.as_tensor(uv0),
                   log_depth=torch.tensor(math.log(depth0), dtype=dtype), log_focal=torch.tensor(log_focal_guess, dtype=dtype),
                   identity=torch.zeros(k, dtype=dtype), expression=torch.zeros(e, dtype=dtype))
    total = options.rigid_iterations + options.max_iterations
    offset = [0]

    def report(it: int, cost: float) -> None:
        check_cancel(cancel)
        if progress is not None:
            progress(Progress("landmarks", offset[0] + it + 1, total, cost))

    n_params = 7 + k + e
    rigid = torch.zeros(n_params, dtype=torch.bool)
    rigid[:6] = True
    rigid[6] = options.fit_focal
    scale = robust_scale(options)
    state, cost, done_rigid = _lm(problem, state, rigid, options.rigid_iterations, [options.robust_scale_start * scale],
                                  tensors.rigid.to(dtype), sliding=False, report=report)
    offset[0] = options.rigid_iterations
    full = torch.ones(n_params, dtype=torch.bool)
    full[6] = options.fit_focal
    if options.identity_components is not None:
        full[7 + options.identity_components:7 + k] = False
    schedule = list(np.geomspace(options.robust_scale_start * scale, scale, 6))
    state, cost, done_full = _lm(problem, state, full, options.max_iterations, schedule,
                                 torch.ones(N_LANDMARKS, dtype=dtype), sliding=options.slide_contour, report=report)
    result = _result(problem, state, model, embedding, detected_np, width, height, cost, done_rigid + done_full,
                     time.perf_counter() - start)
    result.focal_source = "exif" if options.focal_known else "estimated"
    result.focal_log_std = (1.0 / math.sqrt(options.w_focal_known) if options.focal_known
                            else _focal_std_scale(options) * _laplace_log_focal_std(problem, state, full))
    return result


def _focal_std_scale(options: FitOptions) -> float:
    learned = learned_model(options)
    return 1.0 if learned is None else learned.focal_std_scale


def _laplace_log_focal_std(problem: _Problem, state: _State, active: torch.Tensor) -> float:
    """Standard deviation of log f from the Gauss–Newton Hessian at the optimum (Laplace approximation).

    The cost is a mean over landmarks in units of 1 % of the eye distance, so the log-posterior is the cost
    times Σ weights / σ², with σ the typical landmark noise (the learned model's median, else 1.5 % IOD).
    """
    tensors = problem.tensors
    robust = robust_scale(problem.options)
    with torch.no_grad():
        contour = _find_contour(tensors, state, problem.centre, problem.detected) if problem.options.slide_contour else None
        point_res, contour_res = _point_residuals(problem, state, contour)
        use = torch.ones(N_LANDMARKS, dtype=torch.float64)
        point_w, contour_w = _weights(problem, point_res, contour_res, contour, robust, use)
        _, jacobian = _linearise(problem, state, contour, point_w, contour_w, with_jacobian=True)
    assert jacobian is not None
    free = active & ~_pinned(problem, state.vector(), torch.zeros_like(state.vector()))
    if not bool(free[6]):
        return float("nan")
    learned = learned_model(problem.options)
    sigma = float(np.median(learned.sigma_pct_iod[learned.corrected])) if learned is not None else 1.5
    temperature = float(tensors.weights.sum()) / sigma ** 2
    j = jacobian[:, free]
    covariance = torch.linalg.pinv(temperature * (j.T @ j))
    index = int(torch.nonzero(free).flatten().tolist().index(6))
    return math.sqrt(max(float(covariance[index, index]), 0.0))


def _contour_pixels(tensors: _Tensors, state: _State, centre: torch.Tensor, contour: _Contour) -> torch.Tensor:
    """Pixels (C, 2) of the slid contour points."""
    ids = torch.cat([contour.a, contour.b])
    ends = _shape(tensors.band_mean[ids], tensors.band_basis[:, ids], state)
    n = contour.a.shape[0]
    pixels, _ = _project(ends[:n] + contour.t[:, None] * (ends[n:] - ends[:n]), state.rotation(), state.translation(),
                         torch.exp(state.log_focal), centre)
    return pixels


def _state_of(camera_from_model: np.ndarray, focal_px: float, identity: np.ndarray, expression: np.ndarray) -> _State:
    """The solver state of a pose (OpenCV camera_from_model), focal length and coefficients."""
    t = np.asarray(camera_from_model, np.float64)[:3, 3]
    f64 = torch.float64
    return _State(base=torch.as_tensor(np.asarray(camera_from_model, np.float64)[:3, :3]), omega=torch.zeros(3, dtype=f64),
                  uv=torch.as_tensor(t[:2] / t[2]), log_depth=torch.tensor(math.log(t[2]), dtype=f64),
                  log_focal=torch.tensor(math.log(focal_px), dtype=f64),
                  identity=torch.as_tensor(np.asarray(identity, np.float64)),
                  expression=torch.as_tensor(np.asarray(expression, np.float64)))


def slide_contour(model: HeadModel, camera_from_model: np.ndarray, focal_px: float, identity: np.ndarray,
                  expression: np.ndarray, width: int, height: int, near_px: np.ndarray,
                  embedding: LandmarkEmbedding | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where the jaw-line landmarks go on the posed head's occluding contour: (pixels (C, 2), valid (C,)).

    Each contour landmark takes the contour point nearest to its entry in `near_px` (478, 2); the outline
    normal comes from the neighbours in `near_px` too. The same rule the solver applies at every iteration
    (`_find_contour`), exposed for tests and benchmarks that need the true contour of a known head.
    """
    embedding = embedding or load_embedding()
    tensors = _tensors(model, embedding)
    state = _state_of(camera_from_model, focal_px, identity, expression)
    centre = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    with torch.no_grad():
        contour = _find_contour(tensors, state, centre, torch.as_tensor(np.asarray(near_px, np.float64)))
        return _contour_pixels(tensors, state, centre, contour).numpy(), contour.valid.numpy()


def _result(problem: _Problem, state: _State, model: HeadModel, embedding: LandmarkEmbedding, detected: np.ndarray,
            width: int, height: int, cost: float, iterations: int, seconds: float) -> FitResult:
    tensors = problem.tensors
    with torch.no_grad():
        contour = _find_contour(tensors, state, problem.centre, problem.detected)
        rotation, translation, focal = state.rotation(), state.translation(), torch.exp(state.log_focal)
        points = _landmark_points(tensors, state)
        fitted, _ = _project(points, rotation, translation, focal, problem.centre)
        fitted = fitted.numpy().copy()
        errors = np.linalg.norm(fitted - detected, axis=1)
        slid = _contour_pixels(tensors, state, problem.centre, contour)
        valid = contour.valid.numpy()
        cids = tensors.contour.numpy()
        across = np.abs(((slid - problem.detected[tensors.contour]) * contour.normal).sum(1).numpy())
        fitted[cids[valid]] = slid.numpy()[valid]
        errors[cids[valid]] = across[valid]
    camera_from_model = np.eye(4)
    camera_from_model[:3, :3] = rotation.numpy()
    camera_from_model[:3, 3] = translation.numpy()
    world_rotation, world_translation, world_from_camera = camera.world_pose(camera_from_model)
    identity = state.identity.numpy().copy()
    expression = state.expression.numpy().copy()
    with torch.no_grad():
        model_space = model.evaluate(torch.as_tensor(identity), torch.as_tensor(expression)).double().cpu().numpy()
    vertices = model_space @ world_rotation.T + world_translation
    focal_px = float(focal)
    weighted = embedding.used()
    warnings: list[str] = []
    median_error = float(np.median(errors[weighted]))
    iod = problem.scale * 100
    if median_error > 0.05 * iod:
        warnings.append(f"The landmark fit is poor (median error {median_error:.1f} px); the face may be occluded "
                        "or strongly expressive.")
    log.info("stage 0: %d iterations, %.2f s, median landmark error %.2f px (%.2f%% of eye distance), focal %.1f mm",
             iterations, seconds, median_error, 100 * median_error / iod, focal_px * SENSOR_MM / max(width, height))
    return FitResult(identity=identity, expression=expression, rotation=world_rotation, translation=world_translation,
                     focal_px=focal_px, K=camera.intrinsics(focal_px, width, height), world_from_camera=world_from_camera,
                     camera_from_model=camera_from_model, vertices=vertices.astype(np.float32), landmarks_px=fitted,
                     detected_px=detected, errors_px=errors, reprojection_error_px=median_error, interocular_px=iod,
                     width=width, height=height, iterations=iterations, cost=cost, seconds=seconds, warnings=warnings)


# --------------------------------------------------------------------------- for the photometric stages


def landmark_weights(options: FitOptions | None = None, embedding: LandmarkEmbedding | None = None) -> np.ndarray:
    """(478,) weight of each landmark's fixed-point term in the later stages (learned noise, else the embedding's)."""
    options = options or FitOptions()
    embedding = embedding or load_embedding()
    learned = learned_model(options)
    weights = embedding.weights * embedding.group_weights()
    return weights if learned is None else _learned_weights(learned, embedding, weights)


def landmark_offsets_world(identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                           translation: torch.Tensor, camera_centre: torch.Tensor,
                           options: FitOptions | None = None) -> torch.Tensor | None:
    """(478, 3) world-space learned offsets of the landmarks from their embedded points, or None (no learned model).

    Differentiable in identity and expression (linear); the view term uses the direction from the head
    (world = rotation · model + translation) to the camera centre, as in stage 0.
    """
    learned = learned_model(options or FitOptions())
    if learned is None:
        return None
    like = {"dtype": identity.dtype, "device": identity.device}
    k = min(identity.shape[-1], learned.identity_offset.shape[0])
    offsets = torch.as_tensor(learned.offset, **like)
    offsets = offsets + torch.einsum("k,knc->nc", identity[:k], torch.as_tensor(learned.identity_offset[:k], **like))
    units = torch.as_tensor(learned.expression_units, device=identity.device)
    offsets = offsets + torch.einsum("u,unc->nc", expression[units], torch.as_tensor(learned.expression_offset, **like))
    with torch.no_grad():
        view = rotation.T @ (camera_centre - translation)
        view = (view / view.norm()).detach().cpu().numpy().astype(np.float64)
    offsets = offsets + torch.as_tensor(learned.view_offsets(view), **like)
    return offsets @ rotation.T
