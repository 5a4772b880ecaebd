"""Render synthetic ground-truth scenes with the bpy module (Cycles, CPU).

The scene parameters, maps and true geometry come from tools/ground_truth.py
(bpy-free, seeded); this script only turns them into a Blender scene and an
image. Each scene folder gets image.png, params.json, diffuse.png,
specular.png, roughness.png and vertices.npz.

    python tools/synthetic.py --out DIR [--seeds 0-7] [--size 512] [--samples 16]

Tests, benchmarks and tools/embed_landmarks.py run it as a subprocess (with
XDG_CONFIG_HOME / XDG_CACHE_HOME pointing at a temp dir) or import it by path.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT.parent) not in sys.path:
    sys.path.insert(0, str(ROOT.parent))

from ground_truth import (Scene, eye_vertices, head_vertices, is_rendered, mouth_vertices, pose_points,  # noqa: E402
                          sample_scene, save_scene, skin_maps)

# Everything the images depend on: the cache folder is named after a hash of these files.
GENERATOR_INPUTS = (Path(__file__).resolve(), ROOT / "tools" / "ground_truth.py", ROOT / "core" / "model" / "skin.py",
                    ROOT / "core" / "model" / "uvmaps.py", ROOT / "core" / "model" / "head" / "parts.py",
                    ROOT / "core" / "apps" / "parts.py", ROOT / "core" / "model" / "data" / "head_hm08.npz")


def generator_digest(size: int = 512, samples: int = 16) -> str:
    """Short hash of everything the images depend on (a changed generator or model renders anew)."""
    digest = hashlib.sha256()
    for path in GENERATOR_INPUTS:
        digest.update(path.read_bytes() if path.is_file() else b"-")
    digest.update(f"{size}/{samples}".encode())
    return digest.hexdigest()[:12]


def cache_dir(size: int = 512, samples: int = 16) -> Path:
    """Temp folder for the scenes of this generator version."""
    return Path(tempfile.gettempdir()) / f"facestage-synthetic-{generator_digest(size, samples)}"


@contextlib.contextmanager
def throwaway_blender_env() -> Iterator[dict[str, str]]:
    """os.environ with Blender's user config and cache in a temp folder, removed afterwards: a bpy subprocess
    neither reads nor leaves a developer's settings."""
    with tempfile.TemporaryDirectory(prefix="facestage-blender-") as home:
        yield {**os.environ, "XDG_CONFIG_HOME": f"{home}/config", "XDG_CACHE_HOME": f"{home}/cache"}


def ensure_scenes(seeds: list[int], size: int = 512, samples: int = 16, python: str = sys.executable) -> list[Path]:
    """Folders of the rendered scenes for these seeds, rendering the missing ones in one bpy subprocess.

    Safe to call without bpy in the calling process; Blender's user config goes to a throw-away folder.
    """
    root = cache_dir(size, samples)
    folders = [root / f"scene_{seed:03d}" for seed in seeds]
    missing = [seed for seed, folder in zip(seeds, folders) if not (folder / "image.png").is_file()]
    if missing:
        with throwaway_blender_env() as env:
            subprocess.run([python, str(Path(__file__).resolve()), "--out", str(root), "--seeds",
                            ",".join(map(str, missing)), "--size", str(size), "--samples", str(samples)],
                           check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return folders


def _bpy() -> Any:
    import bpy

    return bpy


def reset(width: int, height: int, samples: int, seed: int = 0) -> Any:
    """An empty Cycles scene with plain sRGB output (view transform Standard)."""
    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.seed = seed
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 2
    scene.cycles.transmission_bounces = 2
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    return scene


def _link(obj: Any) -> None:
    _bpy().context.scene.collection.objects.link(obj)


def _mesh(name: str, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
          face_uvs: np.ndarray | None = None) -> Any:
    bpy = _bpy()
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(map(float, v)) for v in vertices], [], [tuple(map(int, f)) for f in faces])
    if uvs is not None and face_uvs is not None:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", np.asarray(uvs, np.float32)[np.asarray(face_uvs).reshape(-1)].reshape(-1))
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    _link(obj)
    return obj


