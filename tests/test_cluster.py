"""`facestage batch --cluster` on a real Ray cluster that this module starts and stops.

The head node runs in its own session (`ray start --head --block`, 2 CPUs), bound to 127.0.0.1 only
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray advertise the loopback address instead of the
machine's) and with token authentication, as a real cluster would have. The photos are synthetic
Cycles heads (tools/synthetic.py) reconstructed at --quality fast; the Ray-free checks run without Ray.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from facestage import cluster
from facestage.cli import main

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="the cluster extra is not installed (make venv-cluster)")
FAST = ["--quality", "fast", "--seed", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head(tmp_path_factory, python):  # type: ignore[no-untyped-def]
    """Address of a 2-CPU head node on 127.0.0.1; drivers of this module (and their subprocesses) can join it."""
    if not HAS_RAY:
        pytest.skip("the cluster extra is not installed (make venv-cluster)")
    assert "ray" not in sys.modules, "ray must load after RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is set"
    patch = pytest.MonkeyPatch()
    for name, value in {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                        "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}.items():
        patch.setenv(name, value)
    port = _free_port()
    ports = [f"--{flag}={_free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                     "runtime-env-agent-port", "metrics-export-port",
                                                     "node-manager-port", "object-manager-port")]
    log_file = tmp_path_factory.mktemp("ray") / "head.log"
    temp_dir = tempfile.mkdtemp(prefix="fs-ray-")  # Ray's sessions and sockets (short: socket paths are limited)
    with log_file.open("w") as log:
        process = subprocess.Popen([str(Path(python).with_name("ray")), "start", "--head", "--block", f"--port={port}",
                                    "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                                    f"--temp-dir={temp_dir}", *ports], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log_file.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_file.read_text()[-2000:]
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever of its session is left
        except ProcessLookupError:
            pass
        patch.undo()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, load_tool) -> Path:  # type: ignore[no-untyped-def]
    """A folder with two synthetic heads, a.png and b.png, at 256 px.

    Half the scenes' 512 px: the final render at the photo's resolution took a third of each fast reconstruction
    (13 of 43 s on one thread; 3 s at 256 px), and this module runs six or more of them.
    """
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    for name, scene in zip("ab", load_tool("synthetic").ensure_scenes([0, 1])):
        with Image.open(scene / "image.png") as image:
            image.resize((256, 256), Image.Resampling.LANCZOS).save(folder / f"{name}.png")
    return folder


def _finished(out: Path) -> list[Path]:
    """scene.json of the committed photo folders (not of the hidden temporary ones)."""
    return [path for path in out.glob("*/scene.json") if not path.parent.name.startswith(".")]


def _summary(out: Path) -> dict[str, dict[str, object]]:
    return {row["photo"]: row for row in json.loads((out / "summary.json").read_text())}


@pytest.fixture(scope="module")
def three_photos_batch(head, photos, tmp_path_factory):  # type: ignore[no-untyped-def]
    """a.png, b.png and a broken.jpg through the cluster, stopping after stage 1: (exit code, OUT)."""
    inputs = tmp_path_factory.mktemp("in3")
    for photo in photos.iterdir():
        shutil.copy(photo, inputs / photo.name)
    (inputs / "broken.jpg").write_text("not a photo")
    out = tmp_path_factory.mktemp("out3") / "out"
    return main(["batch", str(inputs), "-o", str(out), "--cluster", head, *FAST, "--stages", "lighting"]), out


@needs_ray
@pytest.mark.slow
def test_batch_of_three_with_one_broken_records_its_reason_and_goes_on(three_photos_batch):
    code, out = three_photos_batch
    summary = _summary(out)
    assert code == 1 and list(summary) == ["a.png", "b.png", "broken.jpg"]
    for name in ("a", "b"):
        row = summary[f"{name}.png"]
        assert row["status"] == "ok" and row["error"] == "" and row["psnr"] > 22.0, row
        assert row["blend"] is True and (out / name / "face.blend").stat().st_size > 100_000  # workers here have bpy
        assert (out / name / "scene.json").is_file() and not list(out.glob(f".{name}.*"))
        assert (out / "logs" / f"{name}.log").read_text().count("finished: ok") == 1
    broken = summary["broken.jpg"]
    assert broken["status"] == "failed" and broken["blend"] is False and not (out / "broken").exists()
    assert re.fullmatch(r"Cannot read photo \S+broken\.jpg: it is not an image [^.]*\.", str(broken["error"]))
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == "photo,status,error,seconds,psnr,blend,node" and len(csv_lines) == 4


@needs_ray
@pytest.mark.slow
def test_cluster_results_equal_the_thread_batch_for_the_same_seed(three_photos_batch, photos, tmp_path):
    import torch

    _, cluster_out = three_photos_batch
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(photos / "a.png", inputs / "a.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as many as the cluster's fast task had: thread count changes float sums
    try:
        assert main(["batch", str(inputs), "-o", str(tmp_path / "out"), *FAST, "--stages", "lighting", "--no-blend"]) == 0
    finally:
        torch.set_num_threads(threads)
    docs = [json.loads((root / "a" / "scene.json").read_text()) for root in (cluster_out, tmp_path / "out")]
    for doc in docs:
        doc.pop("timings")
    assert docs[0]["seed"] == 3 and docs[0]["lights"] and docs[0] == docs[1]
    for name in ("render.png", "diffuse.png", "face.obj"):
        assert (cluster_out / "a" / name).read_bytes() == (tmp_path / "out" / "a" / name).read_bytes(), name


def _wait_for(condition, what: str, driver: subprocess.Popen, stderr: Path, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert driver.poll() is None, f"the driver ended before {what}: {stderr.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s: {stderr.read_text()[-2000:]}"
        time.sleep(0.1)
    return found


@needs_ray
@pytest.mark.slow
def test_killed_worker_and_killed_driver_then_resume_lose_nothing_and_redo_nothing(head, photos, tmp_path, python):
    out = tmp_path / "out"
    args = ["batch", str(photos), "-o", str(out), "--cluster", head, *FAST, "--stages", "landmarks"]
    no_bpy = tmp_path / "no-bpy"  # the killed driver's workers lack bpy: their results must come without face.blend
    (no_bpy / "bpy").mkdir(parents=True)
    (no_bpy / "bpy" / "__init__.py").write_text("raise ImportError('no bpy on this worker')\n")
    script = ("import sys, ray\nfrom facestage.cli import main\n"
              f"ray.init(address={head!r}, runtime_env={{'env_vars': {{'PYTHONPATH': {str(no_bpy)!r}}}}}, log_to_driver=False)\n"
              "sys.exit(main(sys.argv[1:]))\n")
    stderr = tmp_path / "driver.err"
    with stderr.open("w") as err:  # 2 CPUs a photo: one at a time, so the driver dies with a photo to go
        driver = subprocess.Popen([python, "-c", script, *args, "--cpus-per-task", "2"], stdout=subprocess.DEVNULL,
                                  stderr=err)
    try:
        def attempt() -> tuple[str, int] | None:
            for log in (out / "logs").glob("*.log"):
                match = re.search(r"attempt: (\S+) on \S+, pid (\d+)", log.read_text())
                if match:
                    return match[1], int(match[2])
            return None

        killed_photo, worker = _wait_for(attempt, "task", driver, stderr)
        os.kill(worker, signal.SIGKILL)  # Ray must run that photo again
        first = _wait_for(lambda: next(iter(_finished(out)), None), "finished photo", driver, stderr)
        driver.kill()
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    stamp = first.stat().st_ino, first.stat().st_mtime_ns
    assert len(_finished(out)) == 1, "the driver finished everything before it was killed"

    assert main([*args, "--resume"]) == 0
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == stamp  # not done twice
    summary = _summary(out)
    assert [row["status"] for row in summary.values()] == ["ok", "ok"]
    for name in ("a", "b"):
        log = (out / "logs" / f"{name}.log").read_text()
        assert log.count("finished: ok") == 1, log  # each photo reconstructed to the end exactly once
        assert (out / name / "scene.json").is_file() and not list(out.glob(f".{name}.*"))
        by_killed_driver = out / name == first.parent
        assert summary[f"{name}.png"]["blend"] is not by_killed_driver
        assert (out / name / "face.blend").is_file() is not by_killed_driver
    assert (out / "logs" / f"{Path(killed_photo).stem}.log").read_text().count("attempt:") >= 2


def test_without_ray_the_cluster_batch_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out"), "--cluster", "local"]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "requirements-cluster.txt" in message and cluster.RAY_REQUIREMENT in message
    assert not (tmp_path / "out").exists()


def test_requirements_cluster_pins_the_ray_the_code_names(root):
    lines = [line for line in (root / "requirements-cluster.txt").read_text().splitlines() if line and line[0] != "#"]
    assert cluster.RAY_REQUIREMENT in lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^=\s]*", x) for x in lines)


def test_task_resources_follow_the_quality_unless_given():
    assert cluster.task_resources("fast", "cpu", 8.0) == (1.0, 0.0, 1.5e9)
    assert cluster.task_resources("default", "auto", 0.0) == (1.0, 0.0, 2.0e9)  # no GPU in the cluster
    assert cluster.task_resources("default", "auto", 4.0) == (1.0, 0.5, 2.0e9)
    assert cluster.task_resources("high", "cuda", 0.0) == (2.0, 1.0, 4.0e9)
    assert cluster.task_resources("fast", "cuda", 1.0, cpus=3.0, gpus=0.1) == (3.0, 0.1, 1.5e9)


def test_a_worker_that_sees_another_output_folder_writes_nothing(tmp_path, root):
    out = tmp_path / "out"
    out.mkdir()
    (out / cluster.MARKER).write_text("the driver's token")
    row = cluster._run_photo(str(root / "samples" / "astronaut.jpg"), str(out), None, None, 1.0,  # type: ignore[arg-type]
                             "another driver's token")
    assert row["status"] == "failed" and "not the driver's" in str(row["error"]) and row["photo"] == "astronaut.jpg"
    assert sorted(p.name for p in out.iterdir()) == [cluster.MARKER]


BLENDER_DRIVER = """
import sys, bpy
result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=sys.argv[1], enable_on_install=True)
assert result == {"FINISHED"}, result
from bl_ext.user_default.facestage.cli import main
sys.exit(main(sys.argv[2:]))
"""


@needs_ray
@pytest.mark.slow
@pytest.mark.blender
def test_from_blender_the_workers_run_the_installed_addon(head, tmp_path, root, python, blender_env):
    """Inside Blender the add-on is bl_ext.<repo>.facestage, which plain-Python workers cannot import."""
    sys.path.insert(0, str(root / "tools"))
    from build_extension import build

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "broken.jpg").write_text("not a photo")  # reaches the worker's reconstruction in a second or two
    done = subprocess.run([python, "-c", BLENDER_DRIVER, str(build(tmp_path / "dist")), "batch", str(inputs), "-o",
                           str(out), "--cluster", head], capture_output=True, text=True, env=blender_env, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    row = _summary(out)["broken.jpg"]
    assert row["status"] == "failed" and "not an image" in str(row["error"]) and row["node"], row
    addon = Path(blender_env["XDG_CONFIG_HOME"]).resolve()
    assert re.search(rf"facestage from {re.escape(str(addon))}/\S+/extensions/user_default/facestage\n",
                     (out / "logs" / "broken.log").read_text())
