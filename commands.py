"""CLI command implementations: thin wrappers over core with terminal progress.

Each command checks its output before doing any work, writes into a
temporary folder and moves it into place at the end, so a failure or Ctrl-C
never leaves a half-written result. cli.py imports this module only when a
command runs, so `--help` and `doctor` never load torch. Progress goes through
terminal.py (bars on a terminal, short lines in a log); with `--quiet` a
command prints only what it wrote.
"""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from . import runs
from .core.apps import relight as apps
from .core.apps.caricature import caricature_result, parse_region_factors
from .core.apps.rerender import PASS_NAMES, pass_images, render_result
from .core.apps.rig import render_rig
from .core.common.config import ENV_ROTATE
from .core.common.device import pick
from .core.common.errors import FaceStageError
from .core.io import result
from .core.io.image import save_png
from .core.io.rig import load_rig
from .core.model.head import load_head_model
from .terminal import counter, stage_progress

log = logging.getLogger(__name__)


def _done(args: argparse.Namespace, path: Path, message: str) -> None:
    """The command's last words: the message, or only the path it wrote with --quiet."""
    print(path if getattr(args, "quiet", False) else message)


def reconstruct(args: argparse.Namespace) -> int:
    with stage_progress(getattr(args, "quiet", False)) as progress:
        out = runs.commit(runs.compute(args.photo, args.output, args, progress), args.output, args)
    _done(args, out, f"Wrote {out}/ — open {out / 'report.png'} first.")
    return 0


def batch(args: argparse.Namespace) -> int:
    """One sub-folder per photo; carries on past failures; --resume skips finished photos.

    --jobs N runs N photos at once in threads (torch and Warp release the GIL in their kernels), each
    with its share of the CPU threads; the summary is rewritten after every photo, in photo order.
    --cluster hands the batch to Ray instead (cluster.py).
    """
    if getattr(args, "cluster", None):
        from .cluster import batch as cluster_batch  # Ray: an optional extra, imported only for --cluster

        return cluster_batch(args)
    photos, out_root, rows, todo = runs.plan(args)
    summary_path = out_root / "summary.json"
    jobs = max(1, min(getattr(args, "jobs", 1), len(todo)))
    threads = torch.get_num_threads()
    if jobs > 1:
        torch.set_num_threads(max(1, threads // jobs))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool, counter("batch", len(todo), "photos",
                                                                   getattr(args, "quiet", False)) as one_more:
            work = pool.map if jobs > 1 else map  # one job: compute on this thread (Ctrl-C stops it at once)
            for (photo, photo_args), (outcome, seconds) in zip(todo, work(lambda job: runs.compute_photo(*job, out_root), todo)):
                rows[photo.name] = runs.commit_photo(photo, photo_args, outcome, seconds, out_root)
                runs.write_summary(out_root, [rows[p.name] for p in photos if p.name in rows])
                one_more()
    finally:
        torch.set_num_threads(threads)
    failed = sum(row["status"] != "ok" for row in rows.values())
    _done(args, summary_path, f"{len(rows) - failed} of {len(rows)} photos reconstructed; summary in {summary_path}.")
    return 0 if failed == 0 else 1


def _check_image_target(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FaceStageError(f"Output {path} already exists; use --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)


def _write_png_atomically(path: Path, image: object, encode_srgb: bool = False) -> None:
    """Write an image (sRGB, or linear with `encode_srgb`) through a temporary file, so a failure leaves nothing."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        save_png(tmp, image, encode_srgb=encode_srgb)  # type: ignore[arg-type]
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
        _write_png_atomically(target, image, encode_srgb=True)
        _done(args, target, f"Wrote {target}")
        return 0
    stage, sh = res.stage, res.sh
    if args.preset == ENV_ROTATE:
        sh = apps.rotate_environment(res.sh, 90.0 if args.rotate_env is None else args.rotate_env, args.pitch)
    elif args.preset:
        stage, sh, note = apps.preset_lighting(res.stage, res.sh, args.preset, exposure=apps.rendered_exposure(res))
        if note and not getattr(args, "quiet", False):
            print(f"{args.preset}: {note}.")
    elif args.lights:
        stage = result.lights_from_file(args.lights, res.stage)
    else:
        sh = apps.rotate_environment(res.sh, args.rotate_env, args.pitch)
    image, _, _ = render_result(res, stage=stage, sh=sh, device=_device(args), relight_photo=True)
    _write_png_atomically(target, image, encode_srgb=True)
    _done(args, target, f"Wrote {target}")
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
    _done(args, out, f"Wrote {out}/ (render.png shows the caricature)")
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
        _write_png_atomically(folder / f"{name}.png", image, encode_srgb=name not in ("alpha", "shadow"))
    _done(args, folder, f"Wrote {', '.join(n + '.png' for n in names)} to {folder}")
    return 0


def _device(args: argparse.Namespace) -> str:
    return str(pick(getattr(args, "device", "auto")))
