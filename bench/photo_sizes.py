"""Benchmark: the default reconstruction of one portrait at 0.3, 2, 12, 24 and 48 megapixels.

    nice python bench/photo_sizes.py [--sizes 0.3 2 12 24 48] [--quality default] [--device cpu]

The portrait is samples/astronaut.jpg upscaled (bicubic) to a square of each
size and saved as JPEG (quality 90), so every run sees the same face at
another pixel count. Each size runs in its own subprocess, which reports the
stage timings of scene.json, the time to write the result folder and its own
peak RSS. Targets (issue 23): the 48 MP run costs at most 1.2 x the 2 MP one
plus the extra decoding, and peaks under 4 GB. Writes
bench/results/photo_sizes.json and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import publish

ROOT = Path(__file__).resolve().parents[1]
SIZES_MP = (0.3, 2.0, 12.0, 24.0, 48.0)
TIME_RATIO_TARGET = 1.2  # 48 MP / 2 MP, decoding excluded
RSS_BUDGET_GB = 4.0
STAGES = ("decode", "detect", "landmarks", "lighting", "maps", "output", "save")


def make_photo(megapixels: float, folder: Path) -> Path:
    from PIL import Image

    side = round(math.sqrt(megapixels * 1e6))
    path = folder / f"portrait_{side}.jpg"
    with Image.open(ROOT / "samples" / "astronaut.jpg") as sample:
        sample.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def run_one(photo: Path, out: Path, quality: str, device: str) -> dict[str, object]:
    """In this (child) process: reconstruct, save, and report timings and the peak RSS."""
    from facestage.core.common.config import preset
    from facestage.core.fit.pipeline import reconstruct
    from facestage.core.io.result import save

    start = time.perf_counter()
    res = reconstruct(str(photo), preset(quality, device=device))
    mark = time.perf_counter()
    save(res, out, force=True)
    wall = time.perf_counter() - start
    timings = dict(res.timings)
    timings["detect"] = timings["load"] - timings["decode"]  # detection and the face's working window
    timings["save"] = time.perf_counter() - mark
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"width": res.width, "height": res.height, "wall_s": wall, "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "stages_s": {name: round(timings[name], 2) for name in STAGES},
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2),
            "render_px": int(res.render_crop[3]), "psnr_masked_db": round(res.metrics["psnr_masked"], 2)}


def targets(by_size: dict[float, dict]) -> dict[str, object]:  # type: ignore[type-arg]
    """48 MP against 2 MP, decoding excluded, in wall time and in CPU time (which a busy machine inflates less);
    and the RSS budget."""
    out: dict[str, object] = {"meets_rss_budget": all(run["peak_rss_gb"] < RSS_BUDGET_GB for run in by_size.values())}
    if 2.0 in by_size and 48.0 in by_size:
        small, large = by_size[2.0], by_size[48.0]
        for key in ("wall_s", "cpu_s"):
            if key in small and key in large:
                ratio = ((large[key] - large["stages_s"]["decode"]) / (small[key] - small["stages_s"]["decode"]))
                out[f"ratio_48_to_2_{key[:-2]}_without_decoding"] = round(ratio, 3)
                out[f"meets_time_target_{key[:-2]}"] = ratio <= TIME_RATIO_TARGET
    return out


def table(runs: list[dict[str, object]]) -> str:
    head = ("| photo | pixels | " + " | ".join(STAGES) + " | total s | CPU s | peak RSS GB | face render px | PSNR dB |")
    rows = [head, "|" + "---|" * (len(STAGES) + 7)]
    for run in runs:
        stages = run["stages_s"]
        rows.append(f"| {run['megapixels']} MP | {run['width']}×{run['height']} | "
                    + " | ".join(f"{stages[name]:.1f}" for name in STAGES)  # type: ignore[index]
                    + f" | {run['wall_s']:.1f} | {run.get('cpu_s', float('nan')):.0f} | {run['peak_rss_gb']:.2f} | "
                    f"{run['render_px']} | {run['psnr_masked_db']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=list(SIZES_MP))
    parser.add_argument("--quality", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, type=Path, metavar=("PHOTO", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one[0], args.one[1], args.quality, args.device)))
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for megapixels in args.sizes:
            photo = make_photo(megapixels, Path(tmp))
            done = subprocess.run([sys.executable, __file__, "--quality", args.quality, "--device", args.device,
                                   "--one", str(photo), str(Path(tmp) / "out")], capture_output=True, text=True)
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{megapixels} MP failed:\n{done.stderr[-3000:]}")
            run = {"megapixels": megapixels, **json.loads(line[len("RESULT "):])}
            runs.append(run)
            print(f"{megapixels} MP: {run['wall_s']:.1f} s, peak {run['peak_rss_gb']} GB", file=sys.stderr, flush=True)
    by_size = {run["megapixels"]: run for run in runs}
    report: dict[str, object] = {"photo": "samples/astronaut.jpg upscaled to squares", "quality": args.quality,
                                 "device": args.device,
                                 "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus", "runs": runs}
    report.update(targets(by_size))
    report["table"] = table(runs)
    publish("photo_sizes", report)
    print(report["table"])


if __name__ == "__main__":
    main()
