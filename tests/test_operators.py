"""The add-on's operators and panels, installed from the built zip into the bpy module.

Each test runs a fresh bpy process that installs and enables the extension,
replaces what it must (core.fit.pipeline.reconstruct, deps.missing, deps.install)
inside the installed package, and calls the operators the way scripts do
(EXEC_DEFAULT, synchronously). The worker thread and the cancel operator are
driven through the same Job the modal operator uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from blender_helpers import fake_result_folder, read_json_line, run_bpy  # noqa: E402

pytestmark = pytest.mark.blender

PRELUDE = """
import importlib, json, os, sys, threading, time
from pathlib import Path
import bpy
zip_path, folder, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(zip_path),
                                                enable_on_install=True) == {"FINISHED"}
PKG = "bl_ext.user_default.facestage"
pkg = importlib.import_module(PKG)
pipeline = importlib.import_module(PKG + ".core.fit.pipeline")
Progress = importlib.import_module(PKG + ".core.common.progress").Progress
errors = importlib.import_module(PKG + ".core.common.errors")
settings = bpy.context.scene.facestage

def names():
    groups = ("collections", "objects", "meshes", "materials", "images", "lights", "cameras", "worlds")
    return {g: sorted(d.name for d in getattr(bpy.data, g)) for g in groups}

def call(op, *args, **kwargs):
    try:
        return sorted(op("EXEC_DEFAULT", True, *args, **kwargs)), ""
    except RuntimeError as error:
        return ["ERROR"], str(error).strip().removeprefix("Error: ")

photo = work / "photo.png"
photo.write_bytes((folder / "photo.png").read_bytes())
settings.output_dir = str(work / "results")
bpy.ops.ed.undo_push(message="before")
"""


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory, root):
    sys.path.insert(0, str(root / "tools"))
    from build_extension import build

    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory):
    return fake_result_folder(tmp_path_factory.mktemp("fake") / "OUT")


@pytest.fixture()
def run(extension_zip, result_folder, blender_env, tmp_path):
    def run(script: str, tracebacks: bool = False) -> dict:  # type: ignore[type-arg]
        out = run_bpy(PRELUDE + script, blender_env, str(extension_zip), str(result_folder), str(tmp_path),
                      tracebacks=tracebacks)
        return {**read_json_line(out, "FACTS"), "stdout": out}

    return run


def test_build_scene_operator_builds_the_scene_and_undo_removes_it(run, result_folder):
    facts = run("""
before = names()
state, message = call(bpy.ops.facestage.build_scene, directory=str(folder))
built = names()
result_dir = settings.result_dir
bpy.ops.ed.undo()
undone = names()
bpy.ops.ed.redo()
print("FACTS" + json.dumps({"state": state, "built": built, "same_after_undo": undone == before,
                            "redone": "Face" in names()["objects"], "result_dir": result_dir}))
""")
    assert facts["state"] == ["FINISHED"]
    assert {"Face", "Eye L", "Eye R", "Light Stage", "FaceStage Camera"} <= set(facts["built"]["objects"])
    assert facts["same_after_undo"] and facts["redone"]
    assert Path(facts["result_dir"]) == result_folder
    assert "Cube encloses the face or its camera and will hide it in renders" in facts["stdout"]


def test_operators_say_why_they_are_greyed_out_when_dependencies_are_missing(run):
    facts = run("""
pkg.deps.missing = lambda: ["torch", "warp"]
out = {}
for name in ("reconstruct", "build_scene"):
    op = getattr(bpy.ops.facestage, name)
    out[name] = [op.poll(), call(op)[1]]
out["cancel"] = [bpy.ops.facestage.cancel.poll(), call(bpy.ops.facestage.cancel)[1]]
out["render_shot"] = [bpy.ops.facestage.render_shot.poll()]
print("FACTS" + json.dumps(out))
""")
    for name in ("reconstruct", "build_scene"):
        poll, message = facts[name]
        assert poll is False and "Install the dependencies first" in message and "torch, warp" in message
    assert facts["cancel"][0] is False and "No reconstruction is running" in facts["cancel"][1]
    assert facts["render_shot"] == [True]


def test_missing_photo_is_reported_and_the_scene_is_unchanged(run):
    facts = run("""
