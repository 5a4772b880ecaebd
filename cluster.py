"""`facestage batch --cluster`: the batch as Ray tasks, one photo each, on this machine or on many.

Ray does the scheduling (CPUs, GPUs and memory per task) and retries a photo whose worker died;
this module plans the batch, runs one photo per task and keeps the summary. Who writes what:

* each task writes its photo's folder (core's result.save fills a temporary sibling and renames it,
  so OUT/<photo>/scene.json exists only once the photo is complete) and OUT/logs/<photo>.log;
* the driver alone writes summary.json and summary.csv.

So OUT must be one folder that every node and the driver see at the same path (a shared filesystem).
Resuming and retrying rely on scene.json alone: a photo whose scene.json exists is never computed again,
whether the driver was killed (the next `--resume` skips it) or a worker died after committing it (Ray's
retry finds it and returns its row). The driver marks OUT with a token that every task checks first, so a
node that sees a different (node-local) OUT refuses to write there instead of scattering results.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from . import deps, runs
from .core.common.errors import FaceStageError

log = logging.getLogger(__name__)

RAY_REQUIREMENT = "ray==2.60.0"  # the pin of requirements-cluster.txt (tests/test_cluster.py keeps them in step)
# Per photo, by --quality: CPUs, share of one GPU, memory in GB. One CPU a photo gives the most photos per
# hour at fast and default (bench/cluster.py: two one-thread photos at once beat one two-thread photo);
# high (unmeasured here) takes 2 for its larger renders. Memory is bench/memory.py's peak RSS with headroom.
TASK_RESOURCES = {"fast": (1.0, 0.25, 1.5), "default": (1.0, 0.5, 2.0), "high": (2.0, 1.0, 4.0)}
SUMMARY_EVERY_S = 5.0  # the driver rewrites the summary at most this often (resume rebuilds rows from scene.json)
MARKER = ".facestage-cluster"  # in OUT: the token that proves a node sees the driver's OUT


def _import_ray():  # type: ignore[no-untyped-def]
    """Ray, or the one sentence that says how to install it."""
    try:
        import ray  # the optional extra (requirements-cluster.txt): imported only for --cluster
    except ImportError:
        if __package__ != "facestage":  # inside Blender: the add-on's own site-packages
            where = f'"{sys.executable}" -m pip install --target "{deps.site_packages()}" {RAY_REQUIREMENT}'
        else:
            where = f"pip install -r requirements-cluster.txt (or pip install {RAY_REQUIREMENT})"
        raise FaceStageError(f"--cluster needs Ray, which is not installed; install it with {where}.") from None
    return ray


def task_resources(quality: str, device: str, cluster_gpus: float, cpus: float | None = None,
                   gpus: float | None = None) -> tuple[float, float, float]:
    """(CPUs, GPUs, memory bytes) per photo: explicit values win, else the quality's defaults.

    A GPU share is asked for with --device cuda, or with auto when the cluster has GPUs; a task that asks
    for none runs on the CPU even where a GPU is visible.
    """
    default_cpus, default_gpus, memory_gb = TASK_RESOURCES[quality]
    if gpus is None:
        gpus = default_gpus if device == "cuda" or (device == "auto" and cluster_gpus > 0) else 0.0
    return (default_cpus if cpus is None else cpus), gpus, memory_gb * 1e9


def _task_function() -> tuple[Callable[..., dict[str, object]], dict[str, object]]:
    """The task body as the workers can import it, and the runtime_env they need for that.

    From `python -m facestage` the workers import facestage.cluster like the driver. Inside Blender
    the add-on is `bl_ext.<repo>.facestage`, which only Blender can import, while workers are plain
    Python processes: the driver loads this file again as top-level `facestage` from the extension
    folder's parent, and the workers get that folder and the add-on's site-packages on PYTHONPATH.
    """
    if __package__ == "facestage":
        return _run_photo, {}
    parent = str(Path(__file__).resolve().parents[1])
    if parent not in sys.path:
        sys.path.insert(0, parent)
    paths = [parent] + [str(p) for p in (deps.site_packages(),) if p is not None]
    module = importlib.import_module("facestage.cluster")
    return module._run_photo, {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


def _connect(ray, address: str, runtime_env: dict[str, object], verbose: bool) -> bool:  # type: ignore[no-untyped-def]
    """Join the cluster (True when this call started Ray and must shut it down)."""
    if ray.is_initialized():  # a notebook or a test that already holds a connection
        return False
    options: dict[str, object] = {"log_to_driver": False, "logging_level": logging.INFO if verbose else logging.WARNING}
    if runtime_env:
        options["runtime_env"] = runtime_env
    try:
        context = ray.init(address=address, **options)
    except ConnectionError as error:
        raise FaceStageError(f"No Ray cluster answered at {address} ({_first_line(error)}); start one with "
                             "`ray start --head` or use --cluster local.") from None
    except Exception as error:  # noqa: BLE001  (version mismatch, refused token, bad address: one sentence each)
        hint = ("; set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or ~/.ray/auth_token) to the cluster's token"
                if "token" in str(error).lower() else "")
        raise FaceStageError(f"Could not join the Ray cluster at {address}: {_first_line(error)}{hint}.") from None
    url = getattr(context, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}", file=sys.stderr)
    return True


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:240].rstrip(".")


def _claim_output(out_root: Path) -> str:
    """The token of OUT (made once, kept across resumes) that every task checks before writing."""
    marker = out_root / MARKER
    if not marker.is_file():
        tmp = out_root / f"{MARKER}.{os.getpid()}.tmp"
        tmp.write_text(uuid.uuid4().hex)
        tmp.replace(marker)
    return marker.read_text().strip()


def _stamp(path: Path) -> tuple[int, int] | None:
    """Identity of a file version (inode, mtime): tells a scene.json written by this batch from an older one."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def batch(args: argparse.Namespace) -> int:
    """The driver: plan, submit one task per photo, follow them with a tqdm bar, keep the summary."""
    ray = _import_ray()
    if getattr(args, "jobs", 1) != 1:
        raise FaceStageError("--jobs is for the batch on this machine; with --cluster set --cpus-per-task instead.")
    # Absolute paths (the workers' working folder is not ours), without resolving links (a shared mount
    # may be a link here and a plain path on the other nodes).
    args = argparse.Namespace(**{**vars(args), "input_dir": str(Path(args.input_dir).absolute()),
                                 "output": str(Path(args.output).absolute())})
    photos, out_root, rows, todo = runs.plan(args)
    for photo in photos:
        if photo.name in rows:
            rows[photo.name].setdefault("blend", (out_root / photo.stem / "face.blend").is_file())
    marker = _claim_output(out_root)
    if todo:
        try:
            _run_on_cluster(ray, args, todo, rows, photos, out_root, marker)
        except KeyboardInterrupt:
            print(f"facestage: interrupted; the {sum(r['status'] == 'ok' for r in rows.values())} photos done are kept, "
                  "--resume finishes the rest.", file=sys.stderr)
            return 130
    else:
        runs.write_summary(out_root, [rows[p.name] for p in photos])
    failed = sum(row["status"] != "ok" for row in rows.values())
    no_blend = sum(row["status"] == "ok" and not row.get("blend") for row in rows.values())
    print(f"{len(rows) - failed} of {len(rows)} photos reconstructed; summary in {out_root / 'summary.json'}.")
    if no_blend and not args.no_blend:
        print(f"{no_blend} results have no face.blend: the workers that made them have no bpy (summary column blend).")
    return 0 if failed == 0 else 1


