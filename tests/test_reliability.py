"""Reliability: bad input, awkward photos, faults, determinism and untrusted result folders.

Every user-caused problem must end as one sentence naming the file, exit
code 2 and nothing written; every awkward-but-valid photo must just work.
Photo-based cases run the landmark stage only (`--stages landmarks`), which
exercises loading, detection, the fit and the whole output contract in a few
seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from facestage.cli import main
from facestage.core.common import config
from facestage.core.fit import pipeline, stages
from facestage.core.io import result
from facestage.core.common.errors import FaceStageError


@pytest.fixture(scope="module")
def astronaut(root) -> Image.Image:
    return Image.open(root / "samples" / "astronaut.jpg").convert("RGB")


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


BAD_INPUT = {
    "missing": "does not exist", "directory": "is a folder", "empty": "is empty", "truncated": "damaged or truncated",
    "text": "not an image", "unsupported": "not supported", "too-small": "at least 64x64", "tiny-face": "pixels wide",
    "no-face": "No face found", "aspect": "aspect ratio",
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(case, tmp_path, astronaut, bad_file, capsys):
    photo = bad_file(case, tmp_path, astronaut)
    out = tmp_path / "out"
    code, err = _run(["reconstruct", str(photo), "-o", str(out), "--stages", "landmarks"], capsys)
    assert code == 2 and BAD_INPUT[case] in err and str(photo) in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_existing_output_and_read_only_folder_are_refused(tmp_path, root, capsys):
    photo = str(root / "samples" / "astronaut.jpg")
    out = tmp_path / "done"
    out.mkdir()
    assert _run(["reconstruct", photo, "-o", str(out)], capsys)[0] == 2
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root ignores permissions)")
        code, err = _run(["reconstruct", photo, "-o", str(locked / "out")], capsys)
        assert code == 2 and "permission denied" in err
    finally:
        locked.chmod(0o700)


def _landmarks_run(photo, out, capsys, *extra: str) -> dict:  # type: ignore[type-arg]
    code, err = _run(["reconstruct", str(photo), "-o", str(out), "--stages", "landmarks", "--no-blend", *extra], capsys)
    assert code == 0, err
    return json.loads((out / "scene.json").read_text())


def _face_centre(doc: dict) -> np.ndarray:  # type: ignore[type-arg]
    """Where the fitted head's centre projects in the photo."""
    K = np.array(doc["camera"]["K"])
    m = np.array(doc["camera"]["world_from_camera"])
    cam = (np.array(doc["head"]["translation"]) - m[:3, 3]) @ m[:3, :3]
    uv = K @ (cam * [1, -1, -1])
    return uv[:2] / uv[2]


AWKWARD = ("grayscale", "rgba", "16-bit", "cmyk", "exif-rotated", "non-ascii path")


@pytest.mark.slow
@pytest.mark.parametrize("case", AWKWARD)
def test_awkward_but_valid_photos_reconstruct(case, tmp_path, astronaut, capsys):
    folder = tmp_path / ("fotos Zoë 写真" if case == "non-ascii path" else "in")
    folder.mkdir()
    photo = folder / ("mein Foto.png" if case == "non-ascii path" else f"{case}.png")
    if case == "grayscale":
        astronaut.convert("L").save(photo)
    elif case == "rgba":
        rgba = astronaut.convert("RGBA")
        alpha = np.full(rgba.size[::-1], 255, np.uint8)
        alpha[:, :60] = 0  # transparent background strip
        rgba.putalpha(Image.fromarray(alpha))
        rgba.save(photo)
    elif case == "16-bit":
        grey = (np.asarray(astronaut.convert("L"), np.float64) * 257).astype(np.uint16)
        Image.fromarray(grey).save(photo)
    elif case == "cmyk":
        photo = photo.with_suffix(".jpg")
        astronaut.convert("CMYK").save(photo, quality=95)
    elif case == "exif-rotated":
        photo = photo.with_suffix(".jpg")
        exif = Image.Exif()
        exif[0x0112] = 8  # stored rotated 90° clockwise; displayed after a 90° counter-clockwise turn
        astronaut.transpose(Image.Transpose.ROTATE_270).save(photo, exif=exif.tobytes(), quality=95)
    else:
        astronaut.save(photo)
    doc = _landmarks_run(photo, tmp_path / "out", capsys)
    # The face is found where it is in the upright photo (the astronaut's head is around x 225, y 125).
    assert np.linalg.norm(_face_centre(doc) - [225, 125]) < 40, _face_centre(doc)
    assert doc["metrics"]["landmark_error_px"] < 3.0


