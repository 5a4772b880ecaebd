"""The Blender scene built from a result folder is the result: geometry, UVs, shape keys, material, lights, world, camera.

A fake result folder (tests/blender_helpers.py) is built with
facestage.scene.build in a fresh bpy process; the script reports what it
finds as JSON and each test checks one property of it against the Result.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from blender_helpers import LIT, SIZE, fake_result_folder, read_json_line, run_bpy  # noqa: E402

pytestmark = pytest.mark.blender

BUILD = """
import json, sys
from pathlib import Path
import bpy, numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from facestage.core.io.image import linear_to_srgb
from facestage.core.io.result import load
from facestage.scene.build import build_scene

folder = Path(sys.argv[1])
bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
collection = build_scene(folder, bpy.context)
result = load(folder)
scene = bpy.context.scene
facts = {"collection": collection.name, "linked": collection.name in scene.collection.children}
facts["objects"] = {o.name: {"type": o.type, "parent": o.parent.name if o.parent else None,
                             "hide_render": o.hide_render, "hide_viewport": o.hide_viewport}
                    for o in collection.objects}

lights = []
for o in sorted((o for o in collection.objects if o.type == "LIGHT"), key=lambda o: o.name):
    m = o.matrix_world
    lights.append({"name": o.name, "type": o.data.type, "shape": o.data.shape, "size": o.data.size,
                   "energy": o.data.energy, "color": list(o.data.color), "location": list(m.translation),
                   "direction": list((m.to_3x3() @ Vector((0, 0, -1))).normalized())})
facts["lights"] = lights
stage = bpy.data.objects["Light Stage"]
facts["stage"] = {"type": stage.type, "location": list(stage.matrix_world.translation)}

face = bpy.data.objects["Face"]
mesh = face.data
keys = mesh.shape_keys.key_blocks
facts["shape_keys"] = [[k.name, k.value, k.relative_key.name] for k in keys]
depsgraph = bpy.context.evaluated_depsgraph_get()
evaluated = face.evaluated_get(depsgraph).to_mesh()
co = np.empty(len(evaluated.vertices) * 3, np.float32)
evaluated.vertices.foreach_get("co", co)
world = np.array(face.matrix_world)
co = co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]
facts["vertex_error"] = float(np.abs(co - result.vertices).max())
facts["n_vertices"] = len(mesh.vertices)
facts["n_faces"] = len(mesh.polygons)
facts["smooth"] = all(p.use_smooth for p in mesh.polygons)
facts["uv_layers"] = [layer.name for layer in mesh.uv_layers]
uv = np.empty(len(mesh.loops) * 2, np.float32)
mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
facts["uv_error"] = float(np.abs(uv.reshape(-1, 2) - result.uvs[result.face_uvs.reshape(-1)]).max())
facts["face_materials"] = [slot.material.name for slot in face.material_slots]
facts["eyes"] = {name: {"parent": bpy.data.objects[name].parent.name, "vertices": len(bpy.data.objects[name].data.vertices),
                        "materials": [s.material.name for s in bpy.data.objects[name].material_slots]}
                 for name in ("Eye L", "Eye R")}
eye_l, eye_r = (bpy.data.objects[n].matrix_world.translation for n in ("Eye L", "Eye R"))
facts["eye_left_is_plus_x_in_model"] = (face.matrix_world.inverted() @ eye_l).x > 0 > (face.matrix_world.inverted() @ eye_r).x

material = bpy.data.materials["FaceSkin"]
tree = material.node_tree
bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
facts["bsdf"] = {"distribution": bsdf.distribution, "subsurface": bsdf.inputs["Subsurface Weight"].default_value,
                 "ior": bsdf.inputs["IOR"].default_value}
facts["links"] = sorted([l.from_node.type, getattr(l.from_node, "image", None) and l.from_node.image.name,
                         l.from_socket.name, l.to_node.type, l.to_socket.name] for l in tree.links)
