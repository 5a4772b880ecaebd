"""The Linux zips installed the way Blender installs them, with the network blocked and no project venv behind them.

Each test runs the bpy module from a fresh virtual environment that holds
only what Blender itself ships (bpy and its own requirements: numpy,
requests, zstandard, ... linked from .venv), so torch, Warp, MediaPipe and
SciPy can only come from the extension. Every socket connection and name
lookup in that Python, and in any process it starts, raises and is logged
(a sitecustomize on PYTHONPATH); the pip configuration of this machine is
hidden. The full zip must install and reconstruct the bundled sample with
pip absent altogether; the lite zip must name what it misses in one
sentence and install it from wheel files on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = [pytest.mark.blender, pytest.mark.slow]

GUARD = """
import os, socket
_log = os.environ["FACESTAGE_NETWORK_LOG"]


def _refuse(*args, **kwargs):
    with open(_log, "a") as log:
        log.write(f"{os.getpid()} {args[1:2]!r}\\n")
    raise OSError("network access is blocked in this test")


socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
"""

PRELUDE = """
import importlib, json, sys, time
from pathlib import Path
import bpy, addon_utils
zip_path, work = sys.argv[1], Path(sys.argv[2])
assert bpy.app.online_access is False
start = time.perf_counter()
assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=zip_path,
                                                enable_on_install=True) == {"FINISHED"}
PKG = "bl_ext.user_default.facestage"
assert addon_utils.check(PKG)[1], "add-on not enabled"
deps = importlib.import_module(PKG + ".deps")
facts = {"install_s": time.perf_counter() - start, "missing": deps.missing(),
         "pip": importlib.util.find_spec("pip") is not None, "extension": str(Path(deps.__file__).parent)}


def origins(*names):
    return {name: str(Path(importlib.import_module(name).__file__).resolve()) for name in names}
"""


def _closure(root: str) -> list[str]:
    """root and every distribution it requires, recursively (no extras)."""
    seen: list[str] = []
    todo = [root]
    while todo:
        name = todo.pop()
        dist = distribution(name)
        if dist.metadata["Name"].lower() in (s.lower() for s in seen):
            continue
        seen.append(dist.metadata["Name"])
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def blender_like_python(folder: Path, with_pip: bool) -> Path:
    """A venv holding only bpy and what bpy requires (what Blender ships), plus pip if asked; its python."""
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(folder)],
                   check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in _closure("bpy") + (["pip"] if with_pip else []):
        dist = distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return python


def run_offline(python: Path, script: str, args: list[str], tmp_path: Path) -> tuple[dict, str]:  # type: ignore[type-arg]
    """Run the script in that python with a throw-away Blender config and the network blocked."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=str(guard), FACESTAGE_NETWORK_LOG=str(log), PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1",
               # Warp's compiled-kernel cache stays the usual one (keyed by Warp's version and the kernels' source).
               WARP_CACHE_PATH=os.environ.get("WARP_CACHE_PATH", str(Path.home() / ".cache" / "warp")))
    done = subprocess.run([str(python), "-c", PRELUDE + textwrap.dedent(script), *args], capture_output=True,
                          text=True, env=env, timeout=900, cwd=tmp_path)
    for line in done.stdout.splitlines():
        if line.startswith("FACTS"):
            return json.loads(line[5:]), log.read_text() if log.exists() else ""
    raise AssertionError(f"no facts ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")


@pytest.fixture(scope="module")
def linux_zips(tmp_path_factory, root):
    sys.path.insert(0, str(root / "tools"))
    from build_extension import build_variant

    out = tmp_path_factory.mktemp("dist")
    return {variant: build_variant(out, variant, ["linux-x64"])[0] for variant in ("full", "lite")}


