"""Build the extension zips with Blender's own tool: one per platform (--split-platforms), "full" and "lite".

    python tools/build_extension.py                  # dist/facestage-<v>-{full,lite}-<platform>.zip, every platform
    python tools/build_extension.py --variant full --platform linux-x64
    python tools/build_extension.py --variant bare   # dist/facestage-<v>.zip, no wheels (tests in the venv)

The bpy wheel ships Blender's extension tool (bl_pkg/cli/blender_ext.py);
running it needs no Blender binary and gives the zip `blender --command
extension build` would. Each variant is built from a staging copy of the
source whose manifest lists only that variant's wheels (the repository's
manifest lists them all, for every platform; tools/fetch_wheels.py fills
wheels/): "full" bundles every pin of deps.py, "lite" all but torch and
warp-lang, "bare" none.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("full", "lite", "bare")


def blender_ext_tool() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The bpy module is needed to build the extension (run `make venv`).")
    tools = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        raise SystemExit("blender_ext.py was not found inside the bpy module.")
    return tools[-1]


def blender_ext_module() -> ModuleType:
    """blender_ext.py as a module, for its own wheel/platform filters."""
    if "facestage_blender_ext" not in sys.modules:
        spec = importlib.util.spec_from_file_location("facestage_blender_ext", blender_ext_tool())
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["facestage_blender_ext"]


def _run(*args: str) -> None:
    done = subprocess.run([sys.executable, str(blender_ext_tool()), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"blender_ext.py {args[0]} failed:\n{done.stdout}{done.stderr}")


def variant_wheels(manifest: dict, variant: str, platforms: list[str]) -> list[str]:  # type: ignore[type-arg]
    """The manifest's wheel entries a variant bundles on those platforms (full: all; lite: all but torch, warp)."""
    if variant == "bare":
        return []
    keep = blender_ext_module().paths_filter_wheels_by_platform
    entries = [w for w in manifest.get("wheels", []) if any(keep([w], p) for p in platforms)]
    if variant == "lite":
        heavy = ("torch-", "warp_lang-")
        entries = [w for w in entries if not Path(w).name.lower().startswith(heavy)]
    return entries


def staged_manifest(text: str, wheels: list[str], platforms: list[str]) -> str:
    """The manifest text with only these wheels and platforms."""
    listed = "".join(f'  "{w}",\n' for w in wheels)
    text = re.sub(r"^wheels = \[\n(?:.*\n)*?\]\n", f"wheels = [\n{listed}]\n" if wheels else "", text, flags=re.MULTILINE)
    return re.sub(r"^platforms = \[.*\]$", "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
                  text, flags=re.MULTILINE)


def stage(staging: Path, variant: str, platforms: list[str]) -> list[str]:
    """Copy the add-on's files into ``staging`` with the variant's manifest and links to its wheels."""
    text = (ROOT / "blender_manifest.toml").read_text()
    manifest = tomllib.loads(text)
    excluded = {p.strip("/") for p in manifest["build"]["paths_exclude_pattern"] if p.startswith("/")} | {"wheels"}
    shutil.copytree(ROOT, staging, ignore=lambda folder, names: [n for n in names if Path(folder) == ROOT
                                                                   and n in excluded or n == "__pycache__"])
    wheels = variant_wheels(manifest, variant, platforms)
    missing = [w for w in wheels if not (ROOT / w).is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} wheels are not in wheels/ (first: {Path(missing[0]).name}); "
                         "run `make wheels` (or `make wheels-linux` for Linux only) first.")
    (staging / "wheels").mkdir()
    for wheel in wheels:
        (staging / wheel).symlink_to(ROOT / wheel)  # blender_ext adds listed wheels by path, following the link
    (staging / "blender_manifest.toml").write_text(staged_manifest(text, wheels, platforms))
    return wheels


def build_variant(output_dir: Path, variant: str, platforms: list[str] | None = None) -> list[Path]:
    """Validate and build a variant's zips: one per platform ("bare": one for all, without wheels)."""
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    platforms = platforms or list(manifest["platforms"])
    output_dir.mkdir(parents=True, exist_ok=True)
    _run("validate", str(ROOT))
    stem = f"{manifest['id']}-{manifest['version']}"
    with tempfile.TemporaryDirectory(prefix="facestage-stage-") as tmp:
        staging = Path(tmp) / "facestage"
        stage(staging, variant, platforms)
        _run("validate", str(staging))
        if variant == "bare":
            _run("build", "--source-dir", str(staging), "--output-filepath", str(output_dir / f"{stem}.zip"))
            return [output_dir / f"{stem}.zip"]
        _run("build", "--split-platforms", "--source-dir", str(staging),
             "--output-filepath", str(output_dir / f"{stem}-{variant}.zip"))
    return [output_dir / f"{stem}-{variant}-{p.replace('-', '_')}.zip" for p in platforms]


def build(output_dir: Path) -> Path:
    """The zip without wheels, for tests that install it into a bpy that already has every dependency."""
    return build_variant(output_dir, "bare")[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="default: full and lite")
    parser.add_argument("--platform", action="append", help="default: every platform in the manifest")
    args = parser.parse_args()
    for variant in args.variant or ["full", "lite"]:
        for path in build_variant(args.output_dir, variant, args.platform):
            print(f"{path}  {path.stat().st_size / 1e6:.0f} MB")