images = {}
for image in bpy.data.images:
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(image.size[1], image.size[0], 4)[::-1]
    images[image.name] = {"colorspace": image.colorspace_settings.name, "packed": image.packed_file is not None,
                          "size": list(image.size), "top_left": pixels[0, 0, :3].tolist(),
                          "bottom_right": pixels[-1, -1, :3].tolist()}
facts["images"] = images
facts["expected_diffuse_top_left"] = linear_to_srgb(result.diffuse)[0, 0].tolist()

camera = scene.camera
facts["camera"] = {"name": camera.name, "lens": camera.data.lens, "sensor_width": camera.data.sensor_width,
                   "sensor_fit": camera.data.sensor_fit, "shift_x": camera.data.shift_x, "shift_y": camera.data.shift_y,
                   "background": [b.image.name for b in camera.data.background_images],
                   "show_background": camera.data.show_background_images,
                   "pose_error": float(np.abs(np.array(camera.matrix_world) - result.world_from_camera).max())}
render = scene.render
facts["render"] = {"engine": render.engine, "x": render.resolution_x, "y": render.resolution_y,
                   "percentage": render.resolution_percentage, "view_transform": scene.view_settings.view_transform,
                   "look": scene.view_settings.look, "exposure": scene.view_settings.exposure,
                   "gamma": scene.view_settings.gamma}
# Project vertices through the Blender camera and through K: the same pixels if lens, sensor and shift are right.
sample = result.vertices[::97].astype(np.float64)
blender_px = []
for p in sample:
    ndc = world_to_camera_view(scene, camera, Vector(p.tolist()))
    blender_px.append([ndc.x * render.resolution_x, (1 - ndc.y) * render.resolution_y])
camera_from_world = np.linalg.inv(result.world_from_camera)
cam = sample @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
cv = cam * np.array([1, -1, -1])
k_px = (cv @ result.K.T)[:, :2] / cv[:, 2:3]
facts["projection_error_px"] = float(np.abs(np.array(blender_px) - k_px).max())

world_tree = scene.world.node_tree
facts["world"] = {"name": scene.world.name, "nodes": sorted(n.type for n in world_tree.nodes),
                  "links": sorted([l.from_node.type, l.to_node.type, l.to_socket.name] for l in world_tree.links),
                  "strength": next(n for n in world_tree.nodes if n.type == "BACKGROUND").inputs["Strength"].default_value,
                  "image": next(n for n in world_tree.nodes if n.type == "TEX_ENVIRONMENT").image.name}
