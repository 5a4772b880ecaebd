"""Benchmark: a full reconstruction on CUDA — stage timings, run-to-run determinism and GPU memory release.

GPU machines here have no MediaPipe, so landmarks and the selfie segmentation
(the occlusion mask's person mask) are computed once on a CPU machine and saved
(`--save-landmarks`); the CUDA runs load them instead of running MediaPipe
(stage 0 onwards is the real pipeline).

    python bench/cuda.py --save-landmarks bench/results/astronaut_landmarks.npz   # CPU machine
    python bench/cuda.py --landmarks bench/results/astronaut_landmarks.npz        # GPU machine

Writes bench/results/cuda.json (and prints it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _results import publish

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "samples" / "astronaut.jpg"


class _Captured(Exception):
    """Stops the CPU run once the person mask is known: nothing after it is needed."""


def save_landmarks(path: Path) -> None:
    from facestage.core.common.config import preset
    from facestage.core.fit import pipeline
    from facestage.core.fit.landmarks import detect
    from facestage.core.io.image import load_photo

    found = detect(load_photo(str(PHOTO)).pixels, str(PHOTO))
    person: list[np.ndarray] = []
    segment = pipeline.person_mask

    def capture(image: np.ndarray) -> np.ndarray:
        person.append(segment(image))
        raise _Captured

    pipeline.detect = lambda *args, **kwargs: found  # type: ignore[assignment]  # detected once, above
    pipeline.person_mask = capture  # type: ignore[assignment]
    try:
        pipeline.reconstruct(str(PHOTO), preset("fast", device="cpu", seed=0))
    except _Captured:
        pass
    np.savez_compressed(path, points=found.points, confidence=found.confidence, box=np.asarray(found.box),
                        person=person[0])
    print(f"saved {len(found.points)} landmarks and a {person[0].shape} person mask to {path}")


def use_saved_landmarks(path: Path) -> None:
    from facestage.core.fit import pipeline
    from facestage.core.fit.landmarks import Landmarks

    with np.load(path) as data:
        saved = Landmarks(points=data["points"], confidence=float(data["confidence"]),
                          box=tuple(float(v) for v in data["box"]))  # type: ignore[arg-type]
        person = data["person"]
    pipeline.detect = lambda *args, **kwargs: saved  # type: ignore[assignment]

    def saved_person(image: np.ndarray) -> np.ndarray:
        assert image.shape[:2] == person.shape, "the saved person mask is for another face window"
        return person

    pipeline.person_mask = saved_person  # type: ignore[assignment]


def run(quality: str, seed: int) -> tuple[dict[str, float], dict[str, np.ndarray], float]:
    import torch

    from facestage.core.common.config import preset
    from facestage.core.fit.pipeline import reconstruct

    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = reconstruct(str(PHOTO), preset(quality, device="cuda", seed=seed))
    wall = time.perf_counter() - start
    arrays = {"vertices": result.vertices, "diffuse": result.diffuse, "specular": result.specular,
              "roughness": result.roughness, "sh": result.sh, "render": result.render,
              **{f"stage_{k}": np.asarray(v) for k, v in result.stage.items()}}
    timings = {k: round(float(v), 2) for k, v in result.timings.items()}
    timings["wall"] = round(wall, 2)
    return timings | {"psnr_masked": round(result.metrics["psnr_masked"], 2)}, arrays, torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save-landmarks", type=Path)
    parser.add_argument("--landmarks", type=Path)
    parser.add_argument("--qualities", nargs="+", default=["fast", "default"])
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators of one run")
    args = parser.parse_args()
    if args.save_landmarks:
        save_landmarks(args.save_landmarks)
        return
    import gc

    import torch

    use_saved_landmarks(args.landmarks)
    if args.profile:
        with torch.profiler.profile() as profiler:
            run(args.qualities[0], seed=0)
        print(profiler.key_averages().table(sort_by="self_device_time_total", row_limit=25))
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        return
    report: dict[str, object] = {"photo": PHOTO.name, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for quality in args.qualities:
        first, a, peak = run(quality, seed=0)
        second, b, _ = run(quality, seed=0)
        gc.collect()
        torch.cuda.empty_cache()
        report[quality] = {
            "first_run_s": first, "second_run_s": second, "peak_gpu_memory_gb": round(peak, 3),
            "max_abs_difference_between_runs": {k: float(np.abs(a[k] - b[k]).max()) for k in a},
            "gpu_memory_allocated_after_release_mb": round(torch.cuda.memory_allocated() / 2**20, 2),
        }
    publish("cuda", report)


if __name__ == "__main__":
    main()