def _run_on_cluster(ray, args: argparse.Namespace, todo: list[tuple[Path, argparse.Namespace]],  # type: ignore[no-untyped-def]
                    rows: dict[str, dict[str, object]], photos: list[Path], out_root: Path, marker: str) -> None:
    """Join the cluster, submit one task per photo to do, follow them into ``rows``; the summary at the end."""
    function, runtime_env = _task_function()
    started_here = _connect(ray, args.cluster, runtime_env, getattr(args, "verbose", False))
    refs: dict[object, Path] = {}
    try:
        resources = ray.cluster_resources()
        cpus, gpus, memory = task_resources(args.quality, args.device, resources.get("GPU", 0.0),
                                            args.cpus_per_task, args.gpus_per_task)
        task = ray.remote(function)
        print(f"{len(todo)} photos as Ray tasks ({cpus:g} CPU, {gpus:g} GPU each) on {resources.get('CPU', 0):g} CPUs "
              f"and {resources.get('GPU', 0):g} GPUs; logs in {out_root / 'logs'}/.", file=sys.stderr)
        for photo, photo_args in todo:
            if gpus == 0:
                photo_args.device = "cpu"  # Ray gave it no GPU: do not take one another task may hold
            options = task.options(num_cpus=cpus, num_gpus=gpus, memory=memory, name=photo.name)  # the name: dashboard
            refs[options.remote(str(photo), str(out_root), photo_args, _stamp(out_root / photo.stem / "scene.json"),
                                cpus, marker)] = photo
        _follow(ray, refs, rows, photos, out_root)
    except KeyboardInterrupt:
        for ref in refs:  # the photos not collected yet
            ray.cancel(ref, force=True)
        raise
    finally:
        runs.write_summary(out_root, [rows[p.name] for p in photos if p.name in rows])
        if started_here:
            ray.shutdown()


