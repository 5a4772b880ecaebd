"""Benchmark: the fitted head's geometry against ground truth on held-out synthetic heads, fit vs. mean head.

    python bench/geometry.py [--scenes 24] [--mode stage0|pipeline] [--quality default] [--focal estimate|exif]
                             [--correspondence learned|embedded] [--renderer core|cycles] [--set heldout|tuning]
                             [--landmarks mediapipe|true] [--label TEXT]

Scenes: tools/head_sets.py `heldout_scene` (seeds no tool ever learned from; identity at 0.35, 0.5 and 0.7
standard deviations of the prior in turn; `--set tuning` draws the same kind of scene from other seeds, for
choosing settings without looking at the reported heads), rendered once (the project's renderer by default,
`--renderer cycles` for Blender's) and cached in the temp folder. `--mode stage0` fits the landmarks only
(core/fit/solver.py, seconds a scene); `--mode pipeline` runs `python -m facestage reconstruct` and measures its
output (minutes a scene). `--focal exif` hands the solver the true focal length as an EXIF
value would; `estimate` (default) does not. `--landmarks true` (stage 0) replaces MediaPipe's points by the true
projections of the embedded points: what the landmark fit could reach with a perfect detector.

Measures (tools/shape_metrics.py; each applied identically to the fit and to the unfitted mean head, on the same
vertices): face-region vertex error after a similarity alignment, REALY-style per-region errors, NoW-style
scan-to-mesh median/mean/std after 7-landmark + ICP alignment; and for the fit alone the reprojection error of
the embedded landmark points (% of the inter-ocular distance, fitted camera vs true camera), yaw/pitch/roll and
focal errors. Appends a run to bench/results/geometry.json (earlier runs kept) and writes
bench/results/geometry.md.
"""

from __future__ import annotations

