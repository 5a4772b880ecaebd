"""core/ must work where Blender is absent: importing it with bpy blocked succeeds."""

from __future__ import annotations

import subprocess
import textwrap


def test_core_imports_with_bpy_blocked(python, root):
    script = textwrap.dedent("""
        import sys, importlib, pkgutil
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "bpy" or name.startswith("bpy."):
                    raise ImportError("bpy is blocked in this test")
        sys.meta_path.insert(0, Block())
        import facestage, facestage.core, facestage.cli
        for info in pkgutil.walk_packages(facestage.core.__path__, "facestage.core."):
            importlib.import_module(info.name)
        assert "bpy" not in sys.modules
        print("ok")
    """)
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=root.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_core_sources_never_import_bpy(root):
    offenders = [p for p in (root / "core").rglob("*.py")
                 if any(line.strip().startswith(("import bpy", "from bpy")) for line in p.read_text().splitlines())]
    assert offenders == []
