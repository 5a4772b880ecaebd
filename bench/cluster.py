"""Benchmark: `batch --cluster local` against the thread batch, Ray's cost per task, and where it stops scaling.

    python bench/cluster.py [--runs fast:4 default:2]

Needs the cluster extra (make venv-cluster). On the same synthetic heads (tools/synthetic.py) it times,
each as a user would run it (a subprocess, face.blend included since bpy is in the venv):
the thread batch with --jobs 1 (all threads on one photo) and --jobs N (one photo per core), and the
cluster batch on a local Ray cluster of this machine's cores (Ray's start-up counted apart). It also
measures Ray alone — start-up, the round trip of an empty task, empty tasks per second through one driver,
a fresh worker's import of the heavy modules — and what the storage and the driver must carry per photo:
bytes and files written, and the time to rewrite a 10,000-row summary.

The projection is derived from the measurements (`--reproject` redoes only this part on the saved JSON).
This 2-core machine is shared, so its absolute times swing with the load (recorded in the JSON); the
projection therefore starts from the idle per-photo cost of bench/pipeline.py (2 threads, one photo at a
time, no .blend) plus what this run measured on top of it: writing the folder and face.blend, and Ray's
round trip per task. It counts no gain from one-CPU tasks, which the runs here show (the cluster beat
the thread batch). A 32-CPU node counts as 16 of these 2-CPU nodes. The rate is capped by the first shared
part that saturates: the shared storage (measured bytes and files per photo against an assumed NFS
server, stated in the JSON), the driver (measured empty tasks per second) or Ray's control plane (the
running tasks Ray's published scalability envelope tests). Writes bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS, publish

ROOT = Path(__file__).resolve().parents[1]
NODES = (10, 100, 1000)
NODE_CPUS = (2, 32)  # like the measured machine, and a common cluster node
# Assumptions for a shared filesystem served by one NFS server (no measurement here can give them):
STORAGE_BYTES_PER_S = 1.0e9  # ~10 GbE
STORAGE_METADATA_OPS_PER_S = 20_000.0  # creates, renames, mkdirs
RAY_RUNNING_TASKS_TESTED = 15_000  # Ray's scalability envelope (release/benchmarks/README.md): 15k+ running tasks


def synthetic_photos(count: int, folder: Path) -> Path:
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    for seed, scene in enumerate(synthetic.ensure_scenes(list(range(count)))):
        shutil.copy(scene / "image.png", folder / f"head_{seed:02d}.png")
    return folder


def timed_batch(photos: Path, out: Path, quality: str, slots: float, *extra: str, start_up_s: float = 0.0) -> dict[str, Any]:
    """One batch as a subprocess. ``slots`` photos run at once; ``start_up_s`` of its wall time is not photo work.

    beyond_reconstruction_s: slot-seconds per photo that are not the reconstruction itself (writing the folder
    and face.blend, imports of fresh workers, Ray's scheduling): wall * slots / photos - reconstruction time.
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "facestage", "batch", str(photos), "-o", str(out), "--quality", quality,
                           *extra], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    rows = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else []
    ok = [row for row in rows if row["status"] == "ok"]
    if done.returncode != 0 or len(ok) != len(list(photos.iterdir())):
        raise SystemExit(f"batch {' '.join(extra)} failed: {done.stderr.strip()[-800:]}")
    work = wall - start_up_s
    reconstruction = sum(float(r["seconds"]) for r in ok) / len(ok)
    return {"args": " ".join(extra) or "--jobs 1", "wall_s": round(wall, 1), "start_up_s": round(start_up_s, 1),
            "photos_per_hour": round(len(ok) * 3600 / work, 1), "reconstruction_s_mean": round(reconstruction, 1),
            "beyond_reconstruction_s": round(work * slots / len(ok) - reconstruction, 1)}


