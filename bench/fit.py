"""Benchmark: stage 0 (landmark fit) accuracy on synthetic ground truth, and its time on a 1024-px photo.

    python bench/fit.py [--seeds 0-11] [--repeats 5]

Accuracy: the synthetic scenes of tools/synthetic.py (rendered once with the bpy module and cached in the
temp dir) go through MediaPipe detection and `core.fit.fit_landmarks`; per scene and as median/max it
reports the landmark reprojection error (% of the inter-ocular distance), the mean face-region vertex
error after a similarity alignment (and the same for the unfitted mean head, the floor to beat), the
focal-length error and the yaw/pitch/roll errors, against the thresholds of issue 5.

Timing: one 1024×1024 synthetic render and the bundled sample photo; detection and fit are timed
separately (median of --repeats after a warm-up) with the load average recorded (shared machine).
Prints and writes bench/results/fit.json.
"""

from __future__ import annotations

import os

import facestage  # noqa: F401  (before torch: it sets torch's threading environment)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT.parent), str(ROOT / "tools")):  # facestage, and tools/ground_truth.py + tools/synthetic.py
    if path not in sys.path:
        sys.path.insert(0, path)

from facestage.core.fit import solver as fit  # noqa: E402
from facestage.core.model.head import load_head_model  # noqa: E402
from facestage.core.io.image import load_photo  # noqa: E402
from facestage.core.fit.embedding import GROUP_NAMES, LandmarkEmbedding, load_embedding  # noqa: E402
from facestage.core.fit.landmarks import N_LANDMARKS, detect, interocular_px  # noqa: E402
import synthetic  # noqa: E402
from ground_truth import fit_metrics, load_scene, true_landmarks_px  # noqa: E402

THRESHOLDS = {"landmark_error_pct_iod": 1.5, "vertex_error_mm": 3.0, "focal_error_pct": 15.0, "yaw_error_deg": 3.0,
              "pitch_error_deg": 3.0, "roll_error_deg": 3.0}
METRICS = ("landmark_error_pct_iod", "gt_landmark_error_pct_iod", "detection_error_pct_iod", "vertex_error_mm",
           "mean_head_vertex_error_mm", "focal_error_pct", "yaw_error_deg", "pitch_error_deg", "roll_error_deg", "seconds")


def _detection_error(loaded: Any, detected: np.ndarray, model: Any, embedding: LandmarkEmbedding) -> float:
    """Median distance of the detected landmarks to the true projections of their embedded points (% IOD)."""
    truth = true_landmarks_px(loaded, model, embedding)
    fixed = np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True) & (embedding.group != GROUP_NAMES.index("iris"))
    return float(100 * np.median(np.linalg.norm(detected - truth, axis=1)[fixed]) / interocular_px(truth))


def accuracy(seeds: list[int], model: Any, embedding: LandmarkEmbedding) -> dict[str, Any]:
    tool = synthetic
    scenes = []
    for folder in tool.ensure_scenes(seeds):
        loaded = load_scene(folder)
        landmarks = detect(loaded.image_srgb, source=str(folder))
        result = fit.fit_landmarks(landmarks.points, loaded.scene.width, loaded.scene.height, model)
        metrics = fit_metrics(result, loaded, model, embedding)
        metrics["detection_error_pct_iod"] = _detection_error(loaded, landmarks.points, model, embedding)
        yaw, pitch, roll = loaded.scene.yaw_pitch_roll_deg
        scenes.append({"seed": loaded.scene.seed, "yaw": round(yaw, 2), "pitch": round(pitch, 2), "roll": round(roll, 2),
                       "focal_mm": round(loaded.scene.focal_mm, 2), "fitted_focal_mm": round(result.focal_mm, 2),
                       **{k: round(float(v), 3) for k, v in metrics.items()}})
        print(f"seed {loaded.scene.seed:3d}: " + " ".join(f"{k} {metrics[k]:.2f}" for k in METRICS), flush=True)
    summary = {}
    for key in METRICS:
        values = np.abs([s[key] for s in scenes])
        summary[key] = {"median": round(float(np.median(values)), 3), "max": round(float(values.max()), 3)}
    checks = {key: {"threshold": limit, "holds_for_every_scene": bool(summary[key]["max"] <= limit)}
              for key, limit in THRESHOLDS.items()}
    return {"scenes": scenes, "summary": summary, "thresholds": checks}


def _time(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timing(model: Any, repeats: int) -> dict[str, Any]:
    tool = synthetic
    photos = {"synthetic_1024": load_scene(tool.ensure_scenes([100], size=1024)[0]).image_srgb,
              "sample_astronaut_512": load_photo(ROOT / "samples" / "astronaut.jpg").pixels}
    out: dict[str, Any] = {}
    for name, pixels in photos.items():
        height, width = pixels.shape[:2]
        points = detect(pixels, source=name).points
        result = fit.fit_landmarks(points, width, height, model)
        out[name] = {
            "size": [width, height],
            "detect_s": round(_time(lambda: detect(pixels, source=name), repeats), 4),
            "fit_s": round(_time(lambda: fit.fit_landmarks(points, width, height, model), repeats), 4),
            "iterations": result.iterations,
            "median_landmark_error_px": round(result.reprojection_error_px, 3),
            "focal_mm": round(result.focal_mm, 2),
        }
        print(f"{name}: {out[name]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-11")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fit.json")
    args = parser.parse_args(argv)
    seeds = synthetic.parse_seeds(args.seeds)
    model = load_head_model()
    embedding = load_embedding()
    report = {
        "benchmark": "stage 0 landmark fit (core/fit/solver.py)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "options": {k: v for k, v in fit.FitOptions().__dict__.items() if k != "group_weights"},
        "group_weights": dict(fit.FitOptions().group_weights),
        "timing": timing(model, args.repeats),
        "accuracy": accuracy(seeds, model, embedding),
    }
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["accuracy"]["summary"], indent=1))
    print(json.dumps(report["accuracy"]["thresholds"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
