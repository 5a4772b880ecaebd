"""Photos as cameras make them: the work follows the face, not the pixel count; results come back at full size.

The speed and memory targets live in bench/photo_sizes.py; here the work is
counted in pixels, not timed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facestage.cli import main
from facestage.core.common.config import StageSteps, preset
from facestage.core.fit import pipeline, stages, working
from facestage.core.io import exif, image, result
from facestage.core.render import crop as crop_module

sys.path.insert(0, str(Path(__file__).parent))
from blender_helpers import fake_result, read_json_line, run_bpy  # noqa: E402


class _Stop(Exception):
    """Raised by the progress callback at the first photometric step."""


def _portrait(root: Path, folder: Path, side: int) -> Path:
    """The sample portrait, upscaled to side × side: the same photo at another pixel count."""
    path = folder / f"portrait_{side}.jpg"
    with Image.open(root / "samples" / "astronaut.jpg") as sample:
        sample.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def _landmark_stage_work(photo: Path, monkeypatch) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(steps done, steps planned, pixels processed) from the first landmark step to the first lighting step,
    which is what the "landmarks" progress bar covered when a 20 MP photo spent five minutes there."""
    state = {"on": False, "pixels": 0, "steps": 0, "total": 0}

    def counted(function, size):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            if state["on"]:
                state["pixels"] += size(*args, **kwargs)
            return function(*args, **kwargs)
        return wrapper

    def area(array, *rest, **options):  # type: ignore[no-untyped-def]
        return int(np.prod(np.shape(array)[:2])) if np.ndim(array) >= 2 else 0

    monkeypatch.setattr(image, "area_reduce", counted(image.area_reduce, area))
    monkeypatch.setattr(image, "srgb_to_linear", counted(image.srgb_to_linear, area))
    monkeypatch.setattr(image, "to_float", counted(image.to_float, area))
    monkeypatch.setattr(crop_module, "_resample", counted(crop_module._resample,
                                                          lambda im, xs, ys: area(im) + len(xs) * len(ys)))
    monkeypatch.setattr(working, "skin_mask", counted(working.skin_mask, lambda points, w, h, **_: w * h))
    monkeypatch.setattr(stages, "render", counted(stages.render, lambda scene, options=None, *rest, **_:
                                                  scene.width * scene.height * (options.spp if options else 1)))

    def progress(p):  # type: ignore[no-untyped-def]
        if p.stage == "landmarks":
            state.update(on=True, steps=state["steps"] + 1, total=p.total)
        elif p.stage == "lighting":
            raise _Stop()

    config = preset("fast", device="cpu", steps=StageSteps(landmarks=200, lighting=2, maps=1))
    with pytest.raises(_Stop):
        pipeline.reconstruct(str(photo), config, progress=progress)
    return state["steps"], state["total"], state["pixels"]


def test_a_24_mp_photo_costs_the_landmark_stage_no_more_than_a_1_mp_one(root, tmp_path, monkeypatch):
    small = _landmark_stage_work(_portrait(root, tmp_path, 1000), monkeypatch)
    large = _landmark_stage_work(_portrait(root, tmp_path, 4899), monkeypatch)  # 24.0 MP
    assert large[1] == small[1] and large[0] <= small[0] + 2, (small, large)
    assert 0 < large[2] <= small[2], (small, large)  # pixels processed: set by the face crop, not the photo
    # a few working-size crops, masks and renders, and the occlusion mask on the face window (the photo is 1 MP)
    assert small[2] < 3_000_000


