"""Learn where MediaPipe's landmarks really sit on the head model, from MediaPipe run on our own renders.

tools/embed_landmarks.py ties each landmark to one fixed surface point found on a few near-average heads.
MediaPipe, though, was trained on real faces: on a head with a wider nose or a longer chin it puts its
points where *its* idea of a face says, 4–12 % of the eye distance away from that fixed point, and the
offset depends on the head's shape, expression and pose. Fitting a head to those points pulls it towards
MediaPipe's average face. This tool measures that offset on many rendered heads whose geometry is known and
models it per landmark as a linear function of

    features = [1, identity_1 … identity_K (leading components), the expression units a portrait shows,
                view_x, view_z, view_x²]   (view = unit direction from the head to the camera, model frame)

giving a 3-D offset (model space, metres) from the fixed surface point. The solver then ties each landmark to
`embedded point + offset(features)`, whose dependence on identity and expression simply adds to the model's
basis at that landmark (core/fit/embedding.py `LandmarkModel`). Each landmark also gets its own noise level
(`sigma_pct_iod`, measured on the validation heads after the correction), which becomes its weight in the fit.

Method: per landmark, Gauss–Newton on the reprojection error under the true camera (% of the inter-ocular
distance), Huber-weighted against MediaPipe's occasional gross errors, ridge-regularised towards zero offset;
the ridge strength is chosen on the validation heads (tools/head_sets.py: every fifth head), which are never
used to fit the offsets. The same validation heads then calibrate the identity prior of the landmark fit
(`--calibrate`): the strength that minimises the face-region vertex error, with the mean head as the floor.

    python tools/learn_landmarks.py [--heads 200] [--views 2] [--calibrate]     (~20 min on 2 busy cores)

Writes core/model/data/landmarks_hm08_learned.npz (+ _report.json). Deterministic: fixed seeds for the scenes
(tools/head_sets.py), the views rendered by the project's own renderer (tools/head_sets.py `render_core`, seeded
per scene; no Blender), MediaPipe on CPU, closed-form solves in float64.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
for path in (str(ROOT.parent), str(TOOLS)):
    if path not in sys.path:
        sys.path.insert(0, path)

import head_sets  # noqa: E402
from embed_landmarks import write_npz  # noqa: E402
from ground_truth import MILD_EXPRESSIONS  # noqa: E402

from facestage.core.fit.embedding import (GROUP_NAMES, LEARNED_PATH, LandmarkEmbedding, LandmarkModel,  # noqa: E402
                                          load_embedding, view_features)
from facestage.core.fit.landmarks import N_LANDMARKS, interocular_px  # noqa: E402
from facestage.core.model import camera  # noqa: E402

log = logging.getLogger("learn_landmarks")

OUT_REPORT = LEARNED_PATH.with_name("landmarks_hm08_learned_report.json")
EXPRESSION_FEATURES = tuple(dict.fromkeys(MILD_EXPRESSIONS + tuple(n for group in head_sets.PORTRAIT_EXPRESSIONS
                                                                       for n in group)))
# Feature sets tried (leading identity components, with the expression units?); validation picks one.
FEATURE_SETS = {"pose": (0, False), "pose+identity": (10, False), "pose+identity+expression": (10, True)}
RIDGES = (1.0, 3.0, 10.0, 30.0)  # (% IOD)² per mm² of offset per unit feature
INTERCEPT_RIDGE = 0.01
HUBER_PCT_IOD = 3.0
GN_ITERATIONS = 3


@dataclass
class Data:
    """The training or validation views as arrays (V views, 478 landmarks)."""

    identity: np.ndarray  # (V, K)
    expression: np.ndarray  # (V, 52)
    rotation: np.ndarray  # (V, 3, 3) OpenCV camera_from_model
    translation: np.ndarray  # (V, 3)
    focal: np.ndarray  # (V,)
    centre: np.ndarray  # (V, 2)
    detected: np.ndarray  # (V, 478, 2)
    heads: np.ndarray  # (V,)

    def __len__(self) -> int:
        return len(self.focal)

    def subset(self, keep: np.ndarray) -> Data:
        return Data(**{k: v[keep] for k, v in self.__dict__.items()})

    @property
    def view(self) -> np.ndarray:
        """(V, 3) unit direction from the head to the camera in the model frame."""
        d = -np.einsum("vji,vj->vi", self.rotation, self.translation)
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    @property
    def iod(self) -> np.ndarray:
        return np.array([interocular_px(p) for p in self.detected])


def load_views(model: Any, heads: int, views: int) -> tuple[Data, Data, dict[str, Any]]:
    """Render (cached) and detect the training views; (training split, validation split, counts)."""
    items = head_sets.training_views(model, heads, views)
    folders = head_sets.render_views(items)
    rows: dict[str, list[Any]] = {k: [] for k in Data.__dataclass_fields__}
    validation, missed = [], 0
    for item, folder in zip(items, folders):
        points = head_sets.detections(folder)
        if points is None:
            missed += 1
            continue
        scene = item.scene
        pose = camera.camera_from_world_pose(np.asarray(scene.rotation), np.asarray(scene.translation),
                                             np.asarray(scene.world_from_camera))
        rows["identity"].append(scene.identity)
        rows["expression"].append(scene.expression)
        rows["rotation"].append(pose[:3, :3])
        rows["translation"].append(pose[:3, 3])
        rows["focal"].append(scene.K[0][0])
        rows["centre"].append([scene.K[0][2], scene.K[1][2]])
        rows["detected"].append(points)
        rows["heads"].append(item.head)
        validation.append(item.validation)
    data = Data(**{k: np.asarray(v, np.float64 if k != "heads" else np.int64) for k, v in rows.items()})
    validation_mask = np.array(validation)
    return data.subset(~validation_mask), data.subset(validation_mask), {
        "views": len(items), "no_face": missed, "training_views": int((~validation_mask).sum()),
        "validation_views": int(validation_mask.sum())}


# --------------------------------------------------------------------------- the linear landmark model


def base_points(model: Any, embedding: LandmarkEmbedding, data: Data) -> np.ndarray:
    """(V, 478, 3) model-space embedded points of each view's true shape (no learned offset)."""
    faces = np.asarray(model.faces, np.int64)[embedding.faces]  # (478, 3)
    corners = lambda a: np.asarray(a, np.float64)[..., faces, :]  # noqa: E731
    mean = (corners(model.vertices) * embedding.bary[..., None]).sum(-2)
    id_basis = (corners(model.identity_basis) * embedding.bary[..., None]).sum(-2)  # (K, 478, 3)
    ex_basis = (corners(model.expression_basis) * embedding.bary[..., None]).sum(-2)
    return mean + np.einsum("vk,klc->vlc", data.identity, id_basis) + np.einsum("ve,elc->vlc", data.expression, ex_basis)


