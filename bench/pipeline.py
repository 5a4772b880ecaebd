"""Benchmark: wall time, stage timings, peak RSS and re-render PSNR of a full reconstruction.

Each quality runs in its own subprocess so peak RSS is that run's alone.
Usage: python bench/pipeline.py [--qualities fast default] [--photo PATH] [--device cpu|cuda]
Writes bench/results/pipeline.json (and prints it).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import publish

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"fast": 60.0, "default": 120.0}  # default: the developers' guide's 120 s on 2 CPU cores
RSS_BUDGET_GB = 4.0


def run_one(photo: Path, quality: str, device: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "facestage", "reconstruct", str(photo), "-o", str(out),
                               "--quality", quality, "--device", device, "--no-blend"], capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        if done.returncode != 0:
            return {"quality": quality, "error": done.stderr.strip().splitlines()[-1:]}
        doc = json.loads((out / "scene.json").read_text())
    return {"quality": quality, "device": device, "wall_s": round(wall, 1), "timings_s": doc["timings"],
            "psnr_masked_db": doc["metrics"]["psnr_masked"], "peak_rss_gb_max_so_far": round(peak_gb, 2),
            "target_s": TARGETS_S.get(quality), "meets_time_target": wall <= TARGETS_S.get(quality, float("inf")),
            "meets_rss_budget": peak_gb <= RSS_BUDGET_GB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qualities", nargs="+", default=["fast", "default"])
    parser.add_argument("--photo", type=Path, default=ROOT / "samples" / "astronaut.jpg")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    runs = [run_one(args.photo, q, args.device) for q in args.qualities]
    report = {"photo": args.photo.name, "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus", "runs": runs}
    publish("pipeline", report)


if __name__ == "__main__":
    main()