before = names()
settings.photo = ""
empty = call(bpy.ops.facestage.reconstruct)
settings.photo = str(work / "no such photo.jpg")
missing = call(bpy.ops.facestage.reconstruct)
print("FACTS" + json.dumps({"empty": empty, "missing": missing, "same": names() == before}))
""")
    assert facts["empty"] == [["ERROR"], "Choose a photo of a face first."]
    assert facts["missing"][0] == ["ERROR"] and "no such photo.jpg: the file does not exist." in facts["missing"][1]
    assert "Traceback" not in facts["missing"][1]
    assert facts["same"]


def test_cancelling_the_worker_leaves_the_scene_and_output_untouched(run):
    facts = run("""
job_module = importlib.import_module(PKG + ".jobs")
reconstruct = importlib.import_module(PKG + ".operators.reconstruct")
config = importlib.import_module(PKG + ".core.common.config").preset("fast")
started, threads = threading.Event(), []

def slow(photo, config, progress=None, cancel=None):
    threads.append(threading.current_thread() is threading.main_thread())
    for step in range(1000):
        progress(Progress("landmarks", step, 1000, 1.0 / (step + 1)))
        started.set()
        if cancel.is_set():
            raise errors.Cancelled()
        time.sleep(0.01)
    raise AssertionError("never cancelled")

pipeline.reconstruct = slow
before = names()
target = work / "results" / "threaded"
job = job_module.Job("reconstruct", reconstruct.reconstruction(str(photo), config, target), "failed")
job.start()
started.wait(10)
poll_running = bpy.ops.facestage.reconstruct.poll()
state = sorted(bpy.ops.facestage.cancel())
job.thread.join(10)
items = job.drain()
job.release()

def cancelled_sync(photo, config, progress=None, cancel=None):
    progress(Progress("landmarks", 3, 10, 0.5))
    raise errors.Cancelled()

pipeline.reconstruct = cancelled_sync
settings.photo = str(photo)
sync = call(bpy.ops.facestage.reconstruct)
print("FACTS" + json.dumps({"worker_off_main": threads == [False], "cancel_state": state, "poll_running": poll_running,
                            "error": job.error, "cancelled": job.cancelled, "progress_items": len(items),
                            "first_stage": items[0].stage if items else None, "output_exists": target.exists(),
                            "results_exist": (work / "results").exists(), "same": names() == before,
                            "sync": sync, "status": settings.status}))
""")
    assert facts["worker_off_main"] and facts["cancel_state"] == ["FINISHED"] and facts["poll_running"] is False
    assert facts["cancelled"] and facts["error"] == "Reconstruction cancelled; nothing was written."
    assert facts["progress_items"] > 0 and facts["first_stage"] == "landmarks"
    assert not facts["output_exists"] and not facts["results_exist"]
    assert facts["same"]
    assert facts["sync"][0] == ["ERROR"]
    assert "Reconstruction cancelled; nothing was written." in facts["sync"][1]
    assert facts["status"] == "Reconstruction cancelled; nothing was written."


def test_modal_timer_drains_progress_and_esc_cancels(run):
    facts = run("""
job_module = importlib.import_module(PKG + ".jobs")
reconstruct = importlib.import_module(PKG + ".operators.reconstruct")
config = importlib.import_module(PKG + ".core.common.config").preset("fast")
Operator = reconstruct.FACESTAGE_OT_reconstruct
started = threading.Event()

def slow(photo, config, progress=None, cancel=None):
    for step in range(1000):
        progress(Progress("lighting", step + 1, 1000, 0.25))
        started.set()
        if cancel.is_set():
            raise errors.Cancelled()
        time.sleep(0.01)

class Modal:
    \"\"\"The operator's own modal(), pump() and finish() on a stand-in instance (no event loop in bpy).\"\"\"
    modal, pump, finish = Operator.modal, Operator.pump, Operator.finish
    _timer, _folder = None, work / "results" / "modal"
    _steps = {"landmarks": 200, "lighting": 60, "maps": 40}
    reports = []
    def report(self, kind, message):
        self.reports.append([sorted(kind), message])

class Event:
    def __init__(self, type, value="NOTHING"):
        self.type, self.value = type, value

pipeline.reconstruct = slow
before = names()
op = Modal()
op._job = job_module.Job("reconstruct", reconstruct.reconstruction(str(photo), config, op._folder), "failed")
op._job.start()
started.wait(10)
time.sleep(0.1)
first = sorted(op.modal(bpy.context, Event("TIMER")))
status, progress = settings.status, settings.progress
esc = sorted(op.modal(bpy.context, Event("ESC", "PRESS")))
states = []
for _ in range(500):
    states.append(sorted(op.modal(bpy.context, Event("TIMER"))))
    if states[-1] != ["PASS_THROUGH"]:
        break
    time.sleep(0.01)