def ray_alone(cpus: int) -> dict[str, Any]:
    """Ray's own costs on a local cluster of ``cpus`` CPUs: what every photo pays besides its reconstruction."""
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start

    @ray.remote(num_cpus=1)
    def empty() -> None:
        return None

    @ray.remote(num_cpus=1, max_calls=1)  # its worker exits after: the imports stay out of the other runs
    def heavy_imports() -> float:
        begin = time.perf_counter()
        import bpy  # noqa: F401
        import mediapipe  # noqa: F401
        import torch  # noqa: F401
        import warp  # noqa: F401

        import facestage.core.fit.pipeline  # noqa: F401
        return time.perf_counter() - begin

    try:
        ray.get([empty.remote() for _ in range(2 * cpus)])  # workers up
        rounds = 200
        begin = time.perf_counter()
        for _ in range(rounds):
            ray.get(empty.remote())
        latency = (time.perf_counter() - begin) / rounds
        many = 4000
        begin = time.perf_counter()
        ray.get([empty.remote() for _ in range(many)])
        per_second = many / (time.perf_counter() - begin)
        imports = ray.get(heavy_imports.remote())
    finally:
        ray.shutdown()
    return {"ray_start_s": round(started, 2), "empty_task_round_trip_ms": round(latency * 1e3, 2),
            "empty_tasks_per_s_one_driver": round(per_second), "worker_heavy_imports_s": round(imports, 2)}


def output_load(out: Path) -> dict[str, float]:
    folders = [p for p in out.iterdir() if p.is_dir() and p.name != "logs" and not p.name.startswith(".")]
    files = [f for folder in folders for f in folder.iterdir()]
    return {"bytes_per_photo": round(sum(f.stat().st_size for f in files) / len(folders)),
            "files_per_photo": round(len(files) / len(folders), 1)}