def feature_matrix(data: Data, identity_features: int, expression_units: np.ndarray) -> np.ndarray:
    """(V, F) features of every view, in the order LandmarkModel expects."""
    return np.concatenate([np.ones((len(data), 1)), data.identity[:, :identity_features],
                           data.expression[:, expression_units], view_features(data.view)], 1)


def _project(points: np.ndarray, data: Data) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (V, L, 2) and Jacobians d pixel / d model point (V, L, 2, 3)."""
    cam = np.einsum("vij,vlj->vli", data.rotation, points) + data.translation[:, None]
    z = cam[..., 2]
    x, y = cam[..., 0] / z, cam[..., 1] / z
    f = data.focal[:, None]
    pixels = np.stack([f * x, f * y], -1) + data.centre[:, None]
    zero = np.zeros_like(x)
    d_pixel = (f / z)[..., None, None] * np.stack([np.stack([np.ones_like(x), zero, -x], -1),
                                                   np.stack([zero, np.ones_like(x), -y], -1)], -2)
    return pixels, np.einsum("vlab,vbc->vlac", d_pixel, data.rotation)


def residuals(points: np.ndarray, data: Data) -> np.ndarray:
    """(V, L, 2) projected − detected, in % of each view's inter-ocular distance."""
    pixels, _ = _project(points, data)
    return (pixels - data.detected) * (100.0 / data.iod)[:, None, None]


