"""Benchmark: does the re-render look like the person? Inner-face PSNR/SSIM on real photos, core and Cycles.

    python bench/real_photos.py [--quality default] [--only NAME ...] [--reuse] [--spp 64] [--label TEXT]

For every portrait of bench/photos/photos.json (a missing file is skipped with a message; the images are
not in git, see bench/photos/SOURCES.md) plus samples/astronaut.jpg, this runs what a user runs:
`python -m facestage reconstruct` (which writes face.blend when bpy is importable) and `relight --preset
rembrandt`, then renders face.blend with Cycles in a bpy subprocess (64 spp + OpenImageDenoise). When the
file composites the face over the photo itself (its compositor is in use), the score is of exactly what F12
gives; an older file without that is rendered with a transparent film and laid over the photo here, as
render.png is. Both renders are scored against photo.png over the inner face (core.fit.masks.
inner_face_mask on landmarks detected in photo.png): PSNR and SSIM (core.common.metrics).

Writes bench/results/real_photos.json, bench/results/real_photos.md, one side-by-side sheet per photo in
bench/results/real_photos/<name>.png (photo with the inner face outlined | render.png | Cycles | relit),
and the table between the real-photos markers of README.md; earlier full runs are kept in the JSON's
"history". Photos are split into tuning and held-out
(never tune on held-out; they are reported separately). Work folders: out/real_photos/<quality>/<name>.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from _results import RESULTS, publish

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "bench" / "photos"
SHEETS = RESULTS / "real_photos"
README = ROOT / "README.md"
README_START, README_END = "<!-- real-photos:start -->", "<!-- real-photos:end -->"
TUNING = ("pale_redhead_frontal", "glasses_man_frontal", "fringe_glasses_smile", "open_smile_man", "beard_man_yaw",
          "smile_woman_teeth", "dark_man_frontal", "dreadlocks_man_smile", "astronaut")
HELD_OUT = ("fringe_shorthair_yaw", "profile_man_yaw", "older_man_blue_glasses", "glasses_beard_man",
            "headwrap_woman_yaw", "dark_woman_frontal", "dark_man_smile", "dark_woman_smile_up")
TARGETS = {"render_psnr_mean_db": 30.0, "render_psnr_min_db": 27.0, "cycles_gap_db": 2.0}
TILE = 360
LABEL = 34

CYCLES_SCRIPT = r"""
import json, sys
import bpy
import numpy as np

blend, out, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bpy.ops.wm.open_mainfile(filepath=blend)
scene = bpy.context.scene
cy = scene.cycles
cy.device = "CPU"
cy.samples = spec["spp"]
cy.use_denoising = True
cy.denoiser = "OPENIMAGEDENOISE"
tree = getattr(scene, "compositing_node_group", None)
composited = tree is not None and any(n.bl_idname == "CompositorNodeImage" for n in tree.nodes)
if spec.get("border"):  # only the face's square is rendered; outside it F12 gives the photo either way
    r = scene.render
    r.use_border, r.use_crop_to_border = True, False
    r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y = spec["border"]
settings = scene.render.image_settings
if composited:  # the file lays the face over the photo itself: score exactly what F12 gives (8-bit PNG)
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
    path = out + ".png"
else:  # an older file: a transparent film, laid over the photo by the benchmark as render.png is
    scene.render.film_transparent = True
    settings.file_format, settings.color_mode, settings.color_depth = "OPEN_EXR", "RGBA", "32"
    path = out + ".exr"
scene.render.filepath = path
bpy.ops.render.render(write_still=True)
if not composited:
    image = bpy.data.images.load(path)
    pixels = np.array(image.pixels[:], np.float32).reshape(image.size[1], image.size[0], image.channels)[::-1]
    np.save(out + ".npy", pixels)
print(json.dumps({"composited_in_blender": composited, "path": path,
                  "denoiser": cy.denoiser if cy.use_denoising else None}))
