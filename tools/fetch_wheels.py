"""Fill wheels/ with the pinned wheels of every platform the extension is built for, and check the manifest lists them.

    python tools/fetch_wheels.py                       # all platforms (make wheels)
    python tools/fetch_wheels.py --platform linux-x64  # one platform (make wheels-linux, what the tests need)
    python tools/fetch_wheels.py --lock                # ask pip again and rewrite the manifest's `wheels` list

For each platform and each Python that the supported Blender versions ship
(deps.PYTHONS), this runs `pip download --only-binary=:all: --no-deps` with
that platform's tags on exactly the pins of deps.bundled(): wheels come
unmodified from the package index, and the pins are the whole dependency
closure, so nothing is resolved here.

The manifest's `wheels` list is the lock: the same pins give the same files,
in the same order. When every listed wheel of a platform is already in
wheels/ and matches the pins, pip is not run at all (no network); otherwise
the downloaded files must equal the manifest's entries, or this fails and
says what differs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

MANIFEST = ROOT / "blender_manifest.toml"
WHEELS = ROOT / "wheels"
# The tags a wheel may carry, best first. Linux: Blender 4.2+ needs glibc 2.28. macOS: torch 2.13.0's only arm64
# wheel is tagged macosx_14_0, so the macOS zip needs macOS 14 (Blender itself runs from 11.2).
PIP_PLATFORMS = {
    "linux-x64": [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + ["manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": [f"macosx_{major}_0_{arch}" for major in (14, 13, 12, 11) for arch in ("arm64", "universal2")]
                   + [f"macosx_10_{minor}_universal2" for minor in range(16, 8, -1)],
}
_SAVED = re.compile(r"(?:Saved|File was already downloaded) (.+\.whl)\s*$")
_BLOCK = re.compile(r"^wheels = \[\n(?:.*\n)*?\]\n", re.MULTILINE)


def _deps():  # type: ignore[no-untyped-def]
    """deps.py of this checkout, loaded as a plain module (it imports nothing from the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("facestage_deps", ROOT / "deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirements(platform: str) -> list[str]:
    """The pins to download for ``platform``: the full set, torch with its platform's local label."""
    deps = _deps()
    pins = list(deps.bundled("full"))
    torch = deps.HEAVY[0]
    pins[pins.index(torch)] = torch + deps.TORCH_LOCAL.get(platform, "")
    return pins


def download(platform: str, python: str, dest: Path) -> list[str]:
    """pip-download the platform's pins for one Python; the wheel file names pip saved or found."""
    dest.mkdir(parents=True, exist_ok=True)
    version = python.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
               "--abi", f"cp{version}", "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for tag in PIP_PLATFORMS[platform]:
        command += ["--platform", tag]
    done = subprocess.run(command + requirements(platform), capture_output=True, text=True)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        hint = (" The Linux zip carries PyTorch's CPU wheel: add https://download.pytorch.org/whl/cpu as an extra "
                "index (PIP_EXTRA_INDEX_URL) or put the wheel in a --find-links folder."
                if platform == "linux-x64" and "torch" in detail else "")
        raise SystemExit(f"Fetching the {platform} wheels for Python {python} failed ({detail}).{hint}")
    names = [Path(m.group(1)).name for line in done.stdout.splitlines() if (m := _SAVED.search(line))]
    if len(names) != len(requirements(platform)):
        raise SystemExit(f"pip reported {len(names)} wheels for {len(requirements(platform))} pins on {platform}.")
    return names


def manifest_wheels(text: str) -> list[str]:
    """The manifest's `wheels` entries (paths as written, ./wheels/<file>)."""
    import tomllib

    return list(tomllib.loads(text).get("wheels", []))


def wheel_block(names: Iterable[str]) -> str:
    """The manifest's `wheels = [...]` block: one sorted, de-duplicated entry a line."""
    lines = "".join(f'  "./wheels/{name}",\n' for name in sorted(set(names), key=str.lower))
    return f"wheels = [\n{lines}]\n"


def for_platform(entries: Iterable[str], platform: str) -> list[str]:
    """The entries Blender's own filter keeps for ``platform`` (what --split-platforms puts in that zip)."""
    from build_extension import blender_ext_module

    return blender_ext_module().paths_filter_wheels_by_platform(list(entries), platform)


def check_pins(entries: Iterable[str], platform: str) -> list[str]:
    """What is wrong with a platform's wheel entries against deps.py: one wheel per pin, at the pinned version."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    deps = _deps()
    pins = {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in deps.bundled("full")}
    pins["torch"] += deps.TORCH_LOCAL.get(platform, "")
    found: dict[str, list[str]] = {}
    for entry in for_platform(entries, platform):
        name, version, _, _ = parse_wheel_filename(Path(entry).name)
        found.setdefault(name, []).append(str(version))
    problems = [f"{name}: {versions} for pin {pins.get(name)}" for name, versions in sorted(found.items())
                if versions != [pins.get(name)]]
    return problems + [f"{name}: no wheel for pin {version}" for name, version in sorted(pins.items())
                       if name not in found]


def up_to_date(listed: list[str], platform: str) -> bool:
    """Every listed wheel of the platform is in wheels/ and the list matches the pins: nothing to fetch."""
    names = [Path(entry).name for entry in for_platform(listed, platform)]
    return bool(names) and all((WHEELS / n).is_file() for n in names) and not check_pins(listed, platform)


def main(argv: list[str] | None = None) -> int:
    deps = _deps()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", action="append", choices=deps.PLATFORMS,
                        help="only this platform (repeatable; default: all)")
    parser.add_argument("--lock", action="store_true", help="rewrite the manifest's wheels list from what pip fetched")
    parser.add_argument("--refresh", action="store_true", help="run pip even when wheels/ looks complete")
    args = parser.parse_args(argv)
    platforms = args.platform or list(deps.PLATFORMS)
    if args.lock and platforms != list(deps.PLATFORMS):
        parser.error("--lock needs every platform")
    text = MANIFEST.read_text()
    fetched = {}
    for platform in platforms:
        if args.lock or args.refresh or not up_to_date(manifest_wheels(text), platform):
            fetched[platform] = sorted({n for python in deps.PYTHONS for n in download(platform, python, WHEELS)})
        else:
            fetched[platform] = sorted(Path(e).name for e in for_platform(manifest_wheels(text), platform))
    if args.lock:
        block = wheel_block(n for names in fetched.values() for n in names)
        if not _BLOCK.search(text):
            raise SystemExit("The manifest has no `wheels = [` block (before its first [table]) to rewrite.")
        text = _BLOCK.sub(block, text)
        MANIFEST.write_text(text)
    listed = manifest_wheels(text)
    problems = [f"{platform}: {problem}" for platform in platforms for problem in check_pins(listed, platform)]
    for platform, names in fetched.items():
        expected = sorted(Path(entry).name for entry in for_platform(listed, platform))
        if names != expected:
            problems.append(f"{platform}: fetched but not listed {sorted(set(names) - set(expected))}, "
                            f"listed but not fetched {sorted(set(expected) - set(names))}")
    if problems:
        print("The manifest's wheels list does not match the pins (run `make wheels-lock` after changing a pin):\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return 1
    for platform, names in fetched.items():
        size = sum((WHEELS / n).stat().st_size for n in names)
        print(f"{platform}: {len(names)} wheels, {size / 1e6:.0f} MB in {WHEELS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