def _image_node(nodes: Any, path: Path, colorspace: str) -> Any:
    bpy = _bpy()
    node = nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load(str(path))
    node.image.colorspace_settings.name = colorspace
    node.interpolation = "Linear"
    return node


def skin_material(folder: Path) -> Any:
    """Principled BSDF (single-scatter GGX) reading diffuse / specular / roughness maps from folder."""
    bpy = _bpy()
    material = bpy.data.materials.new("Skin")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.distribution = "GGX"
    bsdf.inputs["IOR"].default_value = 1.5
    bsdf.inputs["Subsurface Weight"].default_value = 0.0
    links.new(_image_node(nodes, folder / "diffuse.png", "sRGB").outputs["Color"], bsdf.inputs["Base Color"])
    links.new(_image_node(nodes, folder / "specular.png", "Non-Color").outputs["Color"], bsdf.inputs["Specular IOR Level"])
    links.new(_image_node(nodes, folder / "roughness.png", "Non-Color").outputs["Color"], bsdf.inputs["Roughness"])
    return material


def eye_material(gaze: np.ndarray, iris_colour: tuple[float, float, float]) -> Any:
    """Sclera, iris and pupil from the angle between the (object-space) normal and the gaze direction."""
    bpy = _bpy()
    material = bpy.data.materials.new("Eye")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.15
    coords = nodes.new("ShaderNodeTexCoord")
    dot = nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    dot.inputs[1].default_value = tuple(float(g) for g in gaze)
    links.new(coords.outputs["Normal"], dot.inputs[0])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.interpolation = "LINEAR"
    elements = ramp.color_ramp.elements
    elements[0].position, elements[0].color = 0.84, (0.72, 0.70, 0.66, 1.0)
    elements[1].position, elements[1].color = 0.985, (0.01, 0.01, 0.01, 1.0)
    for position, colour in ((0.865, (0.72, 0.70, 0.66)), (0.875, iris_colour), (0.975, iris_colour)):
        element = elements.new(position)
        element.color = (*colour, 1.0)
    links.new(dot.outputs["Value"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def mouth_material(name: str, colour: tuple[float, float, float], specular: float, roughness: float) -> Any:
    """A plain Principled BSDF for a part of the mouth (enamel, the wet cavity and tongue)."""
    bpy = _bpy()
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.distribution = "GGX"
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Specular IOR Level"].default_value = specular
    bsdf.inputs["Roughness"].default_value = roughness
    return material


def teeth_colour(seed: int) -> tuple[float, float, float]:
    """The scene's teeth albedo, drawn from its seed: a mean of 0.45-0.7 (tooth shade guides: L* 70-85) with a
    yellow cast, so that the fit's assumed teeth albedo (skin.TEETH_ALBEDO) is an estimate here, as on photos."""
    rng = np.random.Generator(np.random.PCG64(seed + 37))
    level, cast = rng.uniform(0.45, 0.7), rng.uniform(0.0, 0.15)
    colour = np.array([1.0 + cast, 1.0 + 0.3 * cast, 1.0 - 1.3 * cast])
    return tuple(float(c) for c in level * colour / colour.mean())


def add_mouth(model: Any, identity: np.ndarray, expression: np.ndarray, scene: Scene) -> None:
    """The model's teeth, cavity and tongue, rigged by the expression like the lips (what an open mouth shows)."""
    from facestage.core.model.head import parts as head_parts

    obj = _mesh("Mouth", pose_points(mouth_vertices(model, identity, expression), scene), np.asarray(model.mouth_faces))
    names = [str(n) for n in model.mouth_part_names]
    colours = {"upper_teeth": teeth_colour(scene.seed), "lower_teeth": teeth_colour(scene.seed),
               "cavity": head_parts.CAVITY_ALBEDO, "tongue": head_parts.TONGUE_ALBEDO}
    for name in names:
        kind = head_parts.TEETH_MATERIAL if name in head_parts.TEETH_PARTS else head_parts.MOUTH_MATERIAL
        obj.data.materials.append(mouth_material(name, colours[name], kind.specular, kind.roughness))
    obj.data.polygons.foreach_set("material_index", np.asarray(model.mouth_face_part, np.int64).astype(np.int32))
    obj.data.update()


def add_camera(K: np.ndarray, world_from_camera: np.ndarray, width: int, height: int) -> Any:
    """A Blender camera reproducing pinhole K (core.model.camera.blender_camera: lens, sensor fit, shift)."""
    bpy = _bpy()
    from mathutils import Matrix

    from facestage.core.model.camera import blender_camera

    settings = blender_camera(K, width, height, sensor_fit="AUTO")
    data = bpy.data.cameras.new("Camera")
    data.sensor_fit = settings["sensor_fit"]
    data.sensor_width = settings["sensor_width"]
    data.lens = settings["lens_mm"]
    data.shift_x, data.shift_y = settings["shift_x"], settings["shift_y"]
    data.clip_start, data.clip_end = 0.01, 100.0
    obj = bpy.data.objects.new("Camera", data)
    obj.matrix_world = Matrix(np.asarray(world_from_camera).tolist())
    _link(obj)
    bpy.context.scene.camera = obj
    return obj


def add_lights(lights: list[Any]) -> None:
    bpy = _bpy()
    from mathutils import Vector

    for j, light in enumerate(lights):
        data = bpy.data.lights.new(f"Light {j + 1}", "AREA")
        data.shape = "DISK"
        data.size = light.size
        data.energy = light.power_w
        data.color = tuple(light.color)
        obj = bpy.data.objects.new(f"Light {j + 1}", data)
        obj.location = Vector(light.position)
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = (-Vector(light.position)).to_track_quat("-Z", "Y")
        _link(obj)


def set_world(ambient: list[float]) -> None:
    bpy = _bpy()
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*ambient, 1.0)
    background.inputs["Strength"].default_value = 1.0
    bpy.context.scene.world = world


def build(scene: Scene, model: Any, folder: Path) -> None:
    """Blender scene for a Scene whose maps are already in folder."""
    reset(scene.width, scene.height, scene.samples, seed=scene.seed)
    identity, expression = np.asarray(scene.identity), np.asarray(scene.expression)
    head = _mesh("Head", pose_points(head_vertices(model, identity, expression), scene), np.asarray(model.faces),
                 np.asarray(model.uvs), np.asarray(model.face_uvs))
    head.data.materials.append(skin_material(folder))
    eyes = eye_vertices(model, identity, expression)
    if eyes is not None:
        obj = _mesh("Eyes", pose_points(eyes, scene), np.asarray(model.eye_faces))
        gaze = np.asarray(scene.rotation) @ np.array([0.0, -1.0, 0.0])
        rng = np.random.Generator(np.random.PCG64(scene.seed + 31))
        iris = tuple(float(c) for c in rng.choice([(0.09, 0.05, 0.02), (0.05, 0.09, 0.13), (0.12, 0.1, 0.04)]))
        obj.data.materials.append(eye_material(gaze, iris))  # type: ignore[arg-type]
    add_mouth(model, identity, expression, scene)
    add_lights(scene.lights)
    set_world(scene.ambient)
    add_camera(np.asarray(scene.K), np.asarray(scene.world_from_camera), scene.width, scene.height)


def render(path: Path) -> None:
    bpy = _bpy()
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def render_scene(folder: Path, scene: Scene, model: Any, map_size: int = 512) -> Path:
    """Write one complete scene folder (maps, ground truth, image.png)."""
    maps = skin_maps(model, scene, size=map_size)
    save_scene(folder, scene, model, maps)
    build(scene, model, folder)
    render(folder / "image.png")
    return folder


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds += list(range(int(a), int(b) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", default="0-7")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--map-size", type=int, default=512)
    args = parser.parse_args(argv)
    from facestage.core.model.head import load_head_model

    model = load_head_model()
    for seed in parse_seeds(args.seeds):
        folder = args.out / f"scene_{seed:03d}"
        scene = sample_scene(model, seed, args.size, args.size, samples=args.samples)
        if is_rendered(folder, scene):
            continue
        render_scene(folder, scene, model, map_size=args.map_size)
        print(f"{folder}: yaw/pitch/roll {tuple(round(a, 1) for a in scene.yaw_pitch_roll_deg)}, "
              f"focal {scene.focal_mm:.1f} mm", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
