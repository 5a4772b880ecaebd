"""Relighting in Blender: a preset of core.apps.relight, the fitted lighting, or a user's rig file.

Presets are computed by core.apps.relight.preset_lighting from the fitted stage and
SH that the build stored (on the "Light Stage" empty and the world), so they
are exposure-matched to the reconstruction and identical to what
`facestage relight --preset` renders; the lights are then placed exactly as
the build places them. A rig (core/io/rig.py) is placed by core.apps.rig.place
from the scene's own camera, head and stage centre, so its lights and world are
those `facestage relight --rig` renders; its lights and world are tagged and
replaced by the next rig, preset or "Fitted".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from mathutils import Matrix

from ..core.common.errors import FaceStageError
from ..core.io.result import Result, load
from ..core.io.rig import load_rig

from .build import RESULT_DIR
from .lights import INDEX, PARAMETERS, place_light, set_on
from .material import node_tree
from .query import role_object, stage_collection, stage_lights
from .transaction import ROLE
from .world import SH, SH_FITTED, set_environment

if TYPE_CHECKING:
    from ..core.apps.relight import FaceGeometry  # torch: types only

FITTED = "fitted"


def fitted_lighting(scene: bpy.types.Scene) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The reconstruction's stage parameters and SH coefficients, as stored by the build."""
    stage = role_object("stage")
    world = scene.world
    if stage is None or stage.get(PARAMETERS) is None or world is None or world.get(SH_FITTED) is None:
        raise FaceStageError("This scene has no fitted FaceStage lighting to start from; rebuild it from its result folder.")
    parameters = stage[PARAMETERS]
    return ({key: np.asarray(parameters[key], dtype=np.float64) for key in ("d", "a", "p", "i", "centre")},
            np.asarray(world[SH_FITTED], dtype=np.float64))


def _built_result() -> Result | None:
    """The Result the FaceStage collection was built from, when its folder is still there (else None)."""
    collection = stage_collection()
    folder = collection.get(RESULT_DIR) if collection is not None else None
    if not folder:
        return None
    path = Path(bpy.path.abspath(str(folder)))
    if not (path / "scene.json").is_file():
        return None
    try:
        return load(path)
    except FaceStageError:
        return None


def face_geometry(scene: bpy.types.Scene) -> FaceGeometry | None:
    """core.apps.relight.FaceGeometry of the built face (world-space triangles, the head model's vertex order) and
    the scene camera, for exposure-matched presets; None when the scene lacks either."""
    from ..core.apps.relight import FaceGeometry  # imports torch: only once the dependencies are installed

    face, camera = role_object("face"), scene.camera
    if face is None or camera is None:
        return None
    evaluated = face.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()  # the shape keys applied: the face as rendered
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        corners = np.empty(len(mesh.polygons) * 3, np.int64)
        mesh.polygons.foreach_get("vertices", corners)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(face.matrix_world, dtype=np.float64)
    vertices = co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
    n = len(vertices)  # exposure matching takes a ratio: a uniform, typical skin reflectance serves both sides
    return FaceGeometry(vertices, corners.reshape(-1, 3), np.array(camera.matrix_world.translation, dtype=np.float64),
                        np.full(n, 0.5), np.full(n, 0.35), np.full(n, 0.5))


def apply_lighting(scene: bpy.types.Scene, name: str) -> str:
    """Set the 20 stage lights and the environment to preset ``name`` (core.apps.relight.PRESETS) or to FITTED;
    returns the preset's note on its exposure ("" when it matches the photo's)."""
    import torch  # heavy: only once the dependencies are installed

    from ..core.apps.relight import preset_lighting, rendered_exposure  # imports torch: only once installed
    from ..core.model import lightstage  # imports torch: only once the dependencies are installed

    clear_rig(scene)
    stage, sh = fitted_lighting(scene)
    note = ""
    if name != FITTED:
        result = _built_result()
        if result is not None:  # the result folder the scene was built from: the exposure `facestage relight` uses
            stage, sh, note = preset_lighting(stage, sh, name, exposure=rendered_exposure(result))
        else:
            stage, sh, note = preset_lighting(stage, sh, name, face=face_geometry(scene))
    lights = lightstage.blender_lights(lightstage.from_dict(stage, dtype=torch.float64))
    for obj in stage_lights():
        place_light(obj, lights[int(obj[INDEX])])
    assert scene.world is not None
    set_environment(scene.world, sh)
    return note


def rotate_environment(scene: bpy.types.Scene, yaw_deg: float, pitch_deg: float) -> None:
    """Turn the world's current SH environment by yaw (about Z) then pitch (about X) and re-bake it."""
    from ..core.apps.relight import rotate_environment as rotated  # imports torch: only once the dependencies are installed

    world = scene.world
    if world is None or world.get(SH) is None:
        raise FaceStageError("This scene has no FaceStage environment to rotate; rebuild it from its result folder.")
    set_environment(world, rotated(np.asarray(world[SH], dtype=np.float64), yaw_deg, pitch_deg))


