"""End to end in Blender: a synthetic photo → "Reconstruct Face" (fast) → the scene → face.blend → a Cycles frame.

Slow: it renders a synthetic photo, installs the built extension in the bpy
module and runs the real reconstruction through the operator's synchronous
path. It skips, saying why, while core.fit.pipeline.reconstruct is still a stub.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from blender_helpers import read_json_line, run_bpy  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]

SCRIPT = """
import importlib, json, sys
from pathlib import Path
import bpy, numpy as np
zip_path, photo, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(zip_path),
                                                enable_on_install=True) == {"FINISHED"}
PKG = "bl_ext.user_default.facestage"
for name in ("Cube", "Light"):  # a new file's cube would enclose the head; its lamp would light it
    bpy.data.objects.remove(bpy.data.objects[name])
settings = bpy.context.scene.facestage
settings.photo, settings.quality, settings.device = str(photo), "fast", "cpu"
settings.output_dir = str(work / "results")
state = sorted(bpy.ops.facestage.reconstruct("EXEC_DEFAULT", True))
out = Path(settings.result_dir)
result = importlib.import_module(PKG + ".core.io.result").load(out)
expected_camera = importlib.import_module(PKG + ".core.model.camera").blender_camera(result.K, result.width, result.height)
scene = bpy.context.scene
face = bpy.data.objects["Face"]
keys = face.data.shape_keys.key_blocks
tree = bpy.data.materials["FaceSkin"].node_tree
links = sorted([l.from_node.type, l.to_socket.name, getattr(l.from_node, "image", None) and
                l.from_node.image.colorspace_settings.name] for l in tree.links)
camera = scene.camera
facts = {"state": state, "status": settings.status, "files": sorted(p.name for p in out.iterdir()),
         "objects": sorted(o.name for o in bpy.data.collections["FaceStage"].objects),
         "lights": sum(1 for o in bpy.data.collections["FaceStage"].objects if o.type == "LIGHT" and o.data.type == "AREA"),
         "keys": [k.name for k in keys], "values": [k.value for k in keys[1:]], "expression": result.expression.tolist(),
         "links": links, "lens": camera.data.lens, "shift": [camera.data.shift_x, camera.data.shift_y],
         "expected_lens": float(expected_camera["lens_mm"]),
         "expected_shift": [float(expected_camera["shift_x"]), float(expected_camera["shift_y"])],
         "resolution": [scene.render.resolution_x, scene.render.resolution_y], "size": [result.width, result.height],
         "world": sorted(n.type for n in scene.world.node_tree.nodes)}
blend = work / "face.blend"
bpy.ops.wm.save_as_mainfile(filepath=str(blend))
bpy.ops.wm.open_mainfile(filepath=str(blend))
scene = bpy.context.scene
facts["reloaded"] = "Face" in bpy.data.objects and all(i.packed_file is not None for i in bpy.data.images
                                                        if i.name.startswith("FaceStage"))
scene.cycles.samples, scene.cycles.use_denoising, scene.render.resolution_percentage = 16, False, 50
scene.render.filepath = str(work / "frame.png")
bpy.ops.render.render(write_still=True)
facts["out"] = str(out)
print("FACTS" + json.dumps(facts))
"""


def pipeline_missing() -> str:
    """Why the real reconstruction cannot run yet ("" when it can): the stub, or core modules not written."""
    from facestage.core.common.config import preset
    from facestage.core.common.errors import FaceStageError

    data = Path(__file__).resolve().parents[1] / "core" / "model" / "data"
    if not (data / "landmarks_hm08.npz").is_file():
        return "the landmark embedding core/model/data/landmarks_hm08.npz has not been built yet"
    try:
        from facestage.core.fit import pipeline

        pipeline.reconstruct("/nonexistent/photo.jpg", preset("fast"))
    except NotImplementedError:
        return "core.fit.pipeline.reconstruct is still the NotImplementedError stub"
    except ImportError as error:  # test_import_without_bpy fails loudly on this; here it only means "not yet"
        return f"core.fit.pipeline cannot be imported yet ({error})"
    except FaceStageError:
        return ""
    return ""


@pytest.fixture(scope="module")
def real_pipeline():
    reason = pipeline_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def synthetic_photo(real_pipeline, root, tmp_path_factory):
    """Synthetic scene 0 (shared with the fit tests through tools/synthetic.py's cache) at 256 px: the final render
    at the photo's size is a third of a fast reconstruction at its 512 px, and nothing here needs them."""
    from PIL import Image

    spec = importlib.util.spec_from_file_location("facestage_tools_synthetic", root / "tools" / "synthetic.py")
    tool = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(tool)  # type: ignore[union-attr]
    photo = tmp_path_factory.mktemp("photo") / "image.png"
    with Image.open(tool.ensure_scenes([0])[0] / "image.png") as image:
        image.resize((256, 256), Image.Resampling.LANCZOS).save(photo)
    return photo


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory, root):
    sys.path.insert(0, str(root / "tools"))
    from build_extension import build

    return build(tmp_path_factory.mktemp("dist"))


def test_reconstruct_operator_on_a_synthetic_photo_builds_a_scene_that_saves_and_renders(
        real_pipeline, synthetic_photo, extension_zip, blender_env, tmp_path):
    facts = read_json_line(run_bpy(SCRIPT, blender_env, str(extension_zip), str(synthetic_photo), str(tmp_path),
                                   timeout=900), "FACTS")
    assert facts["state"] == ["FINISHED"] and facts["status"].startswith("Done: ")
    assert {"scene.json", "face.obj", "diffuse.png", "specular.png", "roughness.png"} <= set(facts["files"])
    assert {"Face", "Eye L", "Eye R", "Light Stage", "FaceStage Camera"} <= set(facts["objects"])
    assert facts["lights"] == 20
    assert facts["keys"][0] == "Basis" and len(facts["keys"]) == 53
    assert facts["values"] == pytest.approx(facts["expression"], abs=1e-6)
    assert ["TEX_IMAGE", "Base Color", "sRGB"] in facts["links"]
    assert ["TEX_IMAGE", "Specular IOR Level", "Non-Color"] in facts["links"]
    assert ["TEX_IMAGE", "Roughness", "Non-Color"] in facts["links"]
    assert facts["lens"] == pytest.approx(facts["expected_lens"], rel=1e-5)
    assert facts["shift"] == pytest.approx(facts["expected_shift"], abs=1e-6)
    assert facts["resolution"] == facts["size"]
    assert facts["world"] == ["BACKGROUND", "OUTPUT_WORLD", "TEX_ENVIRONMENT"]
    assert facts["reloaded"]
    # The Cycles frame is lit like the core's re-render: same mean brightness on the face mask (within 10 %).
    from facestage.core.io.image import load_png

    frame = load_png(tmp_path / "frame.png")[..., :3]
    size = frame.shape[0]
    out = Path(facts["out"])
    core = load_png(out / "render.png")[..., :3].reshape(size, 2, size, 2, 3).mean((1, 3))
    mask = load_png(out / "mask.png").reshape(size, 2, size, 2).min((1, 3)) > 0.99
    assert mask.sum() > 500
    assert abs(frame[mask].mean() / core[mask].mean() - 1) < 0.1