def test_full_zip_installs_offline_without_pip_and_reconstructs_the_bundled_sample(linux_zips, tmp_path):
    python = blender_like_python(tmp_path / "blender", with_pip=False)
    facts, network = run_offline(python, """
for name in ("Cube", "Light"):  # the new file's cube would enclose the head
    bpy.data.objects.remove(bpy.data.objects[name])
settings = bpy.context.scene.facestage
settings.photo = str(Path(facts["extension"]) / "samples" / "astronaut.jpg")
settings.quality, settings.device, settings.output_dir = "fast", "cpu", str(work / "results")
start = time.perf_counter()
facts["state"] = sorted(bpy.ops.facestage.reconstruct("EXEC_DEFAULT", True))
facts.update(reconstruct_s=time.perf_counter() - start, status=settings.status,
             files=sorted(p.name for p in Path(settings.result_dir).iterdir()),
             objects=sorted(o.name for o in bpy.data.collections["FaceStage"].objects),
             origins=origins("torch", "warp", "mediapipe", "cv2", "scipy", "PIL", "matplotlib", "numpy"),
             site=str(Path(bpy.utils.user_resource("EXTENSIONS")) / ".local"))
print("FACTS" + json.dumps(facts))
""", [str(linux_zips["full"]), str(tmp_path)], tmp_path)
    assert network == "", f"network calls were attempted:\n{network}"
    assert facts["pip"] is False and facts["missing"] == []
    assert facts["state"] == ["FINISHED"] and facts["status"].startswith("Done: ")
    assert {"scene.json", "face.obj", "diffuse.png", "render.png"} <= set(facts["files"])
    assert {"Face", "Light Stage", "FaceStage Camera"} <= set(facts["objects"])
    site = str(Path(facts["site"]).resolve())
    for name, origin in facts["origins"].items():  # the extension's wheels, not the project's venv
        assert origin.startswith(site) == (name != "numpy"), (name, origin)
    print(f"install {facts['install_s']:.1f} s, reconstruct {facts['reconstruct_s']:.1f} s")


def test_lite_zip_names_what_is_missing_and_installs_it_from_wheel_files_offline(linux_zips, root, tmp_path):
    python = blender_like_python(tmp_path / "blender", with_pip=True)
    facts, network = run_offline(python, """
reports = []
def call(op, **kw):
    try:
        return sorted(op("EXEC_DEFAULT", **kw))
    except RuntimeError as error:
        return [str(error)]
facts["check"] = call(bpy.ops.facestage.check_dependencies)
facts["sentence"] = deps.missing_sentence(deps.missing())
facts["online_poll"] = bpy.ops.facestage.install_dependencies.poll()
facts["reconstruct_poll"] = bpy.ops.facestage.reconstruct.poll()
facts["empty_folder"] = call(bpy.ops.facestage.install_wheel_files, directory=str(work))
facts["installed"] = call(bpy.ops.facestage.install_wheel_files, directory=sys.argv[3])
facts.update(status=bpy.context.window_manager.facestage_install.status, after=deps.missing(),
             origins=origins("torch", "warp"), private=str(deps.site_packages().resolve()))
import torch
facts["torch"] = [torch.__version__, float(torch.ones(3).sum())]
print("FACTS" + json.dumps(facts))
""", [str(linux_zips["lite"]), str(tmp_path), str(root / "wheels")], tmp_path)
    assert network == "", f"network calls were attempted:\n{network}"
    assert facts["missing"] == ["torch", "warp"] and facts["pip"] is True
    assert facts["sentence"] == ("PyTorch and Warp are not installed: add them in Preferences › Add-ons › FaceStage "
                                 "with Install Dependencies (online) or Install from Wheel Files (offline).")
    assert facts["online_poll"] is False and facts["reconstruct_poll"] is False
    assert "holds no .whl files" in facts["empty_folder"][0]
    assert facts["installed"] == ["FINISHED"] and facts["after"] == []
    assert facts["status"].startswith("Installed.")
    for origin in facts["origins"].values():
        assert origin.startswith(facts["private"])
    assert facts["torch"] == ["2.13.0+cpu", 3.0]
