"""The add-on's installer pins exactly what the project's venv is tested with."""

from __future__ import annotations

from pathlib import Path

from facestage import deps


def _pins(path: Path) -> dict[str, str]:
    rows = [line.split("==") for line in path.read_text().splitlines() if "==" in line]
    return {name.lower(): version for name, version in rows}


def test_installer_pins_match_requirements(root):
    tested = _pins(root / "requirements.txt") | _pins(root / "requirements-mediapipe.txt")
    for spec in deps.PINNED + deps.PINNED_MEDIAPIPE_DEPS + deps.PINNED_NO_DEPS:
        name, version = spec.split("==")
        assert tested[name.lower()] == version, spec


def test_installer_only_runs_pinned_pip_commands(tmp_path):
    commands = deps.pip_commands(tmp_path)
    packages = [arg for command in commands for arg in command[command.index("--upgrade") + 1:] if not arg.startswith("-")]
    assert packages and all("==" in p for p in packages)
    assert all(str(tmp_path) in command for command in commands)
