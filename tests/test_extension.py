"""The built zip validates, installs and enables in the bpy module, and unregisters cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import zipfile

import pytest

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory, root):
    sys.path.insert(0, str(root / "tools"))
    from build_extension import build

    return build(tmp_path_factory.mktemp("dist"))


def test_manifest_meets_blender_rules(root):
    manifest = tomllib.loads((root / "blender_manifest.toml").read_text())
    assert manifest["id"] == "facestage" and manifest["schema_version"] == "1.0.0" and manifest["type"] == "add-on"
    assert len(manifest["tagline"]) <= 64 and manifest["tagline"][-1] not in ".!?,;:"
    assert tuple(int(x) for x in manifest["blender_version_min"].split(".")) >= (4, 2, 0)
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert all(reason and not reason.endswith(".") for reason in manifest["permissions"].values())


def test_zip_holds_the_addon_and_nothing_else(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "core/__init__.py" in names
    assert not [n for n in names if n.startswith((".venv", "tests/", "tools/", "bench/", ".git/", "dist/"))]
    assert any(n.startswith("core/model/data/") for n in names)


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
