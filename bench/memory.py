"""Benchmark: peak RSS of a default CPU reconstruction of a 1024-px photo, and RSS growth over a batch of 20.

    python bench/memory.py [--batch 20]

The 1024-px photo is the bundled sample upscaled (Lanczos). The batch runs `fast` reconstructions one
after another in one process (as `facestage batch` does) and reads the resident set after each, after a
garbage collection; growth = last / first − 1 (target ≤ 10 %, no leak). Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import publish

ROOT = Path(__file__).resolve().parents[1]
RSS_BUDGET_GB = 4.0
GROWTH_BUDGET = 0.10


def rss_mb() -> float:
    """Current resident set of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_default(photo: Path, out: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "facestage", "reconstruct", str(photo), "-o", str(out), "--quality",
                           "default", "--device", "cpu", "--no-blend", "--force"], capture_output=True, text=True)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    return {"photo_px": 1024, "quality": "default", "ok": done.returncode == 0, "peak_rss_gb": round(peak_gb, 3),
            "budget_gb": RSS_BUDGET_GB, "meets_budget": peak_gb <= RSS_BUDGET_GB}


def batch_growth(photo: Path, count: int, folder: Path) -> dict[str, object]:
    from facestage.core.common.config import preset
    from facestage.core.fit.pipeline import reconstruct
    from facestage.core.io.result import save

    samples = []
    for k in range(count):
        save(reconstruct(str(photo), preset("fast", device="cpu", seed=k)), folder / f"photo_{k:02d}", force=True)
        gc.collect()
        samples.append(round(rss_mb(), 1))
        print(f"photo {k + 1}/{count}: RSS {samples[-1]} MB", flush=True)
    growth = samples[-1] / samples[0] - 1
    warm = samples[min(4, count - 1)]  # the allocator and caches settle over the first few photos
    return {"photos": count, "quality": "fast", "rss_mb_after_each": samples, "growth": round(growth, 4),
            "growth_after_warmup": round(samples[-1] / warm - 1, 4),
            "budget": GROWTH_BUDGET, "meets_budget": growth <= GROWTH_BUDGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "sample_1024.png"
        Image.open(ROOT / "samples" / "astronaut.jpg").convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(photo)
        report = {"peak": peak_default(photo, Path(tmp) / "default"),
                  "batch": batch_growth(ROOT / "samples" / "astronaut.jpg", args.batch, Path(tmp) / "batch")}
    publish("memory", report)


if __name__ == "__main__":
    main()