def fit_offsets(base: np.ndarray, data: Data, features: np.ndarray, landmarks: np.ndarray, ridge: float) -> np.ndarray:
    """(F, 478, 3) offsets in metres minimising the Huber reprojection error plus the ridge (rows of `landmarks` only)."""
    n_views, n_features = features.shape
    theta = np.zeros((n_features, N_LANDMARKS, 3))  # millimetres while solving
    penalty = np.full(n_features, ridge)
    penalty[0] = INTERCEPT_RIDGE
    penalty = np.repeat(penalty, 3)
    scale = (100.0 / data.iod)[:, None, None]
    for _ in range(GN_ITERATIONS):
        points = base + np.einsum("vf,flc->vlc", features, theta) / 1000.0
        pixels, jac = _project(points, data)
        r = (pixels - data.detected) * scale  # (V, L, 2)
        jac = jac * scale[..., None] / 1000.0  # per mm
        norm = np.linalg.norm(r, axis=-1)
        w = np.where(norm <= HUBER_PCT_IOD, 1.0, HUBER_PCT_IOD / np.maximum(norm, 1e-9))  # (V, L)
        for lm in landmarks:
            a = np.einsum("vac,vf->vafc", jac[:, lm], features).reshape(n_views * 2, n_features * 3)
            sw = np.repeat(np.sqrt(w[:, lm]), 2)
            a = a * sw[:, None]
            b = -(r[:, lm].reshape(-1) * sw)
            current = theta[:, lm].reshape(-1)
            h = a.T @ a + np.diag(penalty)
            g = a.T @ b - penalty * current
            theta[:, lm] = (current + np.linalg.solve(h, g)).reshape(n_features, 3)
    return theta / 1000.0


def robust_sigma(r: np.ndarray) -> np.ndarray:
    """Per-landmark per-axis noise (L,) in % IOD from residuals (V, L, 2): 1.4826 × median absolute value."""
    return 1.4826 * np.median(np.abs(r), axis=(0, 2))


def learn(model: Any, embedding: LandmarkEmbedding, training: Data, validation: Data
          ) -> tuple[LandmarkModel, dict[str, Any]]:
    names = [str(n) for n in model.expression_names]
    all_units = np.array([names.index(n) for n in EXPRESSION_FEATURES if n in names], np.int64)
    learnable = np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True) & (
        embedding.group != GROUP_NAMES.index("iris"))
    landmarks = np.nonzero(learnable)[0]
    base_t, base_v = base_points(model, embedding, training), base_points(model, embedding, validation)
    before = residuals(base_v, validation)

    trials: dict[str, float] = {}
    best: tuple[float, str, float, np.ndarray] | None = None
    for name, (n_id, with_expression) in FEATURE_SETS.items():
        units = all_units if with_expression else all_units[:0]
        feats_t, feats_v = feature_matrix(training, n_id, units), feature_matrix(validation, n_id, units)
        for ridge in RIDGES:
            theta = fit_offsets(base_t, training, feats_t, landmarks, ridge)
            r = residuals(base_v + np.einsum("vf,flc->vlc", feats_v, theta), validation)
            score = float(np.median(np.linalg.norm(r, axis=-1)[:, learnable]))
            trials[f"{name}, ridge {ridge:g}"] = round(score, 4)
            log.info("%s, ridge %g: validation median %.3f %% IOD", name, ridge, score)
            if best is None or score < best[0]:
                best = (score, name, ridge, theta)
    assert best is not None
    _, chosen, ridge, theta = best
    n_id, with_expression = FEATURE_SETS[chosen]
    units = all_units if with_expression else all_units[:0]
    after = residuals(base_v + np.einsum("vf,flc->vlc", feature_matrix(validation, n_id, units), theta), validation)
    sigma = np.where(learnable, robust_sigma(after), robust_sigma(before))
    learned = LandmarkModel(offset=theta[0], identity_offset=theta[1:1 + n_id],
                            expression_units=units, expression_offset=theta[1 + n_id:1 + n_id + len(units)],
                            view_offset=theta[1 + n_id + len(units):], sigma_pct_iod=sigma, corrected=learnable,
                            w_identity=float("nan"))
    dist_before = np.linalg.norm(before, axis=-1)[:, learnable]
    dist_after = np.linalg.norm(after, axis=-1)[:, learnable]
    report = {
        "features": chosen, "ridge": ridge, "trials_validation_median_pct_iod": trials,
        "validation_pct_iod": {
            "embedded_median": round(float(np.median(dist_before)), 3), "learned_median": round(float(np.median(dist_after)), 3),
            "embedded_mean": round(float(dist_before.mean()), 3), "learned_mean": round(float(dist_after.mean()), 3),
            "embedded_per_view_median": round(float(np.median(np.median(dist_before, 1))), 3),
            "learned_per_view_median": round(float(np.median(np.median(dist_after, 1))), 3)},
        "offset_mm": {"intercept_median": round(1000 * float(np.median(np.linalg.norm(theta[0][learnable], axis=1))), 3),
                      "intercept_max": round(1000 * float(np.linalg.norm(theta[0][learnable], axis=1).max()), 3)},
        "sigma_pct_iod": {"median": round(float(np.median(sigma[learnable])), 3),
                          "p10": round(float(np.percentile(sigma[learnable], 10)), 3),
                          "p90": round(float(np.percentile(sigma[learnable], 90)), 3)},
    }
    return learned, report