"""


def photo_list() -> list[dict[str, Any]]:
    """photos.json entries plus the sample photo, each with its split."""
    entries = json.loads((PHOTOS / "photos.json").read_text())
    entries.append({"file": str(ROOT / "samples" / "astronaut.jpg"), "tags": ["sample"], "fitzpatrick": "II"})
    for entry in entries:
        entry["name"] = Path(entry["file"]).stem
        entry["split"] = "tuning" if entry["name"] in TUNING else "held-out" if entry["name"] in HELD_OUT else "other"
    return entries


def run(command: list[str], log: Path, code: Path | None = None) -> float:
    """Run a command (stdout+stderr to `log`), raise on failure; returns the wall time. `code`: a folder holding
    another checkout as `facestage/`, imported instead of this one (a baseline run of older code)."""
    start = time.perf_counter()
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(command[:4])} failed: {' | '.join(tail)}")
    return time.perf_counter() - start


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    from facestage.core.io.image import srgb_to_linear as convert

    return convert(x)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    from facestage.core.io.image import linear_to_srgb as convert

    return convert(x)


def load_rgb(path: Path) -> np.ndarray:
    from facestage.core.io.image import load_png

    return load_png(path)[..., :3]


def cycles_image(folder: Path, spp: int, photo: np.ndarray, crop: tuple[float, float, float] | None = None
                 ) -> tuple[np.ndarray, dict[str, Any], float]:
    """face.blend rendered with Cycles, as an sRGB image over the photo; the render's facts; wall seconds.

    `crop` (x0, y0, side in photo pixels: scene.json's render crop) limits Cycles to that square with a render
    border (the inner face and every pixel where the face may be shown lie inside it; outside it the
    composite is the photo), which saves most of the render time.
    """
    blend = folder / "face.blend"
    if not blend.is_file():
        raise RuntimeError(f"{blend} was not written (is bpy importable?)")
    out = folder / "cycles_f12"
    for suffix in (".png", ".exr", ".npy"):
        Path(str(out) + suffix).unlink(missing_ok=True)
    env = dict(os.environ)
    script = folder / "cycles_render.py"
    script.write_text(CYCLES_SCRIPT)
    start = time.perf_counter()
    spec: dict[str, Any] = {"spp": spp}
    if crop is not None:
        h, w = photo.shape[:2]
        x0, y0, side = crop
        spec["border"] = [max(0.0, x0 / w), min(1.0, (x0 + side) / w), max(0.0, 1 - (y0 + side) / h), min(1.0, 1 - y0 / h)]
    done = subprocess.run([sys.executable, str(script), str(blend), str(out), json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError("Cycles render failed: " + " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:]))
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    if facts["composited_in_blender"]:
        image = load_rgb(Path(facts["path"]))
    else:
        pixels = np.load(str(out) + ".npy")
        alpha = pixels[..., 3:4]
        image = linear_to_srgb(pixels[..., :3] + (1 - alpha) * srgb_to_linear(photo))  # premultiplied over
    return np.clip(image, 0, 1).astype(np.float32), facts, wall


def score(image: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    from facestage.core.common.metrics import psnr, ssim

    return {"psnr_db": round(psnr(image, photo, mask), 2), "ssim": round(ssim(image, photo, mask), 4)}


def sheet(name: str, row: dict[str, Any], tiles: list[tuple[str, np.ndarray]], outline: np.ndarray,
          crop: tuple[float, float, float]) -> Path:
    """photo | render.png | Cycles | relit, cropped to the head, labelled with the scores."""
    x0, y0, side = crop
    box = (round(x0), round(y0), round(x0 + side), round(y0 + side))
    canvas = Image.new("RGB", (TILE * len(tiles), TILE + LABEL), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    for k, (label, image) in enumerate(tiles):
        picture = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
        if k == 0:
            ImageDraw.Draw(picture).line([tuple(p) for p in outline] + [tuple(outline[0])], fill=(60, 230, 90), width=2)
        picture = picture.crop(box).resize((TILE, TILE), Image.Resampling.LANCZOS)
        canvas.paste(picture, (k * TILE, LABEL))
        draw.text((k * TILE + 6, 4), label, fill=(235, 235, 235))
    draw.text((6, 18), f"{name} ({row['split']})", fill=(160, 160, 160))
    SHEETS.mkdir(parents=True, exist_ok=True)
    path = SHEETS / f"{name}.png"
    canvas.save(path, optimize=True)
    return path


def inner_face(photo: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The inner-face mask of photo.png and its outline (for the sheet)."""
    from scipy.spatial import ConvexHull

    from facestage.core.fit.landmarks import detect
    from facestage.core.fit.masks import BROW_TOP, N_FACE_LANDMARKS, inner_face_mask

    points = detect(photo, source).points
    mask = inner_face_mask(points, photo.shape[1], photo.shape[0])
    face = points[:N_FACE_LANDMARKS]
    kept = face[face[:, 1] >= face[list(BROW_TOP), 1].min()]
    return mask, kept[ConvexHull(kept).vertices]


def albedo_ita(folder: Path, mask: np.ndarray) -> float:
    """ITA (degrees) of the reconstruction's mean diffuse albedo over the inner face where the head is seen: the
    skin tone a relit shot shows. Issue 19's fairness check on real photos, where no albedo truth exists: a type
    VI face must not come back at the ITA of a type III one."""
    from accuracy import ita_deg

    from facestage.core.apps.rerender import pass_images
    from facestage.core.io.result import load

    layers = pass_images(load(folder))
    seen = (np.asarray(mask) > 0.5) & (layers["alpha"] > 0.99)
    return round(ita_deg(layers["albedo"][seen].astype(np.float64).mean(0)), 1)


def measure(entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Reconstruct (unless reused), relight, render in Cycles and score one photo."""
    name = entry["name"]
    source = Path(entry["file"]) if Path(entry["file"]).is_absolute() else PHOTOS / entry["file"]
    folder = args.work / name
    saved = args.work / f"{name}.row.json"
    if args.reuse and saved.is_file():
        return json.loads(saved.read_text())
    row: dict[str, Any] = {"name": name, "split": entry["split"], "fitzpatrick": entry.get("fitzpatrick"),
                           "tags": entry.get("tags", []), "quality": args.quality}
    py = [sys.executable, "-m", "facestage"]
    seconds: dict[str, float] = {}
    if not (args.reuse and (folder / "scene.json").is_file() and (folder / "face.blend").is_file()):
        folder.parent.mkdir(parents=True, exist_ok=True)
        seconds["reconstruct"] = run([*py, "reconstruct", str(source), "-o", str(folder), "--quality", args.quality,
                                      "--device", "cpu", "--force"], args.work / f"{name}.reconstruct.log", args.code)
    seconds["relight"] = run([*py, "relight", str(folder), "--preset", "rembrandt", "-o", str(folder / "relit.png"),
                              "--force", "--device", "cpu"], args.work / f"{name}.relight.log", args.code)
    doc = json.loads((folder / "scene.json").read_text())
    photo = load_rgb(folder / "photo.png")
    rendered = load_rgb(folder / "render.png")
    relit = load_rgb(folder / "relit.png")
    mask, outline = inner_face(photo, str(source))
    row["inner_face_px"] = int(mask.sum())
    row["render"] = score(rendered, photo, mask)
    row["albedo_ita_deg"] = albedo_ita(folder, mask)
    tiles = [("photo (inner face outlined)", photo), (f"render.png  {row['render']['psnr_db']:.1f} dB  "
                                                      f"SSIM {row['render']['ssim']:.3f}", rendered)]
    if not args.no_cycles:
        cycles, facts, seconds["cycles"] = cycles_image(folder, args.spp, photo, tuple(doc["render"]["crop"][:3]))
        Image.fromarray((cycles * 255).round().astype(np.uint8)).save(folder / "cycles.png")
        row["cycles"] = {**score(cycles, photo, mask), "spp": args.spp, **facts}
        row["cycles_gap_db"] = round(row["render"]["psnr_db"] - row["cycles"]["psnr_db"], 2)
        tiles.append((f"Cycles {args.spp} spp + OIDN  {row['cycles']['psnr_db']:.1f} dB  SSIM {row['cycles']['ssim']:.3f}",
                      cycles))
    tiles.append(("relit (rembrandt)", relit))
    row["timings_s"] = {**{k: round(v, 1) for k, v in seconds.items()}, "pipeline": doc.get("timings", {})}
    row["metrics"] = doc.get("metrics", {})
    row["sheet"] = str(sheet(name, row, tiles, outline, tuple(doc["render"]["crop"][:3])).relative_to(ROOT))
    saved.write_text(json.dumps(row))
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means per split and the targets' verdicts."""
    out: dict[str, Any] = {}
    for split in ("tuning", "held-out", "all"):
        chosen = [r for r in rows if split == "all" or r["split"] == split]
        if not chosen:
            continue
        part: dict[str, Any] = {"photos": len(chosen)}
        for key in ("render", "cycles"):
            values = [r[key] for r in chosen if key in r]
            if values:
                part[key] = {"psnr_db_mean": round(float(np.mean([v["psnr_db"] for v in values])), 2),
                             "psnr_db_min": round(float(np.min([v["psnr_db"] for v in values])), 2),
                             "ssim_mean": round(float(np.mean([v["ssim"] for v in values])), 4)}
        out[split] = part
    every = out.get("all", {})
    if "render" in every:
        gaps = [r["cycles_gap_db"] for r in rows if "cycles_gap_db" in r]
        out["targets"] = {"render_psnr_mean_db": every["render"]["psnr_db_mean"] >= TARGETS["render_psnr_mean_db"],
                          "render_psnr_min_db": every["render"]["psnr_db_min"] >= TARGETS["render_psnr_min_db"],
                          "cycles_gap_db": bool(gaps) and max(gaps) <= TARGETS["cycles_gap_db"]}
    return out


def _reconstruct_seconds(row: dict[str, Any]) -> str:
    """The reconstruction's wall time; with --reuse, the reused run's own pipeline total, marked."""
    if "reconstruct" in row["timings_s"]:
        return f"{row['timings_s']['reconstruct']:.0f}"
    return f"{row['timings_s'].get('pipeline', {}).get('total', float('nan')):.0f} (reused)"


def markdown(report: dict[str, Any]) -> str:
    head = (f"Run `{report['label']}` ({report['date']}, quality {report['quality']}, {report['machine']}; Cycles "
            f"{report['spp']} spp + OpenImageDenoise). Inner face = brows to chin, eyes and mouth included. Albedo "
            f"ITA: the recovered skin tone (Individual Typology Angle of the mean albedo over the seen inner face; "
            f"above 41° very light, below −30° dark). Targets: "
            f"render.png ≥ {TARGETS['render_psnr_mean_db']:.0f} dB mean and ≥ {TARGETS['render_psnr_min_db']:.0f} dB "
            f"on every photo; Cycles within {TARGETS['cycles_gap_db']:.0f} dB of render.png.")
    lines = [head, "", "| photo | split | type | render.png dB | SSIM | Cycles dB | SSIM | gap dB | albedo ITA ° | reconstruct s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for split in ("tuning", "held-out"):
        for r in (r for r in report["photos"] if r["split"] == split):
            c = r.get("cycles", {})
            lines.append(f"| {r['name']} | {split} | {r.get('fitzpatrick') or ''} | {r['render']['psnr_db']:.1f} | "
                         f"{r['render']['ssim']:.3f} | {c.get('psnr_db', float('nan')):.1f} | {c.get('ssim', float('nan')):.3f} | "
                         f"{r.get('cycles_gap_db', float('nan')):+.1f} | {r.get('albedo_ita_deg', float('nan')):+.0f} | "
                         f"{_reconstruct_seconds(r)} |")
    for split in ("tuning", "held-out", "all"):
        part = report["summary"].get(split)
        if part and "render" in part:
            c = part.get("cycles", {})
            lines.append(f"| **{split} mean** ({part['photos']}) | | | {part['render']['psnr_db_mean']:.1f} "
                         f"(min {part['render']['psnr_db_min']:.1f}) | {part['render']['ssim_mean']:.3f} | "
                         f"{c.get('psnr_db_mean', float('nan')):.1f} | {c.get('ssim_mean', float('nan')):.3f} | | | |")
    if report.get("skipped"):
        lines += ["", "Skipped (file missing or failed): " + "; ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    text = README.read_text()
    if README_START in text and README_END in text:
        before, rest = text.split(README_START, 1)
        after = rest.split(README_END, 1)[1]
        README.write_text(f"{before}{README_START}\n{table}{README_END}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", default="default")
    parser.add_argument("--only", nargs="+", help="photo names (file stems) to run")
    parser.add_argument("--reuse", action="store_true",
                        help="keep what the work folder already has: finished photos' rows and reconstructions")
    parser.add_argument("--spp", type=int, default=64)
    parser.add_argument("--no-cycles", action="store_true")
    parser.add_argument("--label", default="current")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--code", type=Path, help="run the reconstructions with the checkout in CODE/facestage "
                        "(e.g. `git archive <commit>` extracted there) instead of this one: a baseline")
    args = parser.parse_args()
    args.work = (args.work or ROOT / "out" / "real_photos" / args.quality).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    for entry in photo_list():
        if args.only and entry["name"] not in args.only:
            continue
        source = Path(entry["file"]) if Path(entry["file"]).is_absolute() else PHOTOS / entry["file"]
        if not source.is_file():
            print(f"skipping {entry['name']}: {source} is missing (see bench/photos/SOURCES.md)", flush=True)
            skipped.append(f"{entry['name']} (missing)")
            continue
        print(f"{entry['name']} …", flush=True)
        try:
            rows.append(measure(entry, args))
        except RuntimeError as error:
            print(f"  failed: {error}", flush=True)
            skipped.append(f"{entry['name']} ({error})")
            continue
        r = rows[-1]
        print(f"  render.png {r['render']['psnr_db']:.2f} dB / {r['render']['ssim']:.3f}"
              + (f", Cycles {r['cycles']['psnr_db']:.2f} dB / {r['cycles']['ssim']:.3f}" if "cycles" in r else "")
              + f", {r['timings_s']}", flush=True)
    report = {"label": args.label, "date": datetime.date.today().isoformat(), "quality": args.quality, "spp": args.spp,
              "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "targets": TARGETS, "photos": rows,
              "skipped": skipped, "summary": summary(rows)}
    partial = bool(args.only)
    previous = RESULTS / "real_photos.json"
    if not partial and previous.is_file():  # earlier full runs stay as the history (one line per photo)
        old = json.loads(previous.read_text())
        report["history"] = [*old.get("history", []), {
            k: old[k] for k in ("label", "date", "quality", "spp", "summary")} | {
            "photos": {r["name"]: {"render": r["render"], "cycles": r.get("cycles", {})} for r in old["photos"]}}]
    publish("real_photos_partial" if partial else "real_photos", report)
    table = markdown(report)
    (RESULTS / ("real_photos_partial.md" if partial else "real_photos.md")).write_text(table)
    if not partial:
        update_readme(table)
    print(table)


if __name__ == "__main__":
    main()
