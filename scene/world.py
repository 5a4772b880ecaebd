"""World "FaceStage World": the spherical-harmonics environment, baked to an equirect image (Environment Texture, strength 1).

core.model.sh bakes the image in Blender's Environment Texture mapping, so the
world emits the radiance the reconstruction fitted. The world keeps the
fitted coefficients and the current ones (custom properties), so relighting
can change the environment and later restore it.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core.common.errors import FaceStageError
from ..core.io.result import Result
from .material import node_tree, packed_image, write_pixels
from .transaction import Transaction

WORLD = "FaceStage World"
ENVIRONMENT = "FaceStage Environment"
HEIGHT = 128  # equirect rows; 9 SH bands have no detail finer than ~20°
SH, SH_FITTED = "facestage_sh", "facestage_sh_fitted"  # custom properties on the world: (3, n) coefficients


def equirect(sh: np.ndarray) -> np.ndarray:
    """(HEIGHT, 2·HEIGHT, 3) radiance of SH coefficients (3, n), row 0 = top."""
    import torch  # heavy: only once the dependencies are installed

    from ..core.model.sh import sh_to_equirect  # imports torch: only once the dependencies are installed

    # clamped at 0 as the core's renderer clamps it: a world must not emit negative light
    return sh_to_equirect(torch.as_tensor(np.asarray(sh, dtype=np.float32)), HEIGHT).clamp_min(0).detach().cpu().numpy()


def build_world(tx: Transaction, result: Result, scene: bpy.types.Scene) -> bpy.types.World:
    image = packed_image(tx, ENVIRONMENT, equirect(result.sh), "Linear Rec.709", float_buffer=True)
    world = tx.new(bpy.data.worlds.new(WORLD), WORLD)
    world[SH] = world[SH_FITTED] = np.asarray(result.sh, dtype=np.float64).tolist()
    tree = node_tree(world)
    texture: Any = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = image
    texture.interpolation = "Linear"
    texture.projection = "EQUIRECTANGULAR"
    texture.location = (-300, 0)
    background: Any = tree.nodes.new("ShaderNodeBackground")
    background.inputs["Strength"].default_value = 1.0
    output: Any = tree.nodes.new("ShaderNodeOutputWorld")
    output.location = (250, 0)
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    tx.set(scene, "world", world)
    return world


def set_environment(world: bpy.types.World, sh: np.ndarray) -> None:
    """Re-bake a FaceStage world's environment image from new SH coefficients."""
    texture = next((n for n in world.node_tree.nodes if n.type == "TEX_ENVIRONMENT"), None) if world.node_tree else None
    if texture is None or texture.image is None:  # type: ignore[attr-defined]
        raise FaceStageError(f"World {world.name} has no environment texture; rebuild the FaceStage scene.")
    write_pixels(texture.image, equirect(sh))  # type: ignore[attr-defined]
    world[SH] = np.asarray(sh, dtype=np.float64).tolist()
