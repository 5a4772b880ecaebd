"""Material "FaceSkin": Principled BSDF (single-scatter GGX) fed by the recovered maps, packed into the .blend.

The maps keep the reconstruction's conventions: the diffuse albedo is an
sRGB image, "Specular IOR Level" and roughness are raw (Non-Color) values
in Blender's convention, so Cycles shades what the core optimised.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core.io.image import linear_to_srgb
from ..core.io.result import Result
from .transaction import Transaction

SKIN = "FaceSkin"
# Part textures (eyes, mouth) are linear floats: Cycles interpolates an 8-bit sRGB image before decoding it,
# which rings at the iris rim and the teeth edges where the core (interpolating linear albedo) does not.
LINEAR = "Linear Rec.709"
MAPS = {"diffuse": "FaceStage Diffuse", "specular": "FaceStage Specular", "roughness": "FaceStage Roughness"}


def packed_image(tx: Transaction, name: str, pixels: np.ndarray, colorspace: str, float_buffer: bool) -> bpy.types.Image:
    """An image from an (H, W[, C]) array with row 0 at the top, packed into the file.

    The colour space is set before the pixels: changing it afterwards
    resets a generated image to black.
    """
    height, width = np.shape(pixels)[:2]
    image = tx.new(bpy.data.images.new(name, width, height, alpha=False, float_buffer=float_buffer), name)
    image.colorspace_settings.name = colorspace
    write_pixels(image, pixels)
    return image


def write_pixels(image: bpy.types.Image, pixels: np.ndarray) -> None:
    """Replace an image's pixels with an (H, W[, C]) array (row 0 at the top) and pack it again."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    rgba = np.ones((*pixels.shape[:2], 4), dtype=np.float32)
    rgba[..., :3] = pixels[..., :3]
    image.pixels.foreach_set(rgba[::-1].ravel())  # type: ignore[arg-type]
    image.update()
    image.pack()


def node_tree(datablock: bpy.types.Material | bpy.types.World) -> Any:
    """The datablock's node tree, emptied (Blender < 5 needs use_nodes switched on first)."""
    if bpy.app.version < (5, 0, 0) or datablock.node_tree is None:
        datablock.use_nodes = True
    tree = datablock.node_tree
    tree.nodes.clear()
    return tree


def image_node(tree: Any, image: bpy.types.Image, location: tuple[float, float]) -> Any:
    node: Any = tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    node.label = image.name
    node.interpolation = "Linear"
    node.extension = "EXTEND"
    node.location = location
    return node


def _principled(material: bpy.types.Material) -> tuple[Any, Any]:
    """(node tree, Principled BSDF) of a fresh material: single-scatter GGX, IOR 1.5 and no subsurface, as the core
    renders it, wired to the material output."""
    tree = node_tree(material)
    bsdf: Any = tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.distribution = "GGX"
    bsdf.inputs["IOR"].default_value = 1.5
    bsdf.inputs["Subsurface Weight"].default_value = 0.0
    output: Any = tree.nodes.new("ShaderNodeOutputMaterial")
    output.location = (300, 0)
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return tree, bsdf


def build_skin(tx: Transaction, result: Result) -> bpy.types.Material:
    """FaceSkin: Base Color ← diffuse (sRGB), Specular IOR Level ← specular, Roughness ← roughness (Non-Color)."""
    images = {
        "diffuse": packed_image(tx, MAPS["diffuse"], linear_to_srgb(result.diffuse), "sRGB", float_buffer=False),
        "specular": packed_image(tx, MAPS["specular"], result.specular, "Non-Color", float_buffer=True),
        "roughness": packed_image(tx, MAPS["roughness"], result.roughness, "Non-Color", float_buffer=True),
    }
    material = tx.new(bpy.data.materials.new(SKIN), SKIN)
    tree, bsdf = _principled(material)
    for row, (name, socket) in enumerate((("diffuse", "Base Color"), ("specular", "Specular IOR Level"),
                                          ("roughness", "Roughness"))):
        node = image_node(tree, images[name], (-400, 300 - 300 * row))
        tree.links.new(node.outputs["Color"], bsdf.inputs[socket])
    return material


def build_part_material(tx: Transaction, name: str, image: bpy.types.Image, values: Any,
                        coat: bpy.types.Image | None = None) -> bpy.types.Material:
    """An eye, teeth or mouth material: Principled BSDF (single-scatter GGX, as the core renders it) with Base
    Color ← `image` (sRGB) and the part's constant Specular IOR Level, Roughness and Coat
    (`values`: core.model.head.parts.PartMaterial); Coat Weight × `coat` (Non-Color), when given."""
    material = tx.new(bpy.data.materials.new(name), name)
    tree, bsdf = _principled(material)
    bsdf.inputs["Specular IOR Level"].default_value = values.specular
    bsdf.inputs["Roughness"].default_value = values.roughness
    bsdf.inputs["Coat Weight"].default_value = values.coat
    bsdf.inputs["Coat Roughness"].default_value = values.coat_roughness
    bsdf.inputs["Coat IOR"].default_value = values.coat_ior
    tree.links.new(image_node(tree, image, (-400, 300)).outputs["Color"], bsdf.inputs["Base Color"])
    if coat is not None:
        scale: Any = tree.nodes.new("ShaderNodeMath")
        scale.operation = "MULTIPLY"
        scale.inputs[1].default_value = values.coat
        scale.location = (-200, 0)
        tree.links.new(image_node(tree, coat, (-400, 0)).outputs["Color"], scale.inputs[0])
        tree.links.new(scale.outputs["Value"], bsdf.inputs["Coat Weight"])
    return material