def _follow(ray, refs: dict[object, Path], rows: dict[str, dict[str, object]], photos: list[Path],  # type: ignore[no-untyped-def]
            out_root: Path) -> None:
    """Collect finished tasks (emptying ``refs``) into ``rows``; tqdm over photos; the summary every few seconds
    (the caller writes the last one)."""
    pending = list(refs)
    last_write = 0.0
    failed = 0
    with tqdm(total=len(pending), desc="batch", unit="photo", dynamic_ncols=True, smoothing=0.05) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            for ref in ready:
                photo = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died past its retries, a node was lost...
                    row = {"photo": photo.name, "status": "failed",
                           "error": f"Ray could not run it ({type(error).__name__}: {_first_line(error)}); "
                                    f"see logs/{photo.stem}.log.", "seconds": None, "psnr": None, "blend": False,
                           "node": ""}
                rows[photo.name] = row
                failed += row["status"] != "ok"
            if ready:
                bar.set_postfix_str(f"{failed} failed", refresh=False)
                bar.update(len(ready))
            if ready and pending and time.monotonic() - last_write >= SUMMARY_EVERY_S:
                runs.write_summary(out_root, [rows[p.name] for p in photos if p.name in rows])
                last_write = time.monotonic()


def _run_photo(photo: str, out_root: str, args: argparse.Namespace, stamp: tuple[int, int] | None,
               cpus: float, marker: str) -> dict[str, object]:
    """One Ray task: reconstruct ``photo`` into OUT/<stem>/ and return its summary row.

    ``stamp`` is the scene.json the driver saw when it planned the batch (None: none): a different one
    means an earlier attempt of this task committed the photo before its worker died, so it is kept.
    """
    out, path = Path(out_root), Path(photo)
    folder, node = out / path.stem, socket.gethostname()
    row: dict[str, object] = {"photo": path.name, "status": "failed", "error": "", "seconds": 0.0, "psnr": None,
                              "blend": False, "node": node}
    try:
        shared = (out / MARKER).read_text().strip() == marker
    except OSError:
        shared = False
    if not shared:  # write nothing: OUT here is not the driver's OUT
        row["error"] = (f"Output folder {out} on node {node} is not the driver's; put OUT on storage that every "
                        "node mounts at the same path.")
        return row
    torch.set_num_threads(max(1, int(cpus)))
    with _photo_log(out / "logs" / f"{path.stem}.log"):
        log.info("attempt: %s on %s, pid %d, %d threads, facestage from %s", path.name, node, os.getpid(),
                 torch.get_num_threads(), Path(__file__).resolve().parent)
        if _stamp(folder / "scene.json") not in (None, stamp):
            log.info("finished by an earlier attempt of this batch; kept")
            return {**row, **runs.done_row(path, folder), "blend": (folder / "face.blend").is_file()}
        for partial in out.glob(f".{path.stem}.*"):  # temporary folders of an attempt that was killed
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
        try:
            outcome, seconds = runs.compute_photo(path, args, out, _log_progress)
            row.update(runs.commit_photo(path, args, outcome, seconds, out))
        except Exception as error:  # noqa: BLE001  (a bug or a crash in one photo must not stop 10,000)
            log.exception("unexpected error")
            row["error"] = f"Unexpected {type(error).__name__}: {_first_line(error)} (traceback in logs/{path.stem}.log)."
        row["blend"] = row["status"] == "ok" and (folder / "face.blend").is_file()
        if row["status"] == "ok" and not row["blend"] and not args.no_blend:
            log.warning("bpy is not importable on %s: no face.blend (the other files are complete)", node)
        log.info("finished: %s in %.1f s%s", row["status"], row["seconds"], f" ({row['error']})" if row["error"] else "")
    return row


def _log_progress(progress: object) -> None:
    """Stage progress into the photo's log, four lines a stage."""
    step, total = getattr(progress, "step"), max(1, getattr(progress, "total"))
    if step == total or step % max(1, total // 4) == 0:
        log.info("%s %d/%d loss %.4g", getattr(progress, "stage"), step, total, getattr(progress, "loss", float("nan")))


@contextmanager
def _photo_log(path: Path) -> Iterator[None]:
    """Send the package's log records to ``path`` (appended: every attempt of the photo stays readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger(__name__.rpartition(".")[0] or __name__)
    level = package.level
    package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()
