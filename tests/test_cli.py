"""The command line: subcommands, doctor, and user errors as one line with exit code 2."""

from __future__ import annotations

import subprocess

from facestage.cli import main

SUBCOMMANDS = ("reconstruct", "batch", "relight", "caricature", "render", "doctor")


def test_help_lists_every_subcommand(python, root):
    done = subprocess.run([python, "-m", "facestage", "--help"], capture_output=True, text=True, cwd=root.parent)
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert name in done.stdout


def test_doctor_reports_versions_and_device(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for line_start in ("torch", "warp", "mediapipe", "numpy", "device"):
        assert any(line.startswith(line_start) for line in out.splitlines()), line_start
    assert "2.13.0" in out and "1.19.0" in out and "0.10.21" in out


def test_missing_photo_exits_2_with_one_line(python, root, tmp_path):
    done = subprocess.run([python, "-m", "facestage", "reconstruct", "missing.jpg", "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.jpg" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_option_is_a_usage_error_not_a_traceback(capsys):
    assert main(["reconstruct"]) == 2
    assert "usage" in capsys.readouterr().err