print("FACTS" + json.dumps(facts))
"""


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory):
    return fake_result_folder(tmp_path_factory.mktemp("fake") / "OUT")


@pytest.fixture(scope="module")
def result(result_folder):
    from facestage.core.io.result import load

    return load(result_folder)


@pytest.fixture(scope="module")
def facts(result_folder, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    return read_json_line(run_bpy(BUILD, env, str(result_folder)), "FACTS")


def test_collection_holds_face_eyes_stage_lights_and_camera(facts):
    assert facts["collection"] == "FaceStage" and facts["linked"]
    objects = facts["objects"]
    assert objects["Face"]["type"] == "MESH" and objects["Face"]["parent"] is None
    assert objects["Eye L"]["parent"] == objects["Eye R"]["parent"] == "Face"
    assert objects["Light Stage"]["type"] == "EMPTY"
    assert objects["FaceStage Camera"]["type"] == "CAMERA"
    assert sorted(n for n, o in objects.items() if o["type"] == "LIGHT") == [f"Stage Light {j:02d}" for j in range(1, 21)]


def test_evaluated_face_in_world_space_equals_result_vertices(facts, result):
    assert facts["n_vertices"] == len(result.vertices) and facts["n_faces"] == len(result.faces)
    assert facts["vertex_error"] < 1e-5


def test_shape_keys_are_the_52_arkit_units_with_fitted_values(facts, result):
    keys = facts["shape_keys"]
    assert keys[0][0] == "Basis" and len(keys) == 53
    assert [k[0] for k in keys[1:]] == list(result.expression_names)
    assert np.allclose([k[1] for k in keys[1:]], result.expression, atol=1e-6)
    assert all(k[2] == "Basis" for k in keys)


def test_face_has_uv_map_smooth_shading_and_skin_material(facts):
    assert facts["uv_layers"] == ["UVMap"] and facts["uv_error"] < 1e-6
    assert facts["smooth"]
    assert facts["face_materials"] == ["FaceSkin"]


def test_eyes_are_separate_objects_on_the_right_sides(facts):
    assert facts["eyes"]["Eye L"]["vertices"] > 0 and facts["eyes"]["Eye R"]["vertices"] > 0
    assert facts["eye_left_is_plus_x_in_model"]


def test_skin_material_links_maps_with_their_colour_spaces(facts):
    assert facts["bsdf"] == {"distribution": "GGX", "subsurface": 0.0, "ior": pytest.approx(1.5)}
    links = {tuple(link) for link in facts["links"]}
    assert ("TEX_IMAGE", "FaceStage Diffuse", "Color", "BSDF_PRINCIPLED", "Base Color") in links
    assert ("TEX_IMAGE", "FaceStage Specular", "Color", "BSDF_PRINCIPLED", "Specular IOR Level") in links
    assert ("TEX_IMAGE", "FaceStage Roughness", "Color", "BSDF_PRINCIPLED", "Roughness") in links
    assert ("BSDF_PRINCIPLED", None, "BSDF", "OUTPUT_MATERIAL", "Surface") in links
    images = facts["images"]
    assert images["FaceStage Diffuse"]["colorspace"] == "sRGB"
    assert images["FaceStage Specular"]["colorspace"] == "Non-Color"
    assert images["FaceStage Roughness"]["colorspace"] == "Non-Color"


def test_images_are_packed_and_hold_the_maps_right_way_up(facts, result):
    images = facts["images"]
    for name in ("FaceStage Diffuse", "FaceStage Specular", "FaceStage Roughness", "FaceStage Photo", "FaceStage Environment"):
        assert images[name]["packed"], name
    assert np.allclose(images["FaceStage Diffuse"]["top_left"], facts["expected_diffuse_top_left"], atol=1 / 255)
    assert np.allclose(images["FaceStage Specular"]["top_left"], result.specular[0, 0], atol=1e-4)
    assert np.allclose(images["FaceStage Roughness"]["bottom_right"], result.roughness[-1, -1], atol=1e-4)
    assert np.allclose(images["FaceStage Photo"]["top_left"], result.photo_srgb[0, 0] / 255.0, atol=1 / 255)  # uint8 photo
    assert np.allclose(images["FaceStage Photo"]["bottom_right"], result.photo_srgb[-1, -1] / 255.0, atol=1 / 255)


def test_twenty_area_lights_match_result_lights_and_off_ones_are_hidden(facts, result):
    objects = facts["objects"]
    for j, (light, expected) in enumerate(zip(facts["lights"], result.lights)):
        assert light["name"] == f"Stage Light {j + 1:02d}"
        assert light["type"] == "AREA" and light["shape"] == "DISK"
        assert objects[light["name"]]["parent"] == "Light Stage"
        assert light["energy"] == pytest.approx(expected["power_w"], rel=1e-5, abs=1e-6)
        assert np.allclose(light["color"], expected["color"], atol=1e-5)
        assert np.allclose(light["location"], expected["position"], atol=1e-5)
        assert np.allclose(light["direction"], -np.asarray(expected["rotation"])[:, 2], atol=1e-5)
        assert light["size"] == pytest.approx(expected["size"], rel=1e-5)
        assert math.pi * (light["size"] / 2) ** 2 == pytest.approx(expected["area"], rel=1e-5)
        emitted = light["energy"] * np.asarray(light["color"])  # Blender: colour × power = π·A·L
        assert np.allclose(emitted, math.pi * expected["area"] * np.asarray(expected["radiance"]), rtol=1e-4, atol=1e-6)
        off = expected["power_w"] == 0.0
        assert objects[light["name"]]["hide_render"] == off and objects[light["name"]]["hide_viewport"] == off
    on = [j for j, light in enumerate(facts["lights"]) if not objects[light["name"]]["hide_render"]]
    assert on == list(LIT)


def test_lights_face_the_stage_centre(facts, result):
    centre = np.asarray(result.stage["centre"])
    assert np.allclose(facts["stage"]["location"], centre, atol=1e-6)
    for light in facts["lights"]:
        towards = centre - np.asarray(light["location"])
        cosine = np.dot(light["direction"], towards) / np.linalg.norm(towards)
        assert cosine > math.cos(math.radians(1.0)), light["name"]


def test_camera_reproduces_k_and_pose_with_photo_background(facts):
    camera = facts["camera"]
    assert camera["name"] == "FaceStage Camera" and camera["sensor_fit"] == "HORIZONTAL"
    assert camera["pose_error"] < 1e-5
    assert facts["projection_error_px"] < 0.01
    assert camera["background"] == ["FaceStage Photo"] and camera["show_background"]
    render = facts["render"]
    assert (render["x"], render["y"], render["percentage"]) == (*SIZE, 100)


def test_render_settings_are_cycles_with_plain_srgb(facts):
    render = facts["render"]
    assert render["engine"] == "CYCLES"
    assert (render["view_transform"], render["look"], render["exposure"], render["gamma"]) == ("Standard", "None", 0.0, 1.0)


def test_world_is_the_baked_sh_environment(facts):
    world = facts["world"]
    assert world["nodes"] == ["BACKGROUND", "OUTPUT_WORLD", "TEX_ENVIRONMENT"]
    assert world["links"] == [["BACKGROUND", "OUTPUT_WORLD", "Surface"], ["TEX_ENVIRONMENT", "BACKGROUND", "Color"]]
    assert world["strength"] == 1.0 and world["image"] == "FaceStage Environment"
    assert facts["images"]["FaceStage Environment"]["colorspace"] == "Linear Rec.709"


ROLLBACK = """
import json, sys
from pathlib import Path
import bpy
import facestage.scene.build as build

