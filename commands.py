"""CLI command implementations: thin wrappers over core with terminal progress.

Each command checks its output before doing any work, writes into a
temporary folder and moves it into place at the end, so a failure or Ctrl-C
never leaves a half-written result. cli.py imports this module only when a
command runs, so `--help` and `doctor` never load torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from .core.apps import relight as apps
from .core.apps.caricature import caricature_result, parse_region_factors
from .core.apps.rerender import PASS_NAMES, pass_images, render_result
from .core.apps.rig import render_rig
from .core.common.config import ENV_ROTATE, PHOTO_SUFFIXES, preset
from .core.common.device import pick
from .core.common.errors import FaceStageError
from .core.fit import pipeline
from .core.io import result
from .core.io.image import linear_to_srgb, save_png
from .core.io.rig import load_rig
from .core.model.head import load_head_model

log = logging.getLogger(__name__)


@contextmanager
def _tqdm_progress() -> Iterator[object]:
    """A progress callback drawing one tqdm bar per stage."""
    bars: dict[str, tqdm] = {}

    def update(p: object) -> None:
        stage, step, total = getattr(p, "stage"), getattr(p, "step"), getattr(p, "total")
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:>9s}", unit="step", leave=True, dynamic_ncols=True)
        bar.n = step
        loss = getattr(p, "loss", float("nan"))
        if loss == loss:
            bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


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


def _compute(photo: str, output: str, args: argparse.Namespace, progress: object = None) -> object:
    """The reconstruction, after checking that ``output`` may be written (no bpy: safe off the main thread).

    `reconstruct` and each worker thread of `batch` call it; `_commit` then writes the result on the main thread.
    """
    result.check_output_dir(Path(output), args.force)
    config = preset(args.quality, device=args.device, seed=args.seed, face_index=args.face_index, stages=args.stages)
    return pipeline.reconstruct(photo, config, progress=progress)  # type: ignore[arg-type]


def _commit(res: object, output: str, args: argparse.Namespace) -> Path:
    """Write the result folder atomically (and face.blend through bpy: main thread only)."""
    return result.save(res, Path(output), force=args.force,  # type: ignore[arg-type]
                       before_commit=_blend_writer(getattr(args, "no_blend", False)))


def reconstruct(args: argparse.Namespace) -> int:
    with _tqdm_progress() as progress:
        out = _commit(_compute(args.photo, args.output, args, progress), args.output, args)
    print(f"Wrote {out}/ — open {out / 'report.png'} first.")
    return 0


def _photos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FaceStageError(f"Input folder {folder} does not exist.")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def batch(args: argparse.Namespace) -> int:
    """One sub-folder per photo; carries on past failures; --resume skips finished photos.

    --jobs N runs N photos at once in threads (torch and Warp release the GIL in their kernels), each
    with its share of the CPU threads; the summary is rewritten after every photo, in photo order.
    """
    photos = _photos(Path(args.input_dir))
    if not photos:
        raise FaceStageError(f"Input folder {args.input_dir} contains no photos.")
    out_root = Path(args.output)
    out_root.mkdir(parents=True, exist_ok=True)
    summary_path = out_root / "summary.json"
    previous = {row["photo"]: row for row in json.loads(summary_path.read_text())} if summary_path.exists() else {}
    rows: dict[str, dict[str, object]] = {}
    todo: list[tuple[Path, argparse.Namespace]] = []  # each photo with its own --force
    for photo in photos:
        done = (out_root / photo.stem / "scene.json").is_file()
        if args.resume and done:
            rows[photo.name] = previous.get(photo.name, {"photo": photo.name, "status": "ok", "error": "", "seconds": 0.0,
                                                         "psnr": None})
        else:
            todo.append((photo, argparse.Namespace(**{**vars(args), "force": args.force or not done})))
    jobs = max(1, min(getattr(args, "jobs", 1), len(todo)))
    threads = torch.get_num_threads()
    if jobs > 1:
        torch.set_num_threads(max(1, threads // jobs))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(total=len(todo), desc="batch", unit="photo") as bar:
            work = pool.map if jobs > 1 else map  # one job: compute on this thread (Ctrl-C stops it at once)
            for (photo, photo_args), (outcome, seconds) in zip(todo, work(lambda job: _batch_compute(*job, out_root), todo)):
                rows[photo.name] = _batch_commit(photo, photo_args, outcome, seconds, out_root)
                _write_summary(out_root, [rows[p.name] for p in photos if p.name in rows])
                bar.update()
    finally:
        torch.set_num_threads(threads)
    failed = sum(row["status"] != "ok" for row in rows.values())
    print(f"{len(rows) - failed} of {len(rows)} photos reconstructed; summary in {summary_path}.")
    return 0 if failed == 0 else 1


def _batch_compute(photo: Path, args: argparse.Namespace, out_root: Path) -> tuple[object, float]:
    """Worker thread: (Result or FaceStageError, seconds)."""
    start = time.perf_counter()
    try:
        outcome: object = _compute(str(photo), str(out_root / photo.stem), args)
    except FaceStageError as error:
        outcome = error
    return outcome, time.perf_counter() - start


def _batch_commit(photo: Path, args: argparse.Namespace, outcome: object, seconds: float,
                  out_root: Path) -> dict[str, object]:
    """Main thread: write a computed result; the photo's summary row either way."""
    row: dict[str, object] = {"photo": photo.name, "status": "failed", "error": "", "seconds": round(seconds, 2),
                              "psnr": None}
    try:
        if isinstance(outcome, FaceStageError):
            raise outcome
        target = _commit(outcome, str(out_root / photo.stem), args)
        metrics = json.loads((target / "scene.json").read_text()).get("metrics", {})
        row.update(status="ok", psnr=metrics.get("psnr_masked"))
    except FaceStageError as error:
        row["error"] = str(error)
    return row


