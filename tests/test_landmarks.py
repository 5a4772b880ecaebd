"""Landmark detection on renders of the head model, and the embedding that ties landmarks to its surface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facestage.core.common.errors import FaceStageError
from facestage.core.fit.embedding import GROUP_NAMES, load_embedding
from facestage.core.fit.landmarks import FACE_OVAL, detect
from ground_truth import true_landmarks_px

ROOT = Path(__file__).resolve().parents[1]


def test_embedding_file_ties_every_landmark_to_the_head_surface(model) -> None:  # type: ignore[no-untyped-def]
    embedding = load_embedding()
    assert embedding.faces.shape == (478,) and embedding.bary.shape == (478, 3)
    assert embedding.vertex_count == np.asarray(model.faces).max() + 1
    assert embedding.faces.min() >= 0 and embedding.faces.max() < len(model.faces)
    assert np.allclose(embedding.bary.sum(1), 1, atol=1e-5) and embedding.bary.min() >= -1e-6
    assert np.all((embedding.weights > 0) & (embedding.weights <= 1))
    assert set(embedding.contour.tolist()) <= set(FACE_OVAL) and 152 in embedding.contour
    assert len(embedding.band_vertices) > 50
    report = json.loads((ROOT / "core" / "model" / "data" / "landmarks_hm08_report.json").read_text())
    assert len(report["spread_mm"]) == 478 and report["summary"]["spread_mm_median"] < 5.0


def test_embedded_landmarks_are_left_right_mirror_images(model) -> None:  # type: ignore[no-untyped-def]
    """MediaPipe's mesh is symmetric; so must the embedded points be (to a few mm), or the fit would be biased."""
    embedding = load_embedding()
    faces = np.asarray(model.faces, np.int64)
    mean = np.asarray(getattr(model, "mean_vertices", model.vertices), np.float64)
    points = (mean[faces[embedding.faces]] * embedding.bary[..., None]).sum(1)
    pairs = [(33, 263), (133, 362), (61, 291), (70, 300), (105, 334), (50, 280), (129, 358), (159, 386), (145, 374)]
    for right, left in pairs:
        mirrored = points[left] * [-1, 1, 1]
        assert np.linalg.norm(points[right] - mirrored) < 0.004, (right, left, points[right], points[left])


@pytest.mark.slow
def test_detection_on_a_synthetic_render_lands_on_the_embedded_points(scenes, model) -> None:  # type: ignore[no-untyped-def]
    """Well-defined landmarks (embedding weight > 0.5) land a few pixels from their true surface points.

    Faces are 150–240 px wide here; the residual is MediaPipe's own idea of where e.g. a nose-wing point
    sits on an unusual face, not noise (measured: per-scene means 2.6–7.1 px, median 5.0).
    """
    embedding = load_embedding()
    fixed = np.isin(np.arange(478), embedding.contour, invert=True) & (embedding.group != GROUP_NAMES.index("iris"))
    distances = []
    for loaded in scenes:
        detected = detect(loaded.image_srgb, source="scene").points
        truth = true_landmarks_px(loaded, model, embedding)
        distances.append(float(np.mean(np.linalg.norm(detected - truth, axis=1)[fixed & (embedding.weights > 0.5)])))
    assert np.median(distances) < 6.0 and max(distances) < 8.0, distances


def test_several_faces_take_the_largest_with_a_warning_and_face_index_picks_another(scenes) -> None:  # type: ignore[no-untyped-def]
    big = (scenes[0].image_srgb * 255).round().astype(np.uint8)
    canvas = Image.new("RGB", (1024, 512), (40, 40, 40))
    canvas.paste(Image.fromarray(big), (0, 0))
    canvas.paste(Image.fromarray(big).resize((300, 300), Image.Resampling.LANCZOS), (650, 100))
    pixels = np.asarray(canvas, np.float32) / 255
    largest = detect(pixels, source="two.png")
    assert largest.face_count == 2 and any("2 faces" in w for w in largest.warnings)
    assert largest.points[:, 0].max() < 512
    other = detect(pixels, source="two.png", face_index=1)
    assert other.points[:, 0].min() > 640 and not other.warnings
    with pytest.raises(FaceStageError, match="Face index 2"):
        detect(pixels, source="two.png", face_index=2)


def test_no_face_raises_a_clear_error() -> None:
    y, x = np.mgrid[0:256, 0:256] / 255.0
    pixels = np.stack([x, y, 0.5 * np.ones_like(x)], -1).astype(np.float32)
    with pytest.raises(FaceStageError, match=r"^No face found in empty\.png"):
        detect(pixels, source="empty.png")


def test_a_tiny_face_raises_a_clear_error(scenes) -> None:  # type: ignore[no-untyped-def]
    small = Image.fromarray((scenes[1].image_srgb * 255).round().astype(np.uint8)).resize((96, 96), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (640, 640), (40, 40, 40))
    canvas.paste(small, (272, 272))
    with pytest.raises(FaceStageError, match=r"tiny\.png") as error:
        detect(np.asarray(canvas, np.float32) / 255, source="tiny.png")
    assert "pixels wide" in str(error.value) or "No face found" in str(error.value)


def test_detection_is_deterministic(scenes) -> None:  # type: ignore[no-untyped-def]
    a = detect(scenes[2].image_srgb, source="a").points
    b = detect(scenes[2].image_srgb, source="a").points
    assert np.array_equal(a, b)


def test_backprojection_helpers_find_first_hits_and_closest_points(load_tool) -> None:  # type: ignore[no-untyped-def]
    tool = load_tool("embed_landmarks")
    triangles = np.array([[[0, 0, 1.0], [1, 0, 1], [0, 1, 1]], [[0, 0, 2.0], [1, 0, 2], [0, 1, 2]]])
    t, f, bary = tool.ray_mesh(np.zeros((1, 3)), np.array([[0.2, 0.2, 1.0]]) / np.linalg.norm([0.2, 0.2, 1.0]), triangles)
    assert f[0] == 0 and np.isclose(t[0], np.linalg.norm([0.2, 0.2, 1.0]))
    assert np.allclose(bary[0], [0.6, 0.2, 0.2])
    point, f, bary = tool.closest_on_mesh(np.array([[2.0, 2.0, 1.4]]), triangles)
    assert f[0] == 0 and np.allclose(point[0], [0.5, 0.5, 1.0]) and np.allclose(bary[0], [0, 0.5, 0.5])
