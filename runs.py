"""Running reconstructions into result folders: one photo, and a batch of photos with resume and a summary.

A reconstruction is computed anywhere (`compute`: core only, no bpy, so a worker thread or a Ray task can run
it) and committed where bpy may be touched (`commit`: the folder, plus face.blend through bpy, on the main
thread). `commands.py` (reconstruct, the thread batch) and `cluster.py` (the Ray batch) share these.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from .core.common.config import PHOTO_SUFFIXES, preset
from .core.common.errors import FaceStageError
from .core.fit import pipeline
from .core.io import result


def _blend_writer(no_blend: bool):  # type: ignore[no-untyped-def]
    """face.blend is written when bpy is importable (always inside Blender)."""
    if no_blend:
        return None
    try:
        import bpy  # noqa: F401
    except ImportError:
        return None
    from .scene.build import save_blend  # bpy: only when importable (checked above)

    return lambda folder: save_blend(folder, folder / "face.blend")


def compute(photo: str, output: str, args: argparse.Namespace, progress: object = None) -> object:
    """The reconstruction, after checking that ``output`` may be written (no bpy: safe off the main thread).

    `reconstruct`, each worker thread of `batch` and each Ray task call it; `commit` then writes the result on the
    main thread.
    """
    result.check_output_dir(Path(output), args.force)
    config = preset(args.quality, device=args.device, seed=args.seed, face_index=args.face_index, stages=args.stages)
    return pipeline.reconstruct(photo, config, progress=progress)  # type: ignore[arg-type]


def commit(res: object, output: str, args: argparse.Namespace) -> Path:
    """Write the result folder atomically (and face.blend through bpy: main thread only)."""
    return result.save(res, Path(output), force=args.force,  # type: ignore[arg-type]
                       before_commit=_blend_writer(getattr(args, "no_blend", False)))


def photos_in(folder: Path) -> list[Path]:
    """The photos of a folder (by suffix), sorted; a missing folder is the user's error."""
    if not folder.is_dir():
        raise FaceStageError(f"Input folder {folder} does not exist.")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def plan(args: argparse.Namespace) -> tuple[list[Path], Path, dict[str, dict[str, object]],
                                                   list[tuple[Path, argparse.Namespace]]]:
    """(photos, output root, summary rows kept by --resume, photos to do each with its own --force).

    Shared by the thread batch and the cluster batch (cluster.py). A photo is done when its scene.json
    exists (result.save moves a complete folder into place); an incomplete folder is overwritten.
    """
    photos = photos_in(Path(args.input_dir))
    if not photos:
        raise FaceStageError(f"Input folder {args.input_dir} contains no photos.")
    out_root = Path(args.output)
    out_root.mkdir(parents=True, exist_ok=True)
    summary_path = out_root / "summary.json"
    previous = {row["photo"]: row for row in json.loads(summary_path.read_text())} if summary_path.exists() else {}
    rows: dict[str, dict[str, object]] = {}
    todo: list[tuple[Path, argparse.Namespace]] = []
    for photo in photos:
        done = (out_root / photo.stem / "scene.json").is_file()
        if args.resume and done:
            rows[photo.name] = previous.get(photo.name) or done_row(photo, out_root / photo.stem)
        else:
            todo.append((photo, argparse.Namespace(**{**vars(args), "force": args.force or not done})))
    return photos, out_root, rows, todo


def done_row(photo: Path, folder: Path) -> dict[str, object]:
    """The summary row of a finished photo, rebuilt from its scene.json (a run killed before its summary was written)."""
    doc = json.loads((folder / "scene.json").read_text())
    return {"photo": photo.name, "status": "ok", "error": "", "seconds": doc.get("timings", {}).get("total", 0.0),
            "psnr": doc.get("metrics", {}).get("psnr_masked")}


def compute_photo(photo: Path, args: argparse.Namespace, out_root: Path,
                   progress: object = None) -> tuple[object, float]:
    """Worker thread: (Result or FaceStageError, seconds)."""
    start = time.perf_counter()
    try:
        outcome: object = compute(str(photo), str(out_root / photo.stem), args, progress)
    except FaceStageError as error:
        outcome = error
    return outcome, time.perf_counter() - start


def commit_photo(photo: Path, args: argparse.Namespace, outcome: object, seconds: float,
                  out_root: Path) -> dict[str, object]:
    """Main thread: write a computed result; the photo's summary row either way."""
    row: dict[str, object] = {"photo": photo.name, "status": "failed", "error": "", "seconds": round(seconds, 2),
                              "psnr": None}
    try:
        if isinstance(outcome, FaceStageError):
            raise outcome
        target = commit(outcome, str(out_root / photo.stem), args)
        metrics = json.loads((target / "scene.json").read_text()).get("metrics", {})
        row.update(status="ok", psnr=metrics.get("psnr_masked"))
    except FaceStageError as error:
        row["error"] = str(error)
    return row


def write_summary(out_root: Path, rows: list[dict[str, object]]) -> None:
    """summary.json and summary.csv, each replaced atomically."""
    tmp = out_root / ".summary.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(out_root / "summary.json")
    tmp_csv = out_root / ".summary.csv.tmp"
    with tmp_csv.open("w", newline="") as handle:
        columns = list(dict.fromkeys(key for row in rows for key in row))  # the cluster batch adds blend and node
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp_csv.replace(out_root / "summary.csv")