print("FACTS" + json.dumps({"first": first, "status": status, "progress": progress, "esc": esc, "last": states[-1],
                            "reports": op.reports, "same": names() == before, "running": job_module.running("reconstruct") is not None}))
""")
    assert facts["first"] == ["PASS_THROUGH"]
    assert facts["status"].startswith("Lighting ") and "loss 0.25" in facts["status"]
    assert 200 / 300 < facts["progress"] < 1.0  # landmarks done, lighting under way
    assert facts["esc"] == ["RUNNING_MODAL"] and facts["last"] == ["CANCELLED"]
    assert facts["reports"] == [[["ERROR"], "Reconstruction cancelled; nothing was written."]]
    assert facts["same"] and not facts["running"]


def test_worker_errors_are_one_sentence_and_the_next_run_succeeds(run):
    facts = run("""
fake = importlib.import_module("blender_helpers").fake_result(package=PKG)
settings.photo = str(photo)
before = names()

def no_face(photo, config, progress=None, cancel=None):
    raise errors.FaceStageError(f"No face found in {Path(photo).name}.")

def bug(photo, config, progress=None, cancel=None):
    raise ValueError("boom")

def works(photo, config, progress=None, cancel=None):
    for stage, total in (("landmarks", 4), ("lighting", 3), ("maps", 2)):
        for step in range(total + 1):
            progress(Progress(stage, step, total, 0.1))
    return fake

pipeline.reconstruct = no_face
first = call(bpy.ops.facestage.reconstruct)
pipeline.reconstruct = bug
second = call(bpy.ops.facestage.reconstruct)
unchanged = names() == before
pipeline.reconstruct = works
third = call(bpy.ops.facestage.reconstruct)
out = Path(settings.result_dir)
facts = {"first": first, "second": second, "unchanged": unchanged, "third": third, "status": settings.status,
         "files": sorted(p.name for p in out.iterdir()), "out": str(out), "objects": names()["objects"],
         "collection_dir": bpy.data.collections["FaceStage"]["facestage_result_dir"]}
bpy.ops.ed.undo()
facts["undone"] = "Face" not in names()["objects"]
print("FACTS" + json.dumps(facts))
""", tracebacks=True)
    assert facts["first"] == [["ERROR"], "No face found in photo.png."]
    message = facts["second"][1]
    assert "Reconstruction failed unexpectedly (ValueError: boom); see the system console for details." in message
    assert facts["unchanged"]
    assert facts["third"] == [["FINISHED"], ""]
    assert Path(facts["out"]).parent.name == "results" and Path(facts["out"]).name == "photo"
    assert {"scene.json", "face.obj", "diffuse.png"} <= set(facts["files"])
    assert facts["status"] == f"Done: {facts['out']}" and facts["collection_dir"] == facts["out"]
    assert "Face" in facts["objects"] and facts["undone"]


def test_light_toggle_and_render_shot_work_on_the_built_scene(run, tmp_path):
    facts = run("""
call(bpy.ops.facestage.build_scene, directory=str(folder))
light = bpy.data.objects["Stage Light 02"]
was = [light.hide_render, light.hide_viewport]
toggled = call(bpy.ops.facestage.toggle_light, name="Stage Light 02")
now = [light.hide_render, light.hide_viewport]
wrong = call(bpy.ops.facestage.toggle_light, name="Cube")
scene = bpy.context.scene
scene.cycles.samples, scene.cycles.use_denoising = 2, False
scene.render.engine = "BLENDER_WORKBENCH"
shot = call(bpy.ops.facestage.render_shot, filepath=str(work / "shot.png"))
print("FACTS" + json.dumps({"was": was, "now": now, "toggled": toggled, "wrong": wrong, "shot": shot,
                            "engine_restored": scene.render.engine}))
""")
    assert facts["was"] == [True, True] and facts["now"] == [False, False] and facts["toggled"][0] == ["FINISHED"]
    assert facts["wrong"][0] == ["ERROR"] and "is not a FaceStage stage light" in facts["wrong"][1]
    assert facts["shot"][0] == ["FINISHED"] and facts["engine_restored"] == "BLENDER_WORKBENCH"
    assert (tmp_path / "shot.png").stat().st_size > 0


def test_dependency_installer_reports_progress_and_a_clear_failure(run):
    facts = run("""
