"""Stage 0 (core/fit/solver.py): the landmark fit recovers pose, focal length and shape of synthetic heads with known answers."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from facestage.core.fit import pipeline
from facestage.core.fit import solver as fit
from facestage.core.fit.embedding import LEARNED_PATH, LandmarkEmbedding, load_embedding, load_landmark_model
from facestage.core.fit.landmarks import N_LANDMARKS
from facestage.core.io.report import draw_landmarks
from facestage.core.model import camera
from ground_truth import project_points
from facestage.core.common.errors import Cancelled


@pytest.fixture(scope="session")
def embedding() -> LandmarkEmbedding:
    return load_embedding()


@pytest.fixture(scope="session")
def fitted(scenes, model, embedding):  # type: ignore[no-untyped-def]
    """(scene, detected landmarks, fit, metrics) for every synthetic scene."""
    from facestage.core.fit.landmarks import detect
    from ground_truth import fit_metrics

    out = []
    for loaded in scenes:
        landmarks = detect(loaded.image_srgb, source=str(loaded.folder))
        result = fit.fit_landmarks(landmarks.points, loaded.scene.width, loaded.scene.height, model)
        out.append((loaded, landmarks, result, fit_metrics(result, loaded, model, embedding)))
    return out


def _exact_landmarks(model, embedding, seed: int, yaw: float = 20.0, mean_shape: bool = False,  # type: ignore[no-untyped-def]
                     learned: bool = False, identity_scale: float = 1.0):
    """Noise-free landmark pixels of a random head (no rendering), with its true parameters.

    The jaw-line landmarks are put where a detector would see them: on the true occluding contour. With
    `learned`, the other landmarks sit where the learned landmark model says MediaPipe puts them.
    """
    from ground_truth import head_vertices, sample_scene

    scene = sample_scene(model, seed)
    scene.rotation = camera.rotation_from_yaw_pitch_roll(yaw, 5.0, -4.0).tolist()
    scene.identity = [identity_scale * a for a in scene.identity]
    if mean_shape:
        scene.identity, scene.expression = [0.0] * len(scene.identity), [0.0] * len(scene.expression)
    identity, expression = np.asarray(scene.identity), np.asarray(scene.expression)
    vertices = head_vertices(model, identity, expression)
    faces = np.asarray(model.faces, np.int64)
    points = (vertices[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
    if learned:
        import torch

        rotation = np.asarray(scene.rotation)
        centre = np.asarray(scene.world_from_camera)[:3, 3]
        offsets = fit.landmark_offsets_world(torch.as_tensor(identity), torch.as_tensor(expression),
                                             torch.as_tensor(rotation), torch.zeros(3, dtype=torch.float64),
                                             torch.as_tensor(centre))
        points = points + offsets.numpy() @ rotation  # back to model space
    points = points @ np.asarray(scene.rotation).T
    pixels = project_points(points, np.asarray(scene.K), np.asarray(scene.world_from_camera))
    pose = camera.camera_from_world_pose(np.asarray(scene.rotation), np.zeros(3), np.asarray(scene.world_from_camera))
    slid, valid = fit.slide_contour(model, pose, scene.focal_px, identity, expression, scene.width, scene.height, pixels)
    assert valid.all()
    pixels[embedding.contour] = slid
    return scene, pixels


# ----------------------------------------------------------------------------- fast (no rendering)

# The solver's mechanics on exact, noise-free landmarks at the fixed embedded points: no learned correction,
# and the weak priors such data calls for (the default, calibrated priors are for MediaPipe's noisy points).
EXACT = {"correspondence": "embedded", "w_identity": fit.W_IDENTITY_FIXED_POINTS,
         "w_expression": fit.W_EXPRESSION_FIXED_POINTS, "robust_scale": 4.0}



needs_learned = pytest.mark.skipif(not LEARNED_PATH.is_file(), reason="the learned landmark model is not built yet "
                                   "(tools/learn_landmarks.py)")


@needs_learned
def test_learned_landmark_model_is_committed_calibrated_and_left_right_consistent(embedding) -> None:  # type: ignore[no-untyped-def]
    """The learned correspondence (tools/learn_landmarks.py) exists, covers the fixed landmarks only, and was
    calibrated on validation heads; its report shows it explains MediaPipe better than the fixed points."""
    learned = load_landmark_model()
    assert learned is not None and learned.offset.shape == (478, 3)
    assert not learned.corrected[embedding.contour].any() and not learned.corrected[468:].any()
    assert learned.corrected.sum() > 400
    assert np.isfinite(learned.w_identity) and learned.w_identity > 0 and learned.focal_std_scale > 0
    sigma = learned.sigma_pct_iod[learned.corrected]
    assert np.all(sigma > 0) and 0.5 < np.median(sigma) < 10
    report = json.loads(LEARNED_PATH.with_name("landmarks_hm08_learned_report.json").read_text())
    validation = report["validation_pct_iod"]
    assert validation["learned_median"] < validation["embedded_median"]
    assert report["counts"]["validation_views"] >= 30


@needs_learned
def test_fit_explains_landmarks_placed_by_the_learned_model(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """Landmarks where the learned model says MediaPipe puts them (on the mean head: a random identity leaves the
    focal/identity valley to the priors) are met by the learned fit, which recovers pose and focal length; the
    fixed-point fit cannot explain them as well."""
    scene, pixels = _exact_landmarks(model, embedding, seed=4, yaw=25.0, learned=True, mean_shape=True)
    weak = {"w_focal": 0.0, "w_identity": 0.1, "w_expression": 0.01, "robust_scale": 4.0}  # exact data: weak priors
    learned = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=fit.FitOptions(**weak))
    fixed = fit.fit_landmarks(pixels, scene.width, scene.height, model,
                              options=fit.FitOptions(**weak, correspondence="embedded"))
    used = embedding.used() & np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True)
    assert np.median(learned.errors_px[used]) < 0.05
    assert np.median(learned.errors_px[used]) < 0.2 * np.median(fixed.errors_px[used])
    assert abs(learned.focal_px / scene.focal_px - 1) < 0.02
    assert np.abs(np.array(learned.yaw_pitch_roll_deg) - scene.yaw_pitch_roll_deg).max() < 0.5


def test_exif_focal_length_is_a_strong_prior_and_is_reported_as_such(model, embedding) -> None:  # type: ignore[no-untyped-def]
    scene, pixels = _exact_landmarks(model, embedding, seed=6, yaw=10.0)
    known = fit.fit_landmarks(pixels, scene.width, scene.height, model,
                              options=fit.FitOptions(focal_mm=scene.focal_mm, focal_known=True))
    assert known.focal_source == "exif" and abs(known.focal_px / scene.focal_px - 1) < 0.01
    assert known.focal_log_std == pytest.approx(0.05)
    guessed = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=fit.FitOptions(focal_mm=24.0))
    assert guessed.focal_source == "estimated" and 0.01 < guessed.focal_log_std < 1.0


def test_a_known_focal_length_is_a_strong_prior_and_the_estimates_uncertainty_reaches_scene_json(tmp_path, reconstructed_stub) -> None:  # type: ignore[no-untyped-def]
    """EXIF focal lengths themselves are read in tests/test_image.py and reach scene.json in test_photo_sizes.py."""
    from facestage.core.io.result import load, save

    options = fit.FitOptions().with_known_focal(85.0)
    assert options.focal_known and options.focal_mm == 85.0 and not fit.FitOptions().focal_known
    reconstructed_stub.focal_uncertainty_pct = 12.5
    folder = save(reconstructed_stub, tmp_path / "out", force=True)
    camera_doc = json.loads((Path(folder) / "scene.json").read_text())["camera"]
    assert camera_doc["focal_source"] == "estimated" and camera_doc["focal_uncertainty_pct"] == 12.5
    assert load(folder).focal_uncertainty_pct == 12.5


def test_fit_recovers_pose_and_focal_of_the_mean_head_from_exact_landmarks(model, embedding) -> None:  # type: ignore[no-untyped-def]
    scene, pixels = _exact_landmarks(model, embedding, seed=3, mean_shape=True)
    result = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=fit.FitOptions(w_focal=0.0, **EXACT))
    assert result.reprojection_error_px < 0.05
    assert abs(result.focal_px / scene.focal_px - 1) < 0.01
    assert np.abs(np.array(result.yaw_pitch_roll_deg) - scene.yaw_pitch_roll_deg).max() < 0.2
    assert np.abs(result.identity).max() < 0.05 and result.expression.max() < 0.02


def test_landmarks_alone_cannot_tell_focal_length_from_face_shape(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """Why stage 0 keeps a focal prior: with f forced 40 % off, identity and pose still explain exact landmarks."""
    scene, pixels = _exact_landmarks(model, embedding, seed=2, yaw=15.0)
    wrong = fit.FitOptions(focal_mm=1.4 * scene.focal_mm, fit_focal=False, **{**EXACT, "w_identity": 1e-3})
    result = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=wrong)
    assert abs(result.focal_px / scene.focal_px - 1.4) < 1e-6
    assert 100 * result.reprojection_error_px / result.interocular_px < 0.5


def test_fit_world_frame_reprojects_its_own_landmarks(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """world = R·model + t with the Blender camera world_from_camera and K reproduce the fitted pixels."""
    scene, pixels = _exact_landmarks(model, embedding, seed=5, yaw=-25.0)
    result = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=fit.FitOptions(**EXACT))
    faces = np.asarray(model.faces, np.int64)
    world = (result.vertices.astype(np.float64)[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
    again = project_points(world, result.K, result.world_from_camera)
    fixed = np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True)
    assert np.abs(again - result.landmarks_px)[fixed].max() < 1e-3
    assert np.allclose(result.translation, 0) and np.allclose(result.rotation @ result.rotation.T, np.eye(3), atol=1e-9)
    assert np.allclose(result.world_from_camera[:3, :3], camera.FRONTAL_CAMERA_ROTATION)
    assert result.K[0, 2] == scene.width / 2 and result.K[1, 2] == scene.height / 2


def test_contour_landmarks_slide_onto_the_true_jaw_outline(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """Jaw-line landmarks on the true occluding contour of a turned head are met; as fixed points they are not."""
    scene, pixels = _exact_landmarks(model, embedding, seed=1, yaw=28.0, mean_shape=True)
    sliding = fit.fit_landmarks(pixels, scene.width, scene.height, model, options=fit.FitOptions(w_focal=0.0, **EXACT))
    fixed = fit.fit_landmarks(pixels, scene.width, scene.height, model,
                              options=fit.FitOptions(w_focal=0.0, slide_contour=False, **EXACT))
    assert np.median(sliding.errors_px[embedding.contour]) < 0.1
    assert abs(sliding.yaw_pitch_roll_deg[0] - scene.yaw_pitch_roll_deg[0]) < 0.2
    faces = np.asarray(model.faces, np.int64)
    points = (fixed.vertices.astype(np.float64)[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
    fixed_px = project_points(points, fixed.K, fixed.world_from_camera)[embedding.contour]
    assert np.median(np.linalg.norm(fixed_px - pixels[embedding.contour], axis=1)) > 2.0


def test_fit_is_deterministic(model, embedding) -> None:  # type: ignore[no-untyped-def]
    scene, pixels = _exact_landmarks(model, embedding, seed=7)
    noisy = pixels + np.random.Generator(np.random.PCG64(0)).normal(0, 1.0, pixels.shape)
    a = fit.fit_landmarks(noisy, scene.width, scene.height, model)
    b = fit.fit_landmarks(noisy, scene.width, scene.height, model)
    for name in ("identity", "expression", "rotation", "world_from_camera", "vertices", "landmarks_px"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.focal_px == b.focal_px


def test_fit_reports_progress_and_honours_cancel(model, embedding) -> None:  # type: ignore[no-untyped-def]
    scene, pixels = _exact_landmarks(model, embedding, seed=2)
    reports = []
    fit.fit_landmarks(pixels, scene.width, scene.height, model, progress=reports.append)
    assert reports and all(r.stage == "landmarks" for r in reports)
    assert [r.step for r in reports] == sorted(r.step for r in reports) and reports[-1].step <= reports[-1].total
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        fit.fit_landmarks(pixels, scene.width, scene.height, model, cancel=cancel)


def test_draw_landmarks_marks_detected_and_fitted_points_in_two_colours() -> None:
    photo = np.full((100, 120, 3), 0.5, np.float32)
    detected = np.full((N_LANDMARKS, 2), 30.0)
    fitted = np.full((N_LANDMARKS, 2), 80.0)
    image = draw_landmarks(photo, detected, fitted)
    assert image.shape == photo.shape and image.dtype == np.float32
    green, magenta = image[30, 30], image[80, 80]
    assert green[1] > 0.8 and green[0] < 0.3
    assert magenta[0] > 0.9 and magenta[2] > 0.8 and magenta[1] < 0.3
    assert np.allclose(image[5, 110], 0.5, atol=1 / 255)


# ----------------------------------------------------------------------------- on rendered scenes
#
# The issue-5 thresholds below are asserted exactly as written and do not hold yet: MediaPipe puts its
# landmarks 4–12 % of the eye distance away from the embedded surface points on heads drawn at ±1.5 std
# from this head model's prior (bench/fit.py: detection_error_pct_iod), and landmarks cannot separate
# focal length from face depth. They are strict xfails carrying the measured numbers (seeds 0–7, MediaPipe
# 0.10.21), so a method that meets a threshold turns its test into a failure that asks for the marker to go.


def _measured(reason: str):  # type: ignore[no-untyped-def]
    return pytest.mark.xfail(strict=True, reason=f"not met yet; measured {reason}")


@pytest.mark.slow
def test_stage0_explains_the_detected_landmarks(scenes, fitted, model, embedding) -> None:  # type: ignore[no-untyped-def]
    """With fixed points and weak priors the solver follows MediaPipe's points closely (its capacity); the default
    fit (learned correspondence, priors calibrated on validation heads) deliberately follows them less, since
    MediaPipe scatters ~5 % of the eye distance per axis on these heads (the learned noise model)."""
    from ground_truth import fit_metrics

    errors = []
    for loaded, landmarks, *_ in fitted:
        result = fit.fit_landmarks(landmarks.points, loaded.scene.width, loaded.scene.height, model,
                                   options=fit.FitOptions(**EXACT))
        errors.append(fit_metrics(result, loaded, model, embedding)["landmark_error_pct_iod"])
    assert len(errors) >= 8
    assert np.median(errors) <= 1.6 and max(errors) <= 2.5, errors
    default = [m["landmark_error_pct_iod"] for *_, m in fitted]
    assert np.median(default) <= 3.0 and max(default) <= 4.0, default


@pytest.mark.slow
def test_stage0_focal_length_is_closer_than_the_prior_centre_alone(fitted) -> None:  # type: ignore[no-untyped-def]
    """Landmarks barely tell focal length from depth, so an estimate that strays further from the truth than the
    prior's centre (50 mm) is worse than no estimate: it puts the head at the wrong distance for camera-frame
    lights. Measured rms error of log f on these heads: 0.25 with the calibrated prior, 0.29 for 50 mm alone,
    0.35 with the weak prior it replaced."""
    fitted_log = [math.log1p(m["focal_error_pct"] / 100) for *_, m in fitted]
    centre_log = [math.log(camera.focal_from_35mm(fit.DEFAULT_FOCAL_MM, loaded.scene.width, loaded.scene.height)
                           / loaded.scene.focal_px) for loaded, *_ in fitted]
    assert np.sqrt(np.mean(np.square(fitted_log))) < np.sqrt(np.mean(np.square(centre_log))), (fitted_log, centre_log)


@pytest.mark.slow
def test_stage0_face_shape_beats_the_unfitted_mean_head(fitted) -> None:  # type: ignore[no-untyped-def]
    fitted_mm = np.array([m["vertex_error_mm"] for *_, m in fitted])
    mean_mm = np.array([m["mean_head_vertex_error_mm"] for *_, m in fitted])
    assert fitted_mm.mean() < 0.9 * mean_mm.mean(), (fitted_mm, mean_mm)


@pytest.mark.slow
@_measured("per-scene median 1.7–2.8 % (median 2.2 %) with the learned correspondence and calibrated priors "
           "(fixed points, weak priors: 1.2–2.1 %)")
def test_stage0_median_landmark_error_is_below_1_5_percent_of_eye_distance(fitted) -> None:  # type: ignore[no-untyped-def]
    errors = [m["landmark_error_pct_iod"] for *_, m in fitted]
    assert len(errors) >= 8
    assert max(errors) <= 1.5, errors


@pytest.mark.slow
@_measured("3.6–5.4 mm (median 4.4 mm; the unfitted mean head: 3.9–7.1 mm, median 5.5 mm)")
def test_stage0_face_shape_is_within_3_mm_after_similarity_alignment(fitted) -> None:  # type: ignore[no-untyped-def]
    errors = [m["vertex_error_mm"] for *_, m in fitted]
    assert max(errors) <= 3.0, errors


@pytest.mark.slow
@_measured("|error| 0.6–33 % (median 20 %): the calibrated prior holds f near 50 mm, as landmarks barely "
           "tell focal length from depth (the weak prior before it: 0.3–46 %, median 13 %, and 4.2x on a held-out head)")
def test_stage0_focal_length_is_within_15_percent(fitted) -> None:  # type: ignore[no-untyped-def]
    errors = [m["focal_error_pct"] for *_, m in fitted]
    assert max(abs(e) for e in errors) <= 15.0, errors


@pytest.mark.slow
@_measured("max |error| yaw 3.7°, pitch 15.3°, roll 3.4° (medians 0.9°, 4.1°, 1.5°)")
def test_stage0_yaw_pitch_roll_are_within_3_degrees(fitted) -> None:  # type: ignore[no-untyped-def]
    errors = [(m["yaw_error_deg"], m["pitch_error_deg"], m["roll_error_deg"]) for *_, m in fitted]
    assert np.abs(np.array(errors)).max() <= 3.0, errors


def test_outline_term_weighs_the_jaw_only_where_it_meets_the_background() -> None:
    """The outline band follows the jaw-line landmarks and drops out where the person mask runs on past the
    face (hair, neck): there the outline is not seen against the background."""
    from facestage.core.fit import silhouette

    size = 200
    points = np.full((N_LANDMARKS, 2), 100.0)
    angles = np.linspace(np.pi, 0.0, len(silhouette.OUTLINE))  # ear to ear round the chin (y down)
    points[list(silhouette.OUTLINE)] = np.stack([100 + 60 * np.cos(angles), 100 + 60 * np.sin(angles)], 1)
    points[:, 0] = np.clip(points[:, 0], 40, 160)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    head = ((xx - 100) ** 2 + (yy - 100) ** 2 <= 60 ** 2).astype(np.float32)
    hair = head.copy()
    hair[:, 100:] = np.maximum(hair[:, 100:], (yy[:, 100:] > 40).astype(np.float32))  # right half: person all the way
    photo = np.zeros((size, size, 3), np.float32)
    term = silhouette.outline(photo, points, person=hair)
    assert term.weight[:, :90].sum() > 100 and term.weight[:, 115:].sum() == 0  # hair on the right: no band there
    near_jaw = np.abs(np.hypot(xx - 100, yy - 100) - 60) <= 8
    assert np.all(term.weight[~near_jaw] == 0)
    assert np.array_equal(term.target, hair)


def _heldout_ratios_to_mean_head(model, landmarks, options: fit.FitOptions) -> list[float]:  # type: ignore[no-untyped-def]
    """Stage 0's face-region error over the unfitted mean head's (same similarity alignment) on held-out heads
    0-2 (tools/head_sets.py, rendered by our own renderer), from `landmarks(loaded scene)`."""
    import head_sets
    from ground_truth import face_region_mask, load_scene
    from shape_metrics import face_errors

    mask = face_region_mask(model)
    mean = np.asarray(model.vertices, np.float64)
    ratios = []
    for folder in head_sets.ensure_heldout(3):
        loaded = load_scene(folder)
        result = fit.fit_landmarks(landmarks(loaded), loaded.scene.width, loaded.scene.height, model, options=options)
        truth = loaded.vertices.astype(np.float64)
        ratios.append(face_errors(np.asarray(result.vertices, np.float64), truth, mask).mean()
                      / face_errors(mean, truth, mask).mean())
    return ratios


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 20 open: stage 0 alone is 1.08x the mean head's error on held-out head 0 "
                   "(ratios 1.08, 0.97, 0.82 after the merge; the fast pipeline beat it on all 22 benchmark heads at "
                   "94cf9b1, on today's renders it is worse than the mean head on 4: README \"Geometry\")")
def test_stage0_fit_beats_the_mean_head_on_heldout_synthetic_heads(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """On held-out heads no tool learned from (tools/head_sets.py, rendered by our own renderer, MediaPipe on the
    render), the landmark fit's face-region shape is closer to the truth than the unfitted mean head on average
    (by 5 %), and worse on no scene by more than 2 %, after the same similarity alignment. Measured with the
    committed model: ratios 1.012, 0.911, 0.796, so stage 0 alone does not yet meet the issue's "never worse
    than the mean head" on the 0.35-σ head of scene 0 (bench/geometry.py reports the whole held-out set)."""
    import head_sets

    def mediapipe(loaded) -> np.ndarray:  # type: ignore[no-untyped-def]
        points = head_sets.detections(loaded.folder)
        assert points is not None
        return points

    ratios = _heldout_ratios_to_mean_head(model, mediapipe, fit.FitOptions())
    assert np.mean(ratios) < 0.95 and max(ratios) < 1.02, ratios


