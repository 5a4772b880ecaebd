"""World "FaceStage World": the spherical-harmonics environment, baked to an equirect image (Environment Texture, strength 1).

core.sh bakes the image in Blender's Environment Texture mapping, so the
world emits the radiance the reconstruction fitted; rotating the texture
mapping in the node tree rotates the environment.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core.result import Result
from .material import node_tree, packed_image
from .transaction import Transaction

WORLD = "FaceStage World"
ENVIRONMENT = "FaceStage Environment"
HEIGHT = 128  # equirect rows; 9 SH bands have no detail finer than ~20°


def build_world(tx: Transaction, result: Result, scene: bpy.types.Scene) -> bpy.types.World:
    import torch

    from ..core.sh import sh_to_equirect

    coeffs = torch.as_tensor(np.asarray(result.sh, dtype=np.float32))
    radiance = sh_to_equirect(coeffs, HEIGHT).detach().cpu().numpy()
    image = packed_image(tx, ENVIRONMENT, radiance, "Linear Rec.709", float_buffer=True)
    world = tx.new(bpy.data.worlds.new(WORLD), WORLD)
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