status = bpy.context.window_manager.facestage_install
seen = []

def failing(progress, target=None):
    progress(0, 2, "Collecting torch==2.13.0")
    seen.append(status.status)
    raise RuntimeError("pip failed: No matching distribution found for torch==2.13.0")

def working(progress, target=None):
    progress(0, 2, "Collecting torch==2.13.0")
    progress(1, 2, "Installing mediapipe")
    progress(2, 2, "Done")

offline = call(bpy.ops.facestage.install_dependencies)
bpy.context.preferences.system.use_online_access = True
pkg.deps.install = failing
failed = call(bpy.ops.facestage.install_dependencies)
failed_status = status.status
pkg.deps.install = working
worked = call(bpy.ops.facestage.install_dependencies)
print("FACTS" + json.dumps({"offline": offline, "failed": failed, "failed_status": failed_status, "worked": worked,
                            "status": status.status}))
""")
    assert facts["offline"][0] == ["ERROR"] and "Allow online access in Preferences" in facts["offline"][1]
    message = facts["failed"][1]
    assert facts["failed"][0] == ["ERROR"] and "Traceback" not in message
    assert ("Installing the dependencies failed (pip failed: No matching distribution found for torch==2.13.0). "
            "Check the internet connection") in message
    assert facts["failed_status"] == message
    assert facts["worked"][0] == ["FINISHED"] and facts["status"].startswith("Installed.")


def test_headless_cli_reconstruct_writes_face_blend_and_keeps_the_addon(run):
    facts = run("""
import addon_utils
fake = importlib.import_module("blender_helpers").fake_result(package=PKG)
pipeline.reconstruct = lambda photo, config, progress=None, cancel=None: fake
code = pkg.cli.main(["reconstruct", str(photo), "-o", str(work / "cli"), "--quality", "fast"])
enabled = addon_utils.check(PKG)[1] and hasattr(bpy.types, "VIEW3D_PT_facestage")
blend = work / "cli" / "face.blend"
bpy.ops.wm.open_mainfile(filepath=str(blend))
collection = bpy.data.collections["FaceStage"]
print("FACTS" + json.dumps({"code": code, "enabled": enabled, "objects": sorted(o.name for o in collection.objects),
                            "result_dir": bpy.path.abspath(collection["facestage_result_dir"]),
                            "packed": all(i.packed_file is not None for i in bpy.data.images if i.name.startswith("FaceStage"))}))
""")
    assert facts["code"] == 0 and facts["enabled"]
    assert {"Face", "Eye L", "Eye R", "Light Stage", "FaceStage Camera"} <= set(facts["objects"])
    assert Path(facts["result_dir"]).name == "cli" and facts["packed"]


def test_lighting_presets_set_the_stage_and_environment_like_core_and_undo(run):
    facts = run("""
import numpy as np, torch
relight = importlib.import_module(PKG + ".core.apps.relight")
Y00 = importlib.import_module(PKG + ".core.model.sh").Y00
lightstage = importlib.import_module(PKG + ".core.model.lightstage")
result = importlib.import_module(PKG + ".core.io.result").load(folder)
apps = importlib.import_module(PKG + ".operators.apps")
call(bpy.ops.facestage.build_scene, directory=str(folder))

def lights():
    objects = sorted((o for o in bpy.data.objects if o.get("facestage_light") is not None), key=lambda o: o["facestage_light"])
    # hidden lights are not evaluated, so their matrix_world is stale after an undo: compose it
    return [[o.data.energy, *(o.parent.matrix_world @ o.matrix_parent_inverse @ o.matrix_basis).translation,
             o.hide_render] for o in objects]

def environment():
    image = bpy.data.images["FaceStage Environment"]
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(-1, 4)[:, :3]