@pytest.mark.slow
def test_stage0_from_a_perfect_detector_beats_the_mean_head_by_half(model, embedding) -> None:  # type: ignore[no-untyped-def]
    """What limits the geometry is the detector, not the model, its prior or the solver: fed the true projections
    of the embedded points (what a detector without error would report) instead of MediaPipe's, stage 0 reaches
    the issue's target on the same held-out heads. Measured: ratios 0.368, 0.408, 0.346 on heads 0-2 (0.38 mean
    over all 22, 1.42 mm; MediaPipe's points 0.86; bench/geometry.py --landmarks true)."""
    from ground_truth import true_landmarks_px

    ratios = _heldout_ratios_to_mean_head(model, lambda loaded: true_landmarks_px(loaded, model, embedding),
                                          fit.FitOptions(correspondence="embedded"))
    assert max(ratios) < 0.5, ratios


def test_tuning_heads_are_drawn_like_the_heldout_heads_from_other_seeds(model) -> None:  # type: ignore[no-untyped-def]
    """Settings are chosen on the tuning set and reported on the held-out one: same sampler, disjoint seeds."""
    import head_sets

    for index in range(3):
        held, tuning = head_sets.heldout_scene(model, index), head_sets.heldout_scene(model, index, "tuning")
        assert (held.extra["set"], tuning.extra["set"]) == ("heldout", "tuning")
        assert held.extra["identity_scale"] == tuning.extra["identity_scale"] == head_sets.HELDOUT_SCALES[index]
        assert held.seed != tuning.seed and not np.allclose(held.identity, tuning.identity)
        assert (held.width, held.samples) == (tuning.width, tuning.samples)
