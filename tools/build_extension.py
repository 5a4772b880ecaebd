"""Build dist/facestage-<version>.zip exactly as `blender --command extension build` would.

The bpy wheel ships Blender's own extension tool (bl_pkg/cli/blender_ext.py);
running it here needs no Blender binary and gives the identical zip.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def blender_ext_tool() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The bpy module is needed to build the extension (run `make venv`).")
    tools = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        raise SystemExit("blender_ext.py was not found inside the bpy module.")
    return tools[-1]


def build(output_dir: Path) -> Path:
    """Validate the manifest, build the zip and return its path."""
    tool = blender_ext_tool()
    output_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(tool), "validate", str(ROOT)], check=True)
    subprocess.run([sys.executable, str(tool), "build", "--source-dir", str(ROOT), "--output-dir", str(output_dir)], check=True)
    version = tomllib.loads((ROOT / "blender_manifest.toml").read_text())["version"]
    return output_dir / f"facestage-{version}.zip"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    print(build(parser.parse_args().output_dir))