def names():
    groups = ("collections", "objects", "meshes", "materials", "images", "lights", "cameras", "worlds", "shape_keys")
    return {g: sorted(d.name for d in getattr(bpy.data, g)) for g in groups}

def settings(scene):
    return [scene.render.engine, scene.view_settings.view_transform, scene.render.resolution_x,
            scene.render.resolution_y, scene.world.name if scene.world else None,
            scene.camera.name if scene.camera else None]

bpy.ops.wm.read_homefile(use_factory_startup=True)
scene = bpy.context.scene
before, before_settings = names(), settings(scene)

def broken(*args, **kwargs):
    raise RuntimeError("camera builder failed on purpose")

real = build.build_camera
build.build_camera = broken
try:
    build.build_scene(Path(sys.argv[1]), bpy.context)
except RuntimeError as error:
    message = str(error)
build.build_camera = real
after, after_settings = names(), settings(scene)

build.build_scene(Path(sys.argv[1]), bpy.context)
build.build_scene(Path(sys.argv[1]), bpy.context)
twice = names()
print("FACTS" + json.dumps({"message": message, "same": before == after, "before": before, "after": after,
                            "settings_same": before_settings == after_settings, "twice": twice}))
"""


def test_failed_build_leaves_the_file_unchanged_and_rebuild_replaces(result_folder, blender_env):
    facts = read_json_line(run_bpy(ROLLBACK, blender_env, str(result_folder)), "FACTS")
    assert facts["message"] == "camera builder failed on purpose"
    assert facts["same"], (facts["before"], facts["after"])
    assert facts["settings_same"]
    twice = facts["twice"]
    assert twice["collections"] == ["Collection", "FaceStage"]
    assert twice["objects"].count("Face") == 1 and "Cube" in twice["objects"]
    assert not [n for group in twice.values() for n in group if ".00" in n]


RELOAD = """
import json, sys
from pathlib import Path
import bpy, numpy as np
from facestage.scene.build import save_blend