def summary_write_s(rows: int) -> float:
    from facestage.runs import write_summary

    fake = [{"photo": f"portrait_{k:06d}.jpg", "status": "ok", "error": "", "seconds": 85.5, "psnr": 34.98,
             "blend": True, "node": "node-0042"} for k in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        write_summary(Path(tmp), fake)
        return time.perf_counter() - begin


def projection(node_photos_per_hour: float, task_cpus: float, bytes_per_photo: float, files_per_photo: float,
               tasks_per_s: float) -> dict[str, Any]:
    """Photos per hour on NODES nodes of NODE_CPUS cpus (2-CPU units), capped by the first shared part that saturates.

    Photos are independent tasks, so compute scales with the nodes; what every photo shares is the storage
    (bytes and metadata operations), the driver (one submission and one collection per photo) and Ray's
    control plane (the running tasks its scalability envelope tests).
    """
    slot_per_hour = node_photos_per_hour / (2 / task_cpus)
    ceilings = {  # photos per hour
        "storage_bandwidth": STORAGE_BYTES_PER_S / bytes_per_photo * 3600,
        # per photo: mkdtemp, one create per file, the rename, the log, the rmtree of a killed attempt (rare)
        "storage_metadata": STORAGE_METADATA_OPS_PER_S / (files_per_photo + 4) * 3600,
        "driver_tasks": tasks_per_s * 3600,
        "ray_running_tasks_tested": RAY_RUNNING_TASKS_TESTED * slot_per_hour,
    }
    first = min(ceilings, key=ceilings.__getitem__)
    table = {}
    for cpus in NODE_CPUS:
        for n in NODES:
            compute = n * node_photos_per_hour * cpus / 2
            table[f"{n} x {cpus} cpus"] = {"photos_per_hour": round(min(compute, ceilings[first])),
                                           "limited_by": first if compute > ceilings[first] else "compute",
                                           "hours_for_10000_photos": round(10_000 / min(compute, ceilings[first]), 2)}
    return {"nodes": table, "ceilings_photos_per_hour": {k: round(v) for k, v in ceilings.items()},
            "first_ceiling": first,
            "nodes_of_32_cpus_at_first_ceiling": round(ceilings[first] / (node_photos_per_hour * 16))}


def derive(report: dict[str, Any]) -> None:
    """Add the projection to a report of measurements (see the module docstring for the basis)."""
    from facestage.cluster import TASK_RESOURCES  # today's CPUs a task (the runs record the ones they had)

    idle = {run["quality"]: run["wall_s"] for run in json.loads((RESULTS / "pipeline.json").read_text())["runs"]
            if "wall_s" in run}
    report["projection"] = {}
    for quality, measured in report["qualities"].items():
        if quality not in idle:
            continue
        commit = next(run for run in measured["runs"] if run["args"] == "--jobs 1")["beyond_reconstruction_s"]
        ray_s = report["ray"]["empty_task_round_trip_ms"] / 1e3
        photo_s = idle[quality] + commit + ray_s
        node = 3600 / photo_s
        report["projection"][quality] = {
            "photo_s_idle_2_threads": idle[quality], "plus_folder_and_blend_s": commit, "plus_ray_per_task_s": ray_s,
            "node_2_cpus_photos_per_hour": round(node, 1), "task_cpus": TASK_RESOURCES[quality][0],
            **projection(node, TASK_RESOURCES[quality][0], measured["output"]["bytes_per_photo"],
                         measured["output"]["files_per_photo"], report["ray"]["empty_tasks_per_s_one_driver"])}


def measure_quality(photos: Path, quality: str, cpus: int, ray_costs: dict[str, Any], work: Path) -> dict[str, Any]:
    """Thread batch (--jobs 1 and --jobs CPUS) and cluster batch on the same photos."""
    from facestage.cluster import TASK_RESOURCES

    count = len(list(photos.iterdir()))
    load_before = os.getloadavg()[0]
    slots = max(1.0, cpus // TASK_RESOURCES[quality][0])
    runs = [timed_batch(photos, work / "threads1", quality, 1),
            timed_batch(photos, work / "threadsN", quality, cpus, "--jobs", str(cpus)),
            timed_batch(photos, work / "cluster", quality, slots, "--cluster", "local", start_up_s=ray_costs["ray_start_s"])]
    load = output_load(work / "cluster")
    best_threads = max(runs[:2], key=lambda run: run["photos_per_hour"])
    return {"photos": count, "task_cpus": TASK_RESOURCES[quality][0], "slots": slots,
            "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)], "runs": runs,
            "cluster_vs_best_thread_batch": round(runs[2]["photos_per_hour"] / best_threads["photos_per_hour"], 3),
            "output": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["fast:4", "default:2"], help="QUALITY:PHOTOS ...")
    parser.add_argument("--reproject", action="store_true", help="only redo the projection of the saved results")
    args = parser.parse_args()
    if args.reproject:
        report = json.loads((RESULTS / "cluster.json").read_text())
        report.pop("projection", None)
        for measured in report["qualities"].values():
            measured.pop("projection", None)
        report["assumptions"].pop("node_rate", None)
        derive(report)
        publish("cluster", report)
        return
    cpus = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    ray_costs = ray_alone(cpus)
    summary_10k = summary_write_s(10_000)
    qualities = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            quality, count = run.split(":")
            photos = synthetic_photos(int(count), Path(tmp) / quality / "photos")
            qualities[quality] = measure_quality(photos, quality, cpus, ray_costs, Path(tmp) / quality)
            print(json.dumps({quality: qualities[quality]}, indent=1), flush=True)
    report = {
        "machine": f"{platform.machine()}, {cpus} cpus", "load_average_before_after": [load_before, os.getloadavg()[0]],
        "ray": ray_costs, "qualities": qualities,
        "summary_rewrite_10k_rows_s": round(summary_10k, 3), "summary_rewrite_every_s": 5.0,
        "archive_rows_at_which_summary_rewrites_take_half_the_driver": round(10_000 * 2.5 / summary_10k),
        "assumptions": {"shared_storage_bytes_per_s": STORAGE_BYTES_PER_S,
                        "shared_storage_metadata_ops_per_s": STORAGE_METADATA_OPS_PER_S,
                        "ray_running_tasks_tested": RAY_RUNNING_TASKS_TESTED},
    }
    derive(report)
    publish("cluster", report)


if __name__ == "__main__":
    main()
