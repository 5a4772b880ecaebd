"""Benchmark: how much of the relit error comes from the fitted shape and how much from the fitted albedo.

    python bench/relit_budget.py [--cache DIR] [--scenes 12] [--quality default] [--label TEXT]

bench/accuracy.py scores face.blend relit by each scene's held-out rig against the true relit image. That one
number mixes every part of the fit. This takes the reconstructions bench/accuracy.py left in its cache and
renders the held-out rig with the core (core/apps/rig.py `render_rig`, the image `facestage relight --rig`
writes) four times, swapping in the ground truth for nothing, for the diffuse map, for the geometry and camera,
and for both. Each is scored over the inner face against the true relit image (PSNR, sRGB), with the photo's
occluders not composited, so only the reconstruction is measured. "True shape" swaps the mesh and the camera;
the eyes and the mouth stay where the fitted head pose puts them. Appends a run to
bench/results/relit_budget.json and writes bench/results/relit_budget.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
for path in (str(ROOT.parent), str(ROOT / "tools"), str(ROOT / "bench")):
    if path not in sys.path:
        sys.path.insert(0, path)

VARIANTS = (("fitted", False, False), ("true albedo", True, False), ("true shape", False, True), ("true both", True, True))


def budget(folder: Path, out: Path) -> dict[str, Any]:
    """Inner-face PSNR of the four rig renders of one reconstructed scene."""
    from accuracy import _psnr, _resized, inner_face_mask
    from facestage.core.apps.rig import render_rig
    from facestage.core.fit.landmarks import detect
    from facestage.core.io.image import linear_to_srgb, load_png
    from facestage.core.io.result import load
    from facestage.core.io.rig import load_rig
    from ground_truth import load_scene

    truth, result, rig = load_scene(folder), load(out), load_rig(folder / "rig.json")
    photo = load_png(folder / "image.png")[..., :3]
    inner = inner_face_mask(detect(photo, str(folder / "image.png")).points, photo.shape[1], photo.shape[0])
    relit = load_png(folder / "relit.png")[..., :3]
    row: dict[str, Any] = {"scene": folder.name, "fitzpatrick": truth.scene.extra["fitzpatrick"]}
    for name, albedo, shape in VARIANTS:
        changed = dataclasses.replace(result, occlusion=None)
        if albedo:
            changed = dataclasses.replace(changed, diffuse=_resized(truth.diffuse, result.diffuse.shape[0]))
        if shape:
            changed = dataclasses.replace(changed, vertices=truth.vertices.astype(np.float32),
                                          K=np.asarray(truth.scene.K, np.float64),
                                          world_from_camera=np.asarray(truth.scene.world_from_camera, np.float64))
        image = linear_to_srgb(np.clip(render_rig(changed, rig), 0, None))
        row[name] = _psnr(relit, image, inner)
    return row


def markdown(run: dict[str, Any]) -> str:
    names = [name for name, _, _ in VARIANTS]
    lines = [f"Run `{run['label']}` ({run['date']}, commit {run['commit']}, {run['machine']}). Core render of the "
             "held-out rig over the inner face, PSNR dB against the true relit image; occluders not composited.", "",
             "| scene | type | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    lines += [f"| {r['scene']} | {r['fitzpatrick']} | " + " | ".join(f"{r[n]:.1f}" for n in names) + " |" for r in run["scenes"]]
    lines.append("| **mean** | | " + " | ".join(f"**{np.mean([r[n] for r in run['scenes']]):.1f}**" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="bench/accuracy.py's scene folder (default: its default)")
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--label", default="current")
    args = parser.parse_args()
    if args.cache is None:
        from accuracy import default_cache

        args.cache = default_cache()
    folders = [args.cache / f"scene_{i:03d}" for i in range(args.scenes)]
    missing = [f.name for f in folders if not (f / f"reconstruction_{args.quality}" / "scene.json").is_file()]
    if missing:
        raise SystemExit(f"no reconstruction in {args.cache} for {', '.join(missing)}: run bench/accuracy.py first.")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    run: dict[str, Any] = {"label": args.label, "commit": commit, "date": datetime.date.today().isoformat(),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "scenes": []}
    for folder in tqdm(folders, desc="relit budget", unit="scene"):
        run["scenes"].append(budget(folder, folder / f"reconstruction_{args.quality}"))
    path = RESULTS / "relit_budget.json"
    history = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    history["runs"].append(run)
    path.write_text(json.dumps(history, indent=1) + "\n")
    (RESULTS / "relit_budget.md").write_text(markdown(run))
    print(markdown(run))


if __name__ == "__main__":
    main()
