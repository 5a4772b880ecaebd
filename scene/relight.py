"""Relighting in Blender: put the stage lights and the world into a preset of core.apps.relight, or back to the fitted lighting.

Presets are computed by core.apps.relight.preset_lighting from the fitted stage and
SH that the build stored (on the "Light Stage" empty and the world), so they
are exposure-matched to the reconstruction and identical to what
`facestage relight --preset` renders; the lights are then placed exactly as
the build places them.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.common.errors import FaceStageError
from .lights import INDEX, PARAMETERS, place_light
from .query import role_object, stage_lights
from .world import SH, SH_FITTED, set_environment

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


def apply_lighting(scene: bpy.types.Scene, name: str) -> None:
    """Set the 20 stage lights and the environment to preset ``name`` (core.apps.relight.PRESETS) or to FITTED."""
    import torch  # heavy: only once the dependencies are installed

    from ..core.apps.relight import preset_lighting  # imports torch: only once the dependencies are installed
    from ..core.model import lightstage  # imports torch: only once the dependencies are installed

    stage, sh = fitted_lighting(scene)
    if name != FITTED:
        stage, sh = preset_lighting(stage, sh, name)
    lights = lightstage.blender_lights(lightstage.from_dict(stage, dtype=torch.float64))
    for obj in stage_lights():
        place_light(obj, lights[int(obj[INDEX])])
    assert scene.world is not None
    set_environment(scene.world, sh)


def rotate_environment(scene: bpy.types.Scene, yaw_deg: float, pitch_deg: float) -> None:
    """Turn the world's current SH environment by yaw (about Z) then pitch (about X) and re-bake it."""
    from ..core.apps.relight import rotate_environment as rotated  # imports torch: only once the dependencies are installed

    world = scene.world
    if world is None or world.get(SH) is None:
        raise FaceStageError("This scene has no FaceStage environment to rotate; rebuild it from its result folder.")
    set_environment(world, rotated(np.asarray(world[SH], dtype=np.float64), yaw_deg, pitch_deg))