def _write_summary(out_root: Path, rows: list[dict[str, object]]) -> None:
    """summary.json and summary.csv, each replaced atomically."""
    tmp = out_root / ".summary.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(out_root / "summary.json")
    tmp_csv = out_root / ".summary.csv.tmp"
    with tmp_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["photo", "status", "error", "seconds", "psnr"])
        writer.writeheader()
        writer.writerows(rows)
    tmp_csv.replace(out_root / "summary.csv")


def _check_image_target(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FaceStageError(f"Output {path} already exists; use --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)


def _write_png_atomically(path: Path, srgb: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        save_png(tmp, srgb)  # type: ignore[arg-type]
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def relight(args: argparse.Namespace) -> int:
    """Re-render a result under a preset, a lights file or a rotated environment, composited over the photo."""
    if args.list_presets:
        print("\n".join(apps.preset_names()))
        return 0
    res = result.load(args.result)
    target = Path(args.output) if args.output else Path(args.result) / "relit.png"
    _check_image_target(target, args.force)
    if getattr(args, "rig", None):
        image = render_rig(res, load_rig(args.rig), device=_device(args))
        _write_png_atomically(target, linear_to_srgb(image))
        print(f"Wrote {target}")
        return 0
    stage, sh = res.stage, res.sh
    if args.preset == ENV_ROTATE:
        sh = apps.rotate_environment(res.sh, 90.0 if args.rotate_env is None else args.rotate_env, args.pitch)
    elif args.preset:
        stage, sh = apps.preset_lighting(res.stage, res.sh, args.preset, exposure=apps.rendered_exposure(res))
        note = apps.PRESETS[args.preset].note
        if note:
            print(f"{args.preset}: {note}.")
    elif args.lights:
        stage = result.lights_from_file(args.lights, res.stage)
    else:
        sh = apps.rotate_environment(res.sh, args.rotate_env, args.pitch)
    image, _, _ = render_result(res, stage=stage, sh=sh, device=_device(args))
    _write_png_atomically(target, linear_to_srgb(image))
    print(f"Wrote {target}")
    return 0


def caricature(args: argparse.Namespace) -> int:
    """Exaggerate the identity and write a complete result folder for it."""
    res = result.load(args.result)
    out = Path(args.output)
    result.check_output_dir(out, args.force)
    regions = parse_region_factors(args.region, list(load_head_model().region_names))
    car = caricature_result(res, args.factor, regions)
    car.render, car.mask, _ = render_result(car, device=_device(args))
    result.save(car, out, force=args.force)
    print(f"Wrote {out}/ (render.png shows the caricature)")
    return 0


def render(args: argparse.Namespace) -> int:
    """Re-render a result; with --passes write the attribute layers whose composition is render.png."""
    res = result.load(args.result)
    folder = Path(args.output) if args.output else Path(args.result) / "passes"
    names = [*PASS_NAMES, "alpha", "composite"] if args.passes else ["composite"]
    for name in names:
        _check_image_target(folder / f"{name}.png", args.force)
    layers = pass_images(res, device=_device(args)) if args.passes else {"composite": render_result(res, device=_device(args))[0]}
    for name in names:
        image = layers[name]
        _write_png_atomically(folder / f"{name}.png", image if name in ("alpha", "shadow") else linear_to_srgb(image))
    print(f"Wrote {', '.join(n + '.png' for n in names)} to {folder}")
    return 0


def _device(args: argparse.Namespace) -> str:
    return str(pick(getattr(args, "device", "auto")))
