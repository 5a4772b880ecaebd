"""Compositor tree "FaceStage Composite": F12 lays the rendered face over the photo, occluders in front.

render.png shows the rendered head only where the face is visible in the photo
(core/apps/rerender.py): alpha = coverage × (1 − occlusion). The scene does the
same, so an F12 render of face.blend is what render.png is, under any light the
user sets: the film is transparent, one Alpha Over node puts the render
(premultiplied, Foreground) over the photo (Background), and a second puts the
photo (opaque) back over that with occlusion.png as its factor:
photo · occlusion + (render over photo) · (1 − occlusion), which is the
render with alpha · (1 − occlusion) over the photo. occlusion.png is at the
photo's full resolution (8-bit); Blender reads the file itself when the result
came from a folder (no float copy of a 48 MP mask passes through Python), else
it is packed from the array. The face itself stays an ordinary,
editable, relightable mesh; switching the compositor off (Output Properties ›
Post Processing › Compositing) shows the bare head on a transparent film.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import bpy
import numpy as np

from ..core.io.image import to_float
from ..core.io.result import OCCLUSION_PNG, Result
from .material import packed_image
from .transaction import Transaction

TREE = "FaceStage Composite"
OCCLUSION = "FaceStage Occlusion"


def build_compositing(tx: Transaction, result: Result, scene: bpy.types.Scene, photo: bpy.types.Image) -> Any:
    """The compositor tree over `photo` (the camera's background image); nothing when the result has no occlusion."""
    if result.occlusion is None:
        return None
    occlusion = _occlusion_image(tx, result)
    tx.set(scene.render, "film_transparent", True)
    tree, output = _tree(tx, scene)
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    layers.location = (-500, 200)
    background = tree.nodes.new("CompositorNodeImage")
    background.image = photo
    background.label = "Photo"
    background.location = (-500, -150)
    factor = tree.nodes.new("CompositorNodeImage")
    factor.image = occlusion
    factor.label = "Photo in front (occlusion.png)"
    factor.location = (-500, -450)
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.location = (-100, 0)
    tree.links.new(background.outputs["Image"], over.inputs["Background"])
    tree.links.new(layers.outputs["Image"], over.inputs["Foreground"])
    front = tree.nodes.new("CompositorNodeAlphaOver")  # the photo again, in front where occlusion.png says so
    front.location = (150, 0)
    tree.links.new(over.outputs["Image"], front.inputs["Background"])
    tree.links.new(background.outputs["Image"], front.inputs["Foreground"])
    tree.links.new(factor.outputs["Image"], front.inputs[_factor_socket(front)])
    output.location = (400, 0)
    tree.links.new(front.outputs["Image"], output.inputs[0])
    return tree


def _occlusion_image(tx: Transaction, result: Result) -> bpy.types.Image:
    """occlusion.png as a packed non-colour image: read by Blender from the result folder when there is one (the
    photo's own folder), else packed from the array."""
    path = None if result.photo_file is None else Path(result.photo_file).with_name(OCCLUSION_PNG)
    if path is not None and path.is_file():
        image = tx.new(bpy.data.images.load(str(path), check_existing=False), OCCLUSION)
        image.colorspace_settings.name = "Non-Color"
        image.pack()
        return image
    return packed_image(tx, OCCLUSION, to_float(np.asarray(result.occlusion)), "Non-Color", float_buffer=False)


def _factor_socket(node: Any) -> str:
    return "Factor" if "Factor" in node.inputs else "Fac"


def _tree(tx: Transaction, scene: bpy.types.Scene) -> tuple[Any, Any]:
    """A new compositor node tree for the scene and its output node (Blender 5 node groups; 4.x scene trees)."""
    if hasattr(scene, "compositing_node_group"):
        tree: Any = tx.new(cast(Any, bpy.data.node_groups.new(TREE, "CompositorNodeTree")), TREE)
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        tx.set(scene, "compositing_node_group", tree)
        return tree, tree.nodes.new("NodeGroupOutput")
    tx.set(scene, "use_nodes", True)  # Blender 4.x: the default tree (Render Layers → Composite) is replaced
    tree = scene.node_tree  # type: ignore[attr-defined]
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    return tree, tree.nodes.new("CompositorNodeComposite")