fitted = lights()
fitted_env = environment()
state = call(bpy.ops.facestage.relight_preset, preset="rembrandt")
stage, sh, _ = relight.preset_lighting(result.stage, result.sh, "rembrandt", exposure=relight.rendered_exposure(result))
expected = lightstage.blender_lights(lightstage.from_dict(stage, dtype=torch.float64))
preset = lights()
preset_env = environment()
env_expected = float(sh[0, 0] * Y00)
bpy.ops.ed.undo()
undone = lights()
call(bpy.ops.facestage.relight_preset, preset="split")
restored = call(bpy.ops.facestage.relight_preset, preset="fitted")
back, back_env = lights(), environment()
world = bpy.context.scene.world
before = np.asarray(world["facestage_sh"])
call(bpy.ops.facestage.rotate_environment, yaw=0.5, pitch=0.1)
rotated = np.abs(np.asarray(world["facestage_sh"]) - relight.rotate_environment(before, np.degrees(0.5), np.degrees(0.1))).max()
print("FACTS" + json.dumps({
    "state": state, "restored": restored,
    "power_error": max(abs(a[0] - b["power_w"]) for a, b in zip(preset, expected)),
    "position_error": max(float(np.abs(np.array(a[1:4]) - b["position"]).max()) for a, b in zip(preset, expected)),
    "on": [j for j, light in enumerate(preset) if not light[4]],
    "env_error": float(np.abs(preset_env - env_expected).max()),
    "undone": np.allclose(np.array(undone, float), np.array(fitted, float), atol=1e-6), "back": np.allclose(np.array(back, float), np.array(fitted, float), atol=1e-5),
    "back_env": float(np.abs(back_env - fitted_env).max()), "rotated": float(rotated),
    "items": [item[0] for item in apps.PRESET_ITEMS], "core": list(relight.PRESETS)}))
""")
    assert facts["state"][0] == ["FINISHED"] and facts["restored"][0] == ["FINISHED"]
    assert facts["power_error"] < 1e-4 and facts["position_error"] < 1e-5
    assert len(facts["on"]) == 2  # Rembrandt is a key light and its fill
    assert facts["env_error"] < 1e-4
    assert facts["undone"] and facts["back"] and facts["back_env"] < 1e-6
    assert facts["rotated"] < 1e-6
    assert facts["items"] == ["fitted", *facts["core"]]


def test_caricature_keys_scale_the_identity_deviation_globally_and_per_region(run):
    facts = run("""
import numpy as np
caricature = importlib.import_module(PKG + ".core.apps.caricature")
model = importlib.import_module(PKG + ".core.model.head").load_head_model()
call(bpy.ops.facestage.build_scene, directory=str(folder))
state = call(bpy.ops.facestage.caricature, factor=1.8)
face = bpy.data.objects["Face"]
blocks = face.data.shape_keys.key_blocks
for key in blocks[1:]:
    key.value = 0.0
basis = np.array([v.co for v in blocks["Basis"].data], np.float64)
mean = model.vertices.numpy().astype(np.float64)
weights = {n: w.numpy() for n, w in zip(model.region_names, model.region_weights)}

def model_space():
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = face.evaluated_get(depsgraph).to_mesh()
    return np.array([v.co for v in mesh.vertices], np.float64)

def expected(factor, regions):
    scale = caricature.caricature_scale(weights, factor, regions)
    return mean + scale[:, None] * (basis - mean)

out = {"state": state, "names": [k.name for k in blocks if k.name.startswith("Caricature")]}
blocks["Caricature"].value = 1.5
out["global"] = float(np.abs(model_space() - expected(2.5, {})).max())
blocks["Caricature"].value = -1.0
out["mean"] = float(np.abs(model_space() - mean).max())
blocks["Caricature"].value = 0.0
blocks["Caricature Nose"].value = 1.5
moved = np.linalg.norm(model_space() - basis, axis=1)
out["nose"] = float(np.abs(model_space() - expected(1.0, {"nose": 2.5})).max())
out["outside_max"] = float(moved[weights["nose"] == 0].max())
out["inside_max"] = float(moved[weights["nose"] > 0.5].max())
bpy.ops.ed.undo()
out["undone"] = "Caricature" not in bpy.data.objects["Face"].data.shape_keys.key_blocks
print("FACTS" + json.dumps(out))
""")
    assert facts["state"] == [["FINISHED"], ""]
    assert facts["names"][0] == "Caricature" and "Caricature Nose" in facts["names"] and len(facts["names"]) == 12
    assert facts["global"] < 1e-6 and facts["mean"] < 1e-6 and facts["nose"] < 1e-6
    assert facts["outside_max"] < 1e-6 < 1e-4 < facts["inside_max"]
    assert facts["undone"]


def test_passes_setup_writes_the_separated_layers_on_render(run, tmp_path):
    facts = run("""