RIG_ROLE = "rig_light"  # role (scene.transaction.ROLE) of the lights a rig adds
RIG_WORLD = "FaceStage Rig World"


def _fitted_world(scene: bpy.types.Scene) -> bpy.types.World | None:
    """The build's world (it holds the fitted SH), even while a rig's world is the scene's."""
    if scene.world is not None and scene.world.get(SH_FITTED) is not None:
        return scene.world
    return next((w for w in bpy.data.worlds if w.get(SH_FITTED) is not None), None)


def clear_rig(scene: bpy.types.Scene) -> None:
    """Remove a rig's lights and world and give the scene its FaceStage world back."""
    rig_objects = [o for o in bpy.data.objects if o.get(ROLE) == RIG_ROLE]
    datas = [o.data for o in rig_objects if o.data is not None]
    worlds = [w for w in bpy.data.worlds if w.get(ROLE) == RIG_ROLE]
    fitted = _fitted_world(scene)
    if fitted is not None and scene.world is not fitted:
        scene.world = fitted
    bpy.data.batch_remove([*rig_objects, *datas, *worlds])


def apply_rig(scene: bpy.types.Scene, path: str) -> int:
    """Light the built scene with a rig file (core.io.rig) instead of the stage: the same lights and world as
    `facestage relight --rig`. Returns the number of lights added; the stage lights are switched off."""
    from ..core.apps.rig import Frames, place  # imports torch (core): only once the dependencies are installed

    rig = load_rig(path)
    camera, face, stage = scene.camera, role_object("face"), role_object("stage")
    if camera is None or face is None or stage is None:
        raise FaceStageError("This file has no complete FaceStage scene (face, light stage and camera) to relight.")
    world_matrix = np.array(face.matrix_world, dtype=np.float64)
    frames = Frames(np.array(camera.matrix_world, dtype=np.float64), world_matrix[:3, :3], world_matrix[:3, 3],
                    np.array(stage.matrix_world.translation, dtype=np.float64))
    placed = place(rig, frames)
    clear_rig(scene)
    for obj in stage_lights():
        set_on(obj, False)
    add_rig_lights(placed, face.users_collection[0])
    scene.world = rig_world(placed)
    return len(placed.lights)


def add_rig_lights(placed: object, collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """Blender lights for a placed rig (core.apps.rig.PlacedRig), tagged as rig lights, linked to collection."""
    objects = []
    for light in placed.lights:  # type: ignore[attr-defined]
        data: Any = bpy.data.lights.new(light.name, light.type)  # Area/Point/SpotLight by type
        data[ROLE] = RIG_ROLE
        data.energy = light.power_w
        data.color = light.color
        if light.type == "AREA":
            data.shape, data.size, data.size_y = light.shape, light.size, light.size_y
        else:
            data.shadow_soft_size = light.radius
        if light.type == "SPOT":
            data.spot_size, data.spot_blend, data.show_cone = light.spot_size, light.spot_blend, True
        obj = bpy.data.objects.new(light.name, data)
        obj[ROLE] = RIG_ROLE
        obj.matrix_world = Matrix.LocRotScale(light.position.tolist(), Matrix(light.rotation.tolist()), None)
        collection.objects.link(obj)
        objects.append(obj)
    return objects


def rig_world(placed: object) -> bpy.types.World:
    """A world node tree for the rig: a uniform Background, or Environment Texture ← Mapping (the rig's turn)."""
    world = bpy.data.worlds.new(RIG_WORLD)
    world[ROLE] = RIG_ROLE
    tree = node_tree(world)
    background = tree.nodes.new("ShaderNodeBackground")
    output = tree.nodes.new("ShaderNodeOutputWorld")
    output.location = (300, 0)
    tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    background.inputs["Strength"].default_value = float(placed.world_strength)  # type: ignore[attr-defined]
    if placed.world_type == "uniform":  # type: ignore[attr-defined]
        background.inputs["Color"].default_value = (*placed.world_color, 1.0)  # type: ignore[attr-defined]
        return world
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(placed.world_path, check_existing=True)  # type: ignore[attr-defined]
    texture.interpolation = "Linear"
    texture.location = (-300, 0)
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.vector_type = "VECTOR"
    mapping.location = (-550, 0)
    mapping.inputs["Rotation"].default_value = Matrix(placed.environment_rotation.tolist()).to_euler("XYZ")  # type: ignore[attr-defined]
    coords = tree.nodes.new("ShaderNodeTexCoord")
    coords.location = (-750, 0)
    tree.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    tree.links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    return world
