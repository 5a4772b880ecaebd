"""A clean terminal: native libraries stay silent unless -v, a refused photo is one line, progress fits a log file."""

from __future__ import annotations

import io
import subprocess
import sys
import types

import pytest

from facestage import terminal
from facestage.cli import main
from facestage.core.common.progress import Progress


def _cli(python, args, cwd, **env):  # type: ignore[no-untyped-def]
    import os

    return subprocess.run([python, "-m", "facestage", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=300)


def test_a_photo_without_a_face_prints_exactly_one_line(python, tmp_path, bad_file, root):
    """MediaPipe's TFLite/absl/glog lines are gone; -v brings them back (so the silence is ours, not MediaPipe's)."""
    from PIL import Image

    photo = bad_file("no-face", tmp_path, Image.open(root / "samples" / "astronaut.jpg"))
    done = _cli(python, ["reconstruct", str(photo), "-o", str(tmp_path / "out")], root.parent)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"facestage: No face found in {photo}."]
    verbose = _cli(python, ["-v", "reconstruct", str(photo), "-o", str(tmp_path / "out")], root.parent)
    assert verbose.returncode == 2 and len(verbose.stderr.splitlines()) > 1
    assert verbose.stderr.splitlines()[-1] == f"facestage: No face found in {photo}."


def test_warp_starts_without_a_word(python, root):
    """Warp's native CUDA probe ("Could not find or load the NVIDIA CUDA driver" without a GPU) is silenced."""
    code = "from facestage.core.render.raytrace import warp_runtime; warp_runtime(); print('ready')"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=root.parent, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ready" and done.stderr == ""


def test_progress_in_a_log_is_one_short_line_per_stage_and_quarter(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with terminal.stage_progress() as progress:
        assert progress is not None
        for step in range(1, 73):
            progress(Progress("landmarks", step, 72, loss=1.0 / step))
        for step in range(1, 11):
            progress(Progress("lighting", step, 150))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "landmarks: 72 steps" and lines[5] == "lighting: 150 steps" and len(lines) == 6
    assert [line.split(": ")[1].split(" ")[0] for line in lines[1:5]] == ["25%", "50%", "75%", "100%"]
    assert all(len(line) < 80 and "\r" not in line for line in lines)


def test_bars_only_on_a_terminal_outside_blender(monkeypatch):
    tty = types.SimpleNamespace(isatty=lambda: True)
    assert terminal.draws_bars(tty) and not terminal.draws_bars(io.StringIO())
    monkeypatch.setitem(sys.modules, "bpy", types.SimpleNamespace(app=types.SimpleNamespace(binary_path="/opt/blender")))
    assert terminal.inside_blender() and not terminal.draws_bars(tty)  # blender -b --command facestage: lines
    monkeypatch.setitem(sys.modules, "bpy", types.SimpleNamespace(app=types.SimpleNamespace(binary_path="")))
    assert not terminal.inside_blender()  # the bpy module from PyPI is not Blender's console


def test_quiet_shows_no_progress_and_verbose_conflicts_with_it(capsys):
    with terminal.stage_progress(quiet=True) as progress:
        assert progress is None
    assert main(["-v", "doctor", "--quiet"]) == 2
    assert "either -v or --quiet" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--quiet", "relight"], ["relight", "--quiet"]])
def test_quiet_prints_only_the_path_written(argv, tmp_path, reconstructed_stub, capsys):
    from facestage.core.apps.rerender import render_result
    from facestage.core.io import result

    stub = reconstructed_stub
    stub.render_crop = (0.0, 0.0, float(max(stub.width, stub.height)), 32)
    stub.render, stub.mask, _ = render_result(stub)
    folder = result.save(stub, tmp_path / "res")
    target = tmp_path / "relit.png"
    args = [*argv, str(folder), "--preset", "rim", "-o", str(target)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{target}\n" and captured.err == "" and target.is_file()