call(bpy.ops.facestage.build_scene, directory=str(folder))
state = call(bpy.ops.facestage.setup_passes, directory=str(work / "passes"))
scene, layer = bpy.context.scene, bpy.context.view_layer
lights = [o.lightgroup for o in bpy.data.collections["FaceStage"].objects if o.type == "LIGHT"]
scene.cycles.samples, scene.cycles.use_denoising = 2, False
scene.render.resolution_percentage = 50
bpy.ops.render.render()
files = sorted(p.name for p in (work / "passes").iterdir())
print("FACTS" + json.dumps({"state": state, "lights": sorted(set(lights)), "world": scene.world.lightgroup,
                            "groups": sorted(g.name for g in layer.lightgroups), "files": files,
                            "diffuse_color": layer.use_pass_diffuse_color}))
""")
    assert facts["state"][0] == ["FINISHED"]
    assert facts["lights"] == ["stage"] and facts["world"] == "ambient" and facts["groups"] == ["ambient", "stage"]
    assert facts["diffuse_color"] and facts["files"] and facts["files"][0].endswith(".exr")
    header = (tmp_path / "passes" / facts["files"][0]).read_bytes()[:20000]
    for layer in ("albedo", "diffuse_direct", "specular_color", "specular_direct", "stage", "ambient", "image"):
        assert f"{layer}.R".encode() in header, layer


DRAW = """
import bl_ui  # noqa: F401
from mathutils import Vector

class Recorder:
    \"\"\"Stands in for UILayout: checks every property and operator the panels name.\"\"\"
    problems, calls = [], []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            Recorder.calls.append(name)
            if name in ("prop", "prop_search") and len(args) >= 2:
                data, prop = args[0], args[1]
                if prop not in data.bl_rna.properties:
                    Recorder.problems.append(f"{type(data).__name__}.{prop}")
            if name in ("operator", "operator_menu_enum"):
                module, _, op = args[0].partition(".")
                if not hasattr(getattr(bpy.ops, module), op) or getattr(getattr(bpy.ops, module), op).get_rna_type() is None:
                    Recorder.problems.append(args[0])
            if name == "template_list":
                if args[3] not in args[2].bl_rna.properties or args[5] not in args[4].bl_rna.properties:
                    Recorder.problems.append("template_list")
            if name == "icon":
                return 0
            return Recorder()
        return record

    def __setattr__(self, name, value):
        pass

panels = [getattr(bpy.types, n) for n in dir(bpy.types) if n.startswith("VIEW3D_PT_facestage")]
def draw_all():
    for panel in panels:
        fake = type("Fake", (), {"layout": Recorder()})()
        panel.draw(fake, bpy.context)

draw_all()
call(bpy.ops.facestage.build_scene, directory=str(folder))
bpy.context.scene.facestage.light_index = [o.name for o in bpy.data.collections["FaceStage"].objects].index("Stage Light 01")
draw_all()
lights_list = bpy.types.FACESTAGE_UL_lights
collection = bpy.data.collections["FaceStage"]
fake_list = type("FakeList", (), {"bitflag_filter_item": 1 << 30})()
flags, order = lights_list.filter_items(fake_list, bpy.context, collection, "objects")
shown = sorted((order[i], o.name) for i, o in enumerate(collection.objects) if flags[i])
for i, obj in enumerate(collection.objects):
    if flags[i]:
        lights_list.draw_item(fake_list, bpy.context, Recorder(), collection, obj, 0, None, "", 0, 0)
prefs = bpy.context.preferences.addons[PKG].preferences
type(prefs).draw(type("Fake", (), {"layout": Recorder(), "bl_rna": prefs.bl_rna})(), bpy.context)
selected = [o.name for o in bpy.context.selected_objects]
print("FACTS" + json.dumps({"panels": sorted(p.__name__ for p in panels), "problems": Recorder.problems,
                            "calls": sorted(set(Recorder.calls)), "shown": [n for _, n in shown],
                            "selected": selected, "active": bpy.context.view_layer.objects.active.name}))
"""


def test_panels_draw_real_properties_and_the_light_list_selects(run):
    facts = run(DRAW)
    assert facts["panels"] == sorted(["VIEW3D_PT_facestage", "VIEW3D_PT_facestage_reconstruct", "VIEW3D_PT_facestage_lights",
                                      "VIEW3D_PT_facestage_maps", "VIEW3D_PT_facestage_apps",
                                      "VIEW3D_PT_facestage_output"])
    assert facts["problems"] == []
    assert {"template_list", "template_icon", "operator", "operator_menu_enum"} <= set(facts["calls"])
    assert facts["shown"] == [f"Stage Light {j:02d}" for j in range(1, 21)]
    assert facts["selected"] == ["Stage Light 01"] and facts["active"] == "Stage Light 01"