folder, blend, image = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
save_blend(folder, blend)
bpy.ops.wm.open_mainfile(filepath=str(blend))
scene = bpy.context.scene
facts = {"objects": sorted(o.name for o in scene.objects), "packed": {}, "result_dir": bpy.data.collections["FaceStage"]["facestage_result_dir"]}
for name in ("FaceStage Diffuse", "FaceStage Specular", "FaceStage Roughness", "FaceStage Environment", "FaceStage Photo"):
    img = bpy.data.images[name]
    pixels = np.empty(len(img.pixels), np.float32)
    img.pixels.foreach_get(pixels)
    facts["packed"][name] = [img.packed_file is not None, float(pixels.reshape(-1, 4)[:, :3].mean())]
facts["key_values"] = [k.value for k in bpy.data.objects["Face"].data.shape_keys.key_blocks[1:4]]
scene.cycles.samples = 4
scene.cycles.use_denoising = False
scene.cycles.device = "CPU"
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = str(image)
bpy.ops.render.render(write_still=True)
print("FACTS" + json.dumps(facts))
"""


def test_saved_blend_reloads_with_packed_maps_and_renders(result_folder, result, blender_env, tmp_path):
    from facestage.core.io.image import load_png

    blend, image = tmp_path / "face.blend", tmp_path / "frame.png"
    facts = read_json_line(run_bpy(RELOAD, blender_env, str(result_folder), str(blend), str(image)), "FACTS")
    assert {"Face", "Eye L", "Eye R", "Light Stage", "FaceStage Camera", "Stage Light 01"} <= set(facts["objects"])
    assert facts["result_dir"] == str(result_folder.resolve())
    for name, (packed, mean) in facts["packed"].items():
        assert packed and mean > 0.01, name
    assert np.allclose(facts["key_values"], result.expression[:3], atol=1e-6)
    frame = load_png(image)
    assert frame.shape[:2] == (SIZE[1], SIZE[0])
    assert np.isfinite(frame).all() and frame[..., :3].std() > 0.01



CYCLES = """
import sys
from pathlib import Path
import bpy
from facestage.scene.build import build_scene

bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
build_scene(Path(sys.argv[1]), bpy.context)
scene = bpy.context.scene
cycles = scene.cycles
cycles.device, cycles.samples, cycles.seed = "CPU", 32, 0
cycles.use_denoising = cycles.use_adaptive_sampling = False
cycles.pixel_filter_type, cycles.filter_width = "BOX", 1.0  # the core integrates each pixel's square
scene.render.film_transparent = True
settings = scene.render.image_settings
settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGBA", "16"
scene.render.filepath = sys.argv[2]
bpy.ops.render.render(write_still=True)
"""


def test_cycles_render_of_the_built_scene_reproduces_the_core_render(tmp_path, blender_env):
    import torch
    from facestage.core.model import lightstage
    from facestage.core import render
    from facestage.core.io.image import linear_to_srgb, load_png
    from facestage.core.io.result import load

    folder = fake_result_folder(tmp_path / "OUT", size=(128, 128), distance=0.55)
    run_bpy(CYCLES, blender_env, str(folder), str(tmp_path / "cycles.png"))
    result = load(folder)

    def tensor(array):
        return torch.as_tensor(np.asarray(array), dtype=torch.float32)

    scene = render.RenderScene(
        verts=tensor(result.vertices), faces=torch.as_tensor(result.faces).long(), uvs=tensor(result.uvs),
        face_uvs=torch.as_tensor(result.face_uvs).long(), diffuse=tensor(result.diffuse),
        specular=tensor(result.specular)[..., None], roughness=tensor(result.roughness)[..., None], K=tensor(result.K),
        world_from_camera=tensor(result.world_from_camera), width=result.width, height=result.height,
        sh=tensor(result.sh), stage=lightstage.from_dict(result.stage))
    core = render.render(scene, render.RenderOptions(spp=16, light_samples=16, edge_sampling=False),
                         generator=torch.Generator().manual_seed(0))
    cycles = load_png(tmp_path / "cycles.png")
    mask = (core.alpha.numpy() > 0.999) & (cycles[..., 3] > 0.999)
    assert mask.sum() > 2000
    error = ((linear_to_srgb(core.image.numpy()) - cycles[..., :3])[mask] ** 2).mean()
    assert 10 * math.log10(1 / error) >= 30.0
