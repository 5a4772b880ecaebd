"""The built zips validate, carry exactly the pinned wheels, install and enable in the bpy module, and unregister."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
import zipfile
import zlib
from pathlib import Path

import pytest

from facestage import deps

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def builder(root):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(root / "tools"))
    import build_extension

    return build_extension


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory, builder):
    return builder.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def linux_zips(tmp_path_factory, builder):
    """The full and lite zips for linux-x64 (needs `make wheels-linux`, which `make test` runs first)."""
    out = tmp_path_factory.mktemp("dist")
    return {variant: builder.build_variant(out, variant, ["linux-x64"])[0] for variant in ("full", "lite")}


def test_manifest_meets_blender_rules(root):
    manifest = tomllib.loads((root / "blender_manifest.toml").read_text())
    assert manifest["id"] == "facestage" and manifest["schema_version"] == "1.0.0" and manifest["type"] == "add-on"
    assert len(manifest["tagline"]) <= 64 and manifest["tagline"][-1] not in ".!?,;:"
    assert tuple(int(x) for x in manifest["blender_version_min"].split(".")) >= (4, 2, 0)
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert all(reason and not reason.endswith(".") for reason in manifest["permissions"].values())


def test_blender_ext_validates_the_source(root, builder):
    done = subprocess.run([sys.executable, str(builder.blender_ext_tool()), "validate", str(root)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Success parsing TOML" in done.stdout, done.stdout + done.stderr


def test_zip_holds_the_addon_and_nothing_else(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "core/__init__.py" in names
    assert not [n for n in names if n.startswith((".venv", "tests/", "tools/", "bench/", ".git/", "dist/", "wheels/"))]
    assert any(n.startswith("core/model/data/") for n in names) and "samples/astronaut.jpg" in names


def _generated(archive: zipfile.ZipFile) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(archive.read("blender_manifest.toml").decode())["build"]["generated"]


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_platform_zip_carries_exactly_the_pinned_wheels(variant, linux_zips, builder, root, load_tool):
    """Every wheel the zip's manifest lists is in the zip, is the pinned version, and the zip validates."""
    archive = zipfile.ZipFile(linux_zips[variant])
    generated = _generated(archive)
    assert generated["platforms"] == ["linux-x64"]
    listed = [w.removeprefix("./") for w in generated["wheels"]]
    in_zip = sorted(n for n in archive.namelist() if n.startswith("wheels/"))
    assert sorted(listed) == in_zip and len(in_zip) == len(deps.bundled(variant))
    heavy = [n for n in in_zip if Path(n).name.startswith(("torch-", "warp_lang-"))]
    assert heavy == (["wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                      "wheels/warp_lang-1.19.0-py3-none-manylinux_2_28_x86_64.whl"] if variant == "full" else [])
    problems = load_tool("fetch_wheels").check_pins(["./" + n for n in in_zip], "linux-x64")
    expected = [] if variant == "full" else ["torch: no wheel for pin 2.13.0+cpu", "warp-lang: no wheel for pin 1.19.0"]
    assert problems == expected
    for name in in_zip:  # bundled unmodified: the very file pip fetched
        assert archive.getinfo(name).CRC == zlib.crc32((root / name).read_bytes()), name
    done = subprocess.run([sys.executable, str(builder.blender_ext_tool()), "validate", str(linux_zips[variant])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_same_sources_give_the_same_manifest_and_wheel_list(linux_zips, builder, tmp_path):
    again = builder.build_variant(tmp_path, "full", ["linux-x64"])[0]
    first, second = zipfile.ZipFile(linux_zips["full"]), zipfile.ZipFile(again)
    assert first.read("blender_manifest.toml") == second.read("blender_manifest.toml")
    assert sorted(first.namelist()) == sorted(second.namelist())


FILTER_SCRIPT = """
import json, sys, sysconfig
import bpy
from bl_pkg import bl_extension_ops
kept = {}
for platform, (tag, wheels) in json.loads(sys.argv[1]).items():
    sysconfig.get_platform = lambda tag=tag: tag
    kept[platform] = bl_extension_ops._extensions_wheel_filter_for_this_system(wheels)
print("KEPT" + json.dumps(kept))
"""


def test_blender_would_install_every_wheel_of_each_platform_zip(root, python, blender_env, load_tool):
    """Blender's own install-time filter (platform and Python 3.11) keeps each platform's whole share of the list."""
    fetch = load_tool("fetch_wheels")
    wheels = tomllib.loads((root / "blender_manifest.toml").read_text())["wheels"]
    tags = {"linux-x64": "linux-x86_64", "windows-x64": "win-amd64", "macos-arm64": "macosx-11.0-arm64"}
    shares = {p: (tag, fetch.for_platform(wheels, p)) for p, tag in tags.items()}
    done = subprocess.run([python, "-c", FILTER_SCRIPT, json.dumps(shares)], capture_output=True, text=True,
                          env=blender_env, timeout=300)
    kept = json.loads(next(line[4:] for line in done.stdout.splitlines() if line.startswith("KEPT")))
    for platform, (_, share) in shares.items():
        assert len(share) == len(deps.bundled("full")) and kept[platform] == share, platform


INSTALL_SCRIPT = textwrap.dedent("""
    import sys, bpy
    zip_path = sys.argv[1]
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=zip_path, enable_on_install=True)
    assert result == {"FINISHED"}, result
    import addon_utils
    module = "bl_ext.user_default.facestage"
    assert addon_utils.check(module)[1], "add-on not enabled"
    assert hasattr(bpy.types, "VIEW3D_PT_facestage")
    panel = bpy.types.VIEW3D_PT_facestage
    assert panel.bl_category == "FaceStage" and panel.bl_region_type == "UI"
    assert hasattr(bpy.ops.facestage, "reconstruct") and bpy.ops.facestage.reconstruct.idname() == "FACESTAGE_OT_reconstruct"
    assert hasattr(bpy.ops.facestage, "install_wheel_files")
    assert hasattr(bpy.types.Scene, "facestage")
    bpy.ops.preferences.addon_disable(module=module)
    assert not hasattr(bpy.types, "VIEW3D_PT_facestage")
    assert not hasattr(bpy.types, "FACESTAGE_OT_reconstruct")
    assert not hasattr(bpy.types.Scene, "facestage")
    bpy.ops.preferences.addon_enable(module=module)
    assert hasattr(bpy.types, "VIEW3D_PT_facestage")
    print("INSTALLED-OK")
""")


def test_zip_installs_enables_and_unregisters_in_bpy(extension_zip, python, blender_env):
    done = subprocess.run([python, "-c", INSTALL_SCRIPT, str(extension_zip)], capture_output=True, text=True,
                          env=blender_env, timeout=300)
    assert "INSTALLED-OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