import facestage  # noqa: F401  (before torch: it sets torch's threading environment)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
for path in (str(ROOT.parent), str(ROOT / "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)

import head_sets  # noqa: E402
import shape_metrics  # noqa: E402
from ground_truth import LoadedScene, face_region_mask, load_scene, project_points, true_landmarks_px  # noqa: E402

from facestage.core.fit import solver  # noqa: E402
from facestage.core.fit.embedding import GROUP_NAMES, LandmarkEmbedding, load_embedding  # noqa: E402
from facestage.core.fit.landmarks import N_LANDMARKS, interocular_px  # noqa: E402
from facestage.core.model import camera  # noqa: E402
from facestage.core.model.head import HeadModel, load_head_model  # noqa: E402

TARGETS = {"vertex_error_vs_mean_head": 0.5, "vertex_error_mm": 1.5, "scenes_worse_than_mean_head": 0,
           "reprojection_pct_iod": 2.0, "pose_error_deg": 3.0}


def _pose_angles(camera_from_model: np.ndarray) -> np.ndarray:
    return np.array(camera.yaw_pitch_roll(camera.world_pose(camera_from_model)[0]))


def measure(loaded: LoadedScene, vertices: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
            camera_from_model: np.ndarray, model: HeadModel, embedding: LandmarkEmbedding) -> dict[str, Any]:
    """Every geometry number of one estimate (world-space vertices + camera) against the scene's truth."""
    scene = loaded.scene
    truth = loaded.vertices.astype(np.float64)
    vertices = np.asarray(vertices, np.float64)
    mean = np.asarray(model.vertices, np.float64)
    faces = np.asarray(model.faces, np.int64)
    mask = face_region_mask(model)
    regions = shape_metrics.region_masks(model)
    now_ids = list(shape_metrics.NOW_LANDMARKS)
    now = {}
    for name, estimate in (("fit", vertices), ("mean_head", mean)):
        distances = shape_metrics.now_errors(estimate, truth, faces, embedding.faces[now_ids], embedding.bary[now_ids])
        now[name] = {k: round(v, 3) for k, v in shape_metrics.summary_mm(distances).items()}
    fit_error = 1000 * shape_metrics.face_errors(vertices, truth, mask).mean()
    mean_error = 1000 * shape_metrics.face_errors(mean, truth, mask).mean()

    true_px = true_landmarks_px(loaded, model, embedding)
    fitted_px = project_points(shape_metrics.embedded_points(vertices, faces, embedding.faces, embedding.bary), K,
                               world_from_camera)
    fixed = np.isin(np.arange(N_LANDMARKS), embedding.contour, invert=True) & (embedding.group != GROUP_NAMES.index("iris"))
    truth_pose = camera.camera_from_world_pose(np.asarray(scene.rotation), np.asarray(scene.translation),
                                               np.asarray(scene.world_from_camera))
    angles = (_pose_angles(camera_from_model) - _pose_angles(truth_pose) + 180) % 360 - 180
    focal_mm = camera.focal_to_35mm(float(K[0][0]), scene.width, scene.height)
    yaw, pitch, roll = scene.yaw_pitch_roll_deg
    return {
        "scene": loaded.folder.name, "identity_scale": scene.extra.get("identity_scale"),
        "yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1), "focal_mm": round(scene.focal_mm, 1),
        "vertex_error_mm": round(fit_error, 3), "mean_head_error_mm": round(mean_error, 3),
        "ratio": round(fit_error / mean_error, 3),
        "regions_mm": {name: round(1000 * v, 3) for name, v in
                       shape_metrics.region_errors(vertices, truth, regions).items()},
        "mean_head_regions_mm": {name: round(1000 * v, 3) for name, v in
                                 shape_metrics.region_errors(mean, truth, regions).items()},
        "now_mm": now["fit"], "mean_head_now_mm": now["mean_head"],
        "reprojection_pct_iod": round(float(100 * np.median(np.linalg.norm(fitted_px - true_px, axis=1)[fixed])
                                            / interocular_px(true_px)), 3),
        "yaw_error_deg": round(float(angles[0]), 2), "pitch_error_deg": round(float(angles[1]), 2),
        "roll_error_deg": round(float(angles[2]), 2),
        "fitted_focal_mm": round(focal_mm, 2), "focal_error_pct": round(100 * (focal_mm / scene.focal_mm - 1), 2),
    }


def run_stage0(loaded: LoadedScene, points: np.ndarray, model: HeadModel, focal: str, correspondence: str
               ) -> tuple[dict[str, Any], float]:
    options = solver.FitOptions(correspondence=correspondence)
    if focal == "exif":
        options = solver.FitOptions(correspondence=correspondence, focal_mm=loaded.scene.focal_mm,
                                    focal_known=True)
    start = time.perf_counter()
    result = solver.fit_landmarks(points, loaded.scene.width, loaded.scene.height, model, options=options)
    seconds = time.perf_counter() - start
    extra = {"focal_uncertainty_pct": round(100 * result.focal_log_std, 2), "focal_source": result.focal_source}
    return {"vertices": result.vertices, "K": result.K, "world_from_camera": result.world_from_camera,
            "camera_from_model": result.camera_from_model, **extra}, seconds


def run_pipeline(loaded: LoadedScene, quality: str, label: str) -> tuple[dict[str, Any], float]:
    from facestage.core.io.result import load

    slug = "".join(c if c.isalnum() else "_" for c in label).strip("_")
    out = loaded.folder / f"reconstruction_{quality}_{slug}"
    start = time.perf_counter()
    for _attempt in range(2):  # once more after a failure: on a shared machine a run can be killed for memory
        if (out / "scene.json").is_file():
            break
        done = subprocess.run([sys.executable, "-m", "facestage", "reconstruct", str(loaded.folder / "image.png"), "-o",
                               str(out), "--quality", quality, "--seed", "0", "--no-blend", "--force"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if "step/s" not in line]
            logging.warning("%s: reconstruction failed (exit %d): %s", loaded.folder.name, done.returncode, lines[-1:])
    if not (out / "scene.json").is_file():
        raise RuntimeError(f"{loaded.folder.name}: reconstruction failed twice")
    seconds = time.perf_counter() - start
    result = load(out)
    doc = json.loads((out / "scene.json").read_text())
    pose = camera.camera_from_world_pose(result.rotation, result.translation, result.world_from_camera)
    cam = doc.get("camera", {})
    return {"vertices": result.vertices, "K": result.K, "world_from_camera": result.world_from_camera,
            "camera_from_model": pose, "focal_source": cam.get("focal_source"),
            "focal_uncertainty_pct": cam.get("focal_uncertainty_pct")}, float(doc["timings"].get("total", seconds))


def summarise(scenes: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return float(np.mean([s[key] for s in scenes]))

    fit, mean_head = mean("vertex_error_mm"), mean("mean_head_error_mm")
    worse = [s["scene"] for s in scenes if s["vertex_error_mm"] > s["mean_head_error_mm"]]
    pose = max(abs(s[k]) for s in scenes for k in ("yaw_error_deg", "pitch_error_deg", "roll_error_deg"))
    out: dict[str, Any] = {
        "vertex_error_mm": round(fit, 3), "mean_head_error_mm": round(mean_head, 3),
        "vertex_error_vs_mean_head": round(fit / mean_head, 3), "scenes_worse_than_mean_head": len(worse),
        "worse_scenes": worse, "better_scenes": sum(s["vertex_error_mm"] < s["mean_head_error_mm"] for s in scenes),
        "reprojection_pct_iod": round(mean("reprojection_pct_iod"), 3),
        "reprojection_pct_iod_max": round(max(s["reprojection_pct_iod"] for s in scenes), 3),
        "pose_error_deg": round(pose, 2),
        "pose_error_deg_median": {k: round(float(np.median(np.abs([s[k] for s in scenes]))), 2)
                                  for k in ("yaw_error_deg", "pitch_error_deg", "roll_error_deg")},
        "focal_error_pct_median": round(float(np.median(np.abs([s["focal_error_pct"] for s in scenes]))), 2),
        "regions_mm": {r: round(float(np.mean([s["regions_mm"][r] for s in scenes])), 3) for r in scenes[0]["regions_mm"]},
        "mean_head_regions_mm": {r: round(float(np.mean([s["mean_head_regions_mm"][r] for s in scenes])), 3)
                                 for r in scenes[0]["mean_head_regions_mm"]},
        "now_mm": {k: round(float(np.mean([s["now_mm"][k] for s in scenes])), 3) for k in ("median", "mean", "std")},
        "mean_head_now_mm": {k: round(float(np.mean([s["mean_head_now_mm"][k] for s in scenes])), 3)
                             for k in ("median", "mean", "std")},
        "seconds": round(mean("seconds"), 2),
    }
    for scale in head_sets.HELDOUT_SCALES:
        name = f"identity_scale_{scale}"
        group = [s for s in scenes if s["identity_scale"] == scale]
        if group:
            a, b = np.mean([s["vertex_error_mm"] for s in group]), np.mean([s["mean_head_error_mm"] for s in group])
            out[name] = {"scenes": len(group), "vertex_error_mm": round(float(a), 3), "mean_head_error_mm": round(float(b), 3),
                         "ratio": round(float(a / b), 3)}
    coverage = [abs(np.log1p(s["focal_error_pct"] / 100)) <= s["focal_uncertainty_pct"] / 100 for s in scenes
                if s.get("focal_uncertainty_pct")]
    if coverage:
        out["focal_within_1_sigma"] = round(float(np.mean(coverage)), 3)
    out["met"] = {
        "vertex_error_vs_mean_head": out["vertex_error_vs_mean_head"] <= TARGETS["vertex_error_vs_mean_head"],
        "vertex_error_mm": out["vertex_error_mm"] <= TARGETS["vertex_error_mm"],
        "scenes_worse_than_mean_head": out["scenes_worse_than_mean_head"] <= TARGETS["scenes_worse_than_mean_head"],
        "reprojection_pct_iod": out["reprojection_pct_iod"] <= TARGETS["reprojection_pct_iod"],
        "pose_error_deg": out["pose_error_deg"] <= TARGETS["pose_error_deg"],
    }
    return out


def markdown(run: dict[str, Any]) -> str:
    head = ("| scene | id scale | yaw | fit mm | mean head mm | ratio | nose | mouth | forehead | cheeks | NoW med/mean/std "
            "| reproj % IOD | Δyaw/pitch/roll ° | focal err % |")
    lines = [head, "|" + "---|" * 14]
    for s in run["scenes"]:
        r, n = s["regions_mm"], s["now_mm"]
        lines.append(f"| {s['scene']} | {s['identity_scale']} | {s['yaw']:+.0f} | {s['vertex_error_mm']:.2f} | "
                     f"{s['mean_head_error_mm']:.2f} | {s['ratio']:.2f} | {r['nose']:.2f} | {r['mouth']:.2f} | "
                     f"{r['forehead']:.2f} | {r['cheeks']:.2f} | {n['median']:.2f}/{n['mean']:.2f}/{n['std']:.2f} | "
                     f"{s['reprojection_pct_iod']:.2f} | {s['yaw_error_deg']:+.1f}/{s['pitch_error_deg']:+.1f}/"
                     f"{s['roll_error_deg']:+.1f} | {s['focal_error_pct']:+.0f} |")
    m = run["summary"]
    r, n, rm, nm = m["regions_mm"], m["now_mm"], m["mean_head_regions_mm"], m["mean_head_now_mm"]
    lines.append(f"| **mean** | | | **{m['vertex_error_mm']:.2f}** | {m['mean_head_error_mm']:.2f} | "
                 f"**{m['vertex_error_vs_mean_head']:.2f}** | {r['nose']:.2f} | {r['mouth']:.2f} | {r['forehead']:.2f} | "
                 f"{r['cheeks']:.2f} | {n['median']:.2f}/{n['mean']:.2f}/{n['std']:.2f} | {m['reprojection_pct_iod']:.2f} | "
                 f"max {m['pose_error_deg']:.1f} | med {m['focal_error_pct_median']:.0f} |")
    lines.append(f"| mean head | | | | | | {rm['nose']:.2f} | {rm['mouth']:.2f} | {rm['forehead']:.2f} | {rm['cheeks']:.2f} | "
                 f"{nm['median']:.2f}/{nm['mean']:.2f}/{nm['std']:.2f} | | | |")
    met = ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in m["met"].items())
    groups = "; ".join(f"identity {scale} σ: {m[name]['vertex_error_mm']:.2f} vs {m[name]['mean_head_error_mm']:.2f} mm "
                       f"(ratio {m[name]['ratio']:.2f})" for scale in head_sets.HELDOUT_SCALES
                       if (name := f"identity_scale_{scale}") in m)
    return (f"Run `{run['label']}` ({run['date']}, {run['mode']}, renderer {run.get('renderer', 'cycles')}, focal {run['focal']}, correspondence "
            f"{run['correspondence']}, landmarks {run.get('landmarks', 'mediapipe')}, {len(run['scenes'])} "
            f"{run.get('set', 'heldout')} scenes; worse than the mean head on "
            f"{m['scenes_worse_than_mean_head']}; no face found on {len(m.get('no_face', []))}). {groups}. "
            f"Targets: {met}.\n\n" + "\n".join(lines) + "\n")


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars a measure may leave behind."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--mode", choices=("stage0", "pipeline"), default="stage0")
    parser.add_argument("--quality", default="default")
    parser.add_argument("--focal", choices=("estimate", "exif"), default="estimate")
    parser.add_argument("--correspondence", choices=("learned", "embedded"), default="learned")
    parser.add_argument("--renderer", choices=head_sets.RENDERERS, default="core",
                        help="held-out images from the project's renderer (default) or Cycles (slow, needs bpy)")
    parser.add_argument("--set", dest="scene_set", choices=tuple(head_sets.SCENE_SEEDS), default="heldout",
                        help="the reported held-out heads (default) or the tuning heads")
    parser.add_argument("--landmarks", choices=("mediapipe", "true"), default="mediapipe",
                        help="MediaPipe's points, or (stage 0, with --correspondence embedded) the embedded points' true "
                             "projections: the geometry a perfect detector would allow")
    parser.add_argument("--label", default="current")
    parser.add_argument("--no-save", action="store_true", help="print only (for experiments)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.landmarks == "true" and (args.mode != "stage0" or args.correspondence != "embedded"):
        parser.error("--landmarks true needs --mode stage0 --correspondence embedded (the points are the embedded ones)")
    model, embedding = load_head_model(), load_embedding()
    folders = head_sets.render_heldout(args.scenes, renderer=args.renderer, kind=args.scene_set)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run: dict[str, Any] = {"label": args.label, "commit": commit, "date": datetime.date.today().isoformat(),
                           "mode": args.mode, "quality": args.quality if args.mode == "pipeline" else None,
                           "focal": args.focal, "correspondence": args.correspondence, "renderer": args.renderer,
                           "set": args.scene_set, "landmarks": args.landmarks,
                           "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus", "targets": TARGETS,
                           "scenes": []}
    for folder in folders:
        loaded = load_scene(folder)
        points = head_sets.detections(folder)
        if points is None:  # counted, never hidden: the summary lists them
            run.setdefault("no_face", []).append(folder.name)
            print(f"{folder.name}: MediaPipe found no face; skipped", flush=True)
            continue
        if args.landmarks == "true":  # a perfect detector: the embedded points' true projections (same scenes)
            points = true_landmarks_px(loaded, model, embedding)
        if args.mode == "stage0":
            estimate, seconds = run_stage0(loaded, points, model, args.focal, args.correspondence)
        else:
            try:
                estimate, seconds = run_pipeline(loaded, args.quality, args.label)
            except RuntimeError as error:  # counted, never hidden: the summary lists them
                run.setdefault("failed", []).append(folder.name)
                print(error, flush=True)
                continue
        row = measure(loaded, estimate["vertices"], estimate["K"], estimate["world_from_camera"],
                      estimate["camera_from_model"], model, embedding)
        row.update({"focal_source": estimate.get("focal_source"), "focal_uncertainty_pct": estimate.get("focal_uncertainty_pct"),
                    "seconds": round(seconds, 2)})
        run["scenes"].append(row)
        print(f"{row['scene']}: fit {row['vertex_error_mm']:.2f} mm, mean head {row['mean_head_error_mm']:.2f} mm, "
              f"NoW {row['now_mm']['mean']:.2f}, reproj {row['reprojection_pct_iod']:.2f} % IOD, "
              f"pose {row['yaw_error_deg']:+.1f}/{row['pitch_error_deg']:+.1f}/{row['roll_error_deg']:+.1f}, "
              f"focal {row['focal_error_pct']:+.0f} %", flush=True)
    run["summary"] = summarise(run["scenes"])
    run["summary"]["no_face"] = run.get("no_face", [])
    run["summary"]["failed"] = run.get("failed", [])
    text = markdown(run)
    print(text)
    if not args.no_save:
        history_path = RESULTS / "geometry.json"
        history = json.loads(history_path.read_text()) if history_path.is_file() else {"runs": []}
        history["runs"] = [r for r in history["runs"] if r["label"] != args.label] + [run]
        RESULTS.mkdir(parents=True, exist_ok=True)
        history_path.write_text(json.dumps(history, indent=1, default=_plain) + "\n")
        (RESULTS / "geometry.md").write_text("\n".join(markdown(r) for r in history["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