def test_a_final_renders_shadow_rays_stay_within_the_budget_whatever_the_crop_size():
    """Shadow rays (lights × light samples + the world's diffuse and glossy directions, per sample) of the final
    render: a 2048 px crop may not cost more than the budget's crop, and the smallest crop keeps every sample."""
    from facestage.core.apps.rerender import FINAL_WORLD_SAMPLES
    from facestage.core.render import tiles

    def rays(size: int) -> int:
        options = tiles.final_options(size, environment_samples=FINAL_WORLD_SAMPLES)
        return size * size * options.spp * (tiles.LIGHTS * options.light_samples + 2 * options.environment_samples)

    small = tiles.final_options(256, environment_samples=FINAL_WORLD_SAMPLES)
    assert (small.spp, small.light_samples, small.environment_samples) == (tiles.FINAL_SPP, tiles.FINAL_LIGHT_SAMPLES,
                                                                             FINAL_WORLD_SAMPLES)
    budget = rays(tiles.FINAL_BUDGET_SIDE)
    for size in (768, 1024, 1536, 2048):
        assert rays(size) <= 1.1 * budget, (size, rays(size) / budget)


@pytest.mark.slow
def test_relit_png_of_a_24_mp_photo_has_the_photos_size(tmp_path, capsys):
    """The stub's head sits in a 6000 x 4000 photo; the relit image is composited back into all of it."""
    stub = fake_result()
    width, height = 6000, 4000
    scale = width / stub.width
    photo = np.zeros((height, width, 3), np.uint8)
    photo[..., 0] = np.linspace(0, 255, width).astype(np.uint8)
    photo[..., 2] = 90
    stub.photo_srgb = photo
    stub.K = np.diag([scale, scale, 1.0]) @ stub.K
    stub.render_crop = (0.0, 0.0, float(width), 96)
    stub.render, stub.mask = np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32)
    folder = result.save(stub, tmp_path / "res")
    target = tmp_path / "relit.png"
    assert main(["relight", str(folder), "--preset", "rim", "-o", str(target), "--quiet"]) == 0
    assert capsys.readouterr().out == f"{target}\n"
    with Image.open(target) as relit:
        assert relit.size == (width, height)
        pixels = np.asarray(relit)
    assert np.array_equal(pixels[:50], photo[:50])  # where the head is not, the photo's own pixels, untouched
    assert np.abs(pixels.astype(int) - photo).max() > 40  # and the relit head is in it


def test_a_heic_photo_with_an_exif_focal_length_reaches_scene_json(root, tmp_path, capsys):
    """An iPhone-style HEIC with FocalLengthIn35mmFilm: opened through pillow-heif, the focal length seeds the
    camera, and scene.json says where it came from."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    photo = tmp_path / "portrait.heic"
    tags = Image.Exif()
    tags.get_ifd(exif.EXIF_IFD)[exif.FOCAL_35MM] = 50
    with Image.open(root / "samples" / "astronaut.jpg") as sample:
        sample.convert("RGB").save(photo, quality=92, exif=tags.tobytes())
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo), "-o", str(out), "--stages", "landmarks", "--quality", "fast",
                 "--no-blend", "--quiet"]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    camera = json.loads((out / "scene.json").read_text())["camera"]
    expected = 50 * np.sqrt(2) * 36 / exif.FULL_FRAME_DIAGONAL_MM  # a square photo: 50 mm on the diagonal
    assert camera["focal_source"] == "exif-35mm" and camera["exif_focal_mm"] == pytest.approx(expected, abs=1e-3)
    assert camera["focal_mm"] == pytest.approx(expected, rel=0.05)  # the estimate alone says ~65 mm
    assert result.load(out).focal_source == "exif-35mm"


@pytest.mark.blender
def test_the_blender_scene_renders_at_the_photos_size_with_the_full_photo_behind(tmp_path, blender_env):
    folder = result.save(fake_result(size=(3000, 2000)), tmp_path / "res")
    script = """
    import json, sys
    import bpy
    from facestage.scene.build import build_scene
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    build_scene(sys.argv[1], bpy.context)
    render = bpy.context.scene.render
    camera = bpy.data.objects["FaceStage Camera"].data
    photo = camera.background_images[0].image
    print("FACTS" + json.dumps({"size": [render.resolution_x, render.resolution_y], "photo": list(photo.size),
                                "packed": photo.packed_file is not None, "name": photo.name}))
    """
    facts = read_json_line(run_bpy(script, blender_env, str(folder)), "FACTS")
    assert facts == {"size": [3000, 2000], "photo": [3000, 2000], "packed": True, "name": "FaceStage Photo"}