@pytest.mark.slow
def test_several_faces_take_the_largest_record_a_warning_and_honour_face_index(tmp_path, astronaut, capsys):
    canvas = Image.new("RGB", (1024, 512))
    canvas.paste(astronaut, (0, 0))
    canvas.paste(astronaut.resize((400, 400)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (600, 60))
    photo = tmp_path / "two.png"
    canvas.save(photo)
    doc = _landmarks_run(photo, tmp_path / "a", capsys)
    assert any("2 faces" in w for w in doc["warnings"]) and _face_centre(doc)[0] < 512
    doc = _landmarks_run(photo, tmp_path / "b", capsys, "--face-index", "1")
    assert _face_centre(doc)[0] > 600
    assert _run(["reconstruct", str(photo), "-o", str(tmp_path / "c"), "--face-index", "5"], capsys)[0] == 2


@pytest.mark.slow
def test_huge_photo_keeps_its_resolution_and_reconstructs(tmp_path, astronaut, capsys):
    photo = tmp_path / "huge.jpg"
    big = astronaut.resize((6000, 6000), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (8000, 6000), (200, 200, 200))
    canvas.paste(big, (2000, 0))
    canvas.save(photo, quality=80)
    del big, canvas
    doc = _landmarks_run(photo, tmp_path / "out", capsys)
    assert (doc["camera"]["width"], doc["camera"]["height"]) == (8000, 6000) and not doc["warnings"]
    with Image.open(tmp_path / "out" / "render.png") as render:
        assert render.size == (8000, 6000)


def test_same_seed_gives_identical_numbers_and_pngs(tmp_path, root, capsys):
    photo = root / "samples" / "astronaut.jpg"
    docs = [_landmarks_run(photo, tmp_path / name, capsys, "--seed", "3") for name in ("a", "b")]
    for doc in docs:
        doc.pop("timings")
    assert docs[0] == docs[1]
    for name in ("render.png", "mask.png", "diffuse.png", "specular.png", "face.obj"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.slow
def test_nan_mid_stage_rolls_back_and_the_run_finishes(root, monkeypatch):
    real_render = stages.render
    calls = {"n": 0}

    def poisoned(scene, options=None, generator=None, bvh=None, pixel_mask=None):
        out = real_render(scene, options, generator, pixel_mask=pixel_mask)
        calls["n"] += 1
        if calls["n"] == 4:  # one step in the middle of stage 1
            out.image = out.image * torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(stages, "render", poisoned)
    cfg = config.preset("fast", steps=config.StageSteps(landmarks=200, lighting=8, maps=2), render_size=64, texture_size=128)
    res = pipeline.reconstruct(str(root / "samples" / "astronaut.jpg"), cfg)
    assert calls["n"] >= 10 and np.isfinite(res.render).all() and np.isfinite(res.sh).all()
    assert res.metrics["psnr_masked"] > 15


@pytest.mark.parametrize("jobs", [1, 2])
def test_batch_continues_past_failures_and_resume_skips_finished_photos(jobs, tmp_path, root, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(root / "samples" / "astronaut.jpg", inputs / "a.jpg")
    shutil.copy(root / "samples" / "astronaut.jpg", inputs / "b.jpg")
    (inputs / "broken.jpg").write_text("nope")
    out = tmp_path / "out"
    args = ["batch", str(inputs), "-o", str(out), "--stages", "landmarks", "--no-blend", "--jobs", str(jobs)]
    assert main(args) == 1  # one photo failed, the others finished
    summary = {row["photo"]: row for row in json.loads((out / "summary.json").read_text())}
    assert summary["a.jpg"]["status"] == "ok" and summary["broken.jpg"]["status"] == "failed"
    assert "broken.jpg" in summary["broken.jpg"]["error"]
    stamp = (out / "a" / "scene.json").stat().st_mtime_ns
    shutil.rmtree(out / "b")  # as if killed before b finished
    assert main([*args, "--resume"]) == 1
    assert (out / "a" / "scene.json").stat().st_mtime_ns == stamp and (out / "b" / "scene.json").is_file()
    assert (out / "summary.csv").read_text().count("\n") == 4


@pytest.mark.parametrize("damage", ["not json", "wrong format", "nan", "shape", "code"])
def test_damaged_or_malicious_scene_json_is_refused_clearly(damage, tmp_path, reconstructed_stub):
    folder = result.save(reconstructed_stub, tmp_path / "res")
    doc = json.loads((folder / "scene.json").read_text())
    if damage == "not json":
        text = "{not json"
    else:
        if damage == "wrong format":
            doc["format"] = "something-else"
        elif damage == "nan":
            doc["camera"]["K"][0][0] = float("nan")
        elif damage == "shape":
            doc["sh"]["coeffs"] = [[1.0, 2.0]]
        elif damage == "code":
            doc["camera"]["K"] = "__import__('os').system('touch PWNED')"
        text = json.dumps(doc)
    (folder / "scene.json").write_text(text)
    with pytest.raises(FaceStageError) as info:
        result.load(folder)
    assert "scene.json" in str(info.value) and not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")


def test_cli_user_errors_never_show_a_traceback(tmp_path):
    done = subprocess.run([__import__("sys").executable, "-m", "facestage", "relight", str(tmp_path / "nothing"), "--preset", "split"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "does not exist" in done.stderr