# --------------------------------------------------------------------------- prior calibration


CALIBRATION_GRID = ((0.1, 0.01), (0.3, 0.1), (1.0, 1.0), (3.0, 3.0), (10.0, 3.0))  # (w_identity, w_expression)
FOCAL_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)  # w_focal: 1/σ² of log f around the 50 mm prior centre


@dataclass
class Calibration:
    """The landmark fit's priors chosen on the validation views, and the focal-uncertainty scale."""

    w_identity: float
    w_expression: float
    w_focal: float
    focal_std_scale: float
    report: dict[str, Any]


def calibrate(model: Any, learned_path: Path, heads: int, views: int) -> Calibration:
    """The identity, expression and focal prior weights and focal-uncertainty scale of the landmark fit (validation views).

    Every validation view is fitted with each pair of CALIBRATION_GRID; the pair with the lowest mean
    face-region error (similarity-aligned, tools/shape_metrics.py) relative to the unfitted mean head's on the
    same views wins (the issue's headline measure), fewer views worse than the mean head breaking ties. (A
    tail criterion, mean + 90th-percentile per-view ratio, picked far stronger priors, 30/3, that made the fit
    barely better than the mean head on average and no better in the tail; the report keeps both numbers.)
    With that pair, the focal prior's weight is the one of FOCAL_GRID with the lowest rms error of log f (the
    shape barely depends on it), and the focal scale makes ±1 reported σ cover 68 % of the true focal lengths.
    """
    from ground_truth import face_region_mask, head_vertices, pose_points
    from shape_metrics import face_errors

    from facestage.core.fit import solver

    items = [v for v in head_sets.training_views(model, heads, views) if v.validation]
    folders = head_sets.render_views(items)
    mask = face_region_mask(model)
    mean = np.asarray(model.vertices, np.float64)
    cases = []
    for item, folder in zip(items, folders):
        points = head_sets.detections(folder)
        if points is not None:
            scene = item.scene
            truth = pose_points(head_vertices(model, np.asarray(scene.identity), np.asarray(scene.expression)), scene)
            cases.append((scene, points, truth, 1000 * face_errors(mean, truth, mask).mean()))

    def fit_all(options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per view: face-region error (mm), log focal error, and that error in reported standard deviations."""
        errors, log_error, z = [], [], []
        for scene, points, truth, _ in cases:
            fit = solver.fit_landmarks(points, scene.width, scene.height, model, options=options)
            errors.append(1000 * face_errors(np.asarray(fit.vertices, np.float64), truth, mask).mean())
            log_error.append(np.log(fit.focal_px / scene.focal_px))
            z.append(abs(log_error[-1]) / fit.focal_log_std)
        return np.array(errors), np.array(log_error), np.array(z)

    results: dict[str, Any] = {}
    scores = []
    f = np.array([c[3] for c in cases])
    for weight in CALIBRATION_GRID:
        e, _, _ = fit_all(solver.FitOptions(w_identity=weight[0], w_expression=weight[1], landmark_model=str(learned_path)))
        worse = int((e > f).sum())
        results[f"w_identity {weight[0]:g}, w_expression {weight[1]:g}"] = {"vertex_error_mm": round(float(e.mean()), 3), "mean_head_mm": round(float(f.mean()), 3),
                                  "ratio": round(float(e.mean() / f.mean()), 3), "worse_than_mean_head": worse,
                                  "mean_ratio": round(float((e / f).mean()), 3),
                                  "p90_ratio": round(float(np.quantile(e / f, 0.9)), 3),
                                  "views": len(e), "worst_ratio": round(float((e / f).max()), 3)}
        scores.append((round(float(e.mean() / f.mean()), 3), worse, weight))
        log.info("%s: %s", weight, results[f"w_identity {weight[0]:g}, w_expression {weight[1]:g}"])
    best = min(scores)[2]
    focal_results: dict[str, Any] = {}
    focal_scores = []
    for w_focal in FOCAL_GRID:
        e, log_error, z = fit_all(solver.FitOptions(w_identity=best[0], w_expression=best[1], w_focal=w_focal,
                                                    landmark_model=str(learned_path)))
        rms = float(np.sqrt(np.mean(log_error ** 2)))
        focal_results[f"w_focal {w_focal:g}"] = {"log_focal_rms": round(rms, 3), "log_focal_bias": round(float(log_error.mean()), 3),
                                                 "median_abs_pct": round(100 * float(np.median(np.abs(np.expm1(log_error)))), 1),
                                                 "vertex_ratio": round(float(e.mean() / f.mean()), 3)}
        focal_scores.append((rms, w_focal, z))
        log.info("w_focal %g: %s", w_focal, focal_results[f"w_focal {w_focal:g}"])
    _, w_focal, z = min(focal_scores, key=lambda item: item[0])
    from facestage.core.fit.embedding import load_landmark_model

    current = load_landmark_model(learned_path)  # z above is in units of the scale the file already holds
    scale = float(np.quantile(z, 0.683)) * (current.focal_std_scale if current is not None else 1.0)
    return Calibration(best[0], best[1], w_focal, scale,
                       {"grid": results, "focal_grid": focal_results, "w_identity": best[0], "w_expression": best[1],
                        "w_focal": w_focal, "focal_std_scale": round(scale, 4)})


def calibrated(learned: LandmarkModel, found: Calibration) -> LandmarkModel:
    """The learned model with the priors and focal scale `calibrate` found."""
    return dataclasses.replace(learned, w_identity=found.w_identity, w_expression=found.w_expression,
                               w_focal=found.w_focal, focal_std_scale=found.focal_std_scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=200)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--out", type=Path, default=LEARNED_PATH)
    parser.add_argument("--calibrate", action="store_true", help="also calibrate the identity prior on validation heads")
    parser.add_argument("--calibrate-only", action="store_true", help="re-calibrate the existing model's priors only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from facestage.core.fit.embedding import load_landmark_model
    from facestage.core.model.head import load_head_model

    model = load_head_model()
    embedding = load_embedding()
    report_path = args.out.with_name(args.out.stem + "_report.json")
    if args.calibrate_only:
        existing = load_landmark_model(args.out)
        assert existing is not None, f"no learned model at {args.out}"
        report = json.loads(report_path.read_text(encoding="utf-8"))
        found = calibrate(model, args.out, args.heads, args.views)
        report["calibration"] = found.report
        write_npz(args.out, calibrated(existing, found).arrays())
        report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(report["calibration"], indent=1))
        return 0
    training, validation, counts = load_views(model, args.heads, args.views)
    learned, report = learn(model, embedding, training, validation)
    report = {"settings": {"heads": args.heads, "views_per_head": args.views, "training_seed": head_sets.TRAINING_SEED,
                           "validation_every": head_sets.VALIDATION_EVERY,
                           "feature_sets": {k: {"identity_components": v[0], "expression_units": v[1]}
                                            for k, v in FEATURE_SETS.items()},
                           "expression_features": list(EXPRESSION_FEATURES), "huber_pct_iod": HUBER_PCT_IOD,
                           "image": [head_sets.TRAINING_SIZE, head_sets.CORE_SPP], "renderer": "core"},
              "counts": counts, **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(args.out, learned.arrays())
    if args.calibrate:
        found = calibrate(model, args.out, args.heads, args.views)
        report["calibration"] = found.report
        write_npz(args.out, calibrated(learned, found).arrays())
    args.out.with_name(args.out.stem + "_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "settings"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
