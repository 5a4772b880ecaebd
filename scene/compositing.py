"""Compositor tree "FaceStage Composite": F12 lays the rendered face over the photo, occluders in front.

render.png shows the rendered head only where the face is visible in the photo
(core/apps/rerender.py): alpha = coverage × (1 − occlusion). The scene does the
same, so an F12 render of face.blend is what render.png is, under any light the
user sets: the film is transparent, and an Alpha Over node puts the render
(premultiplied, Foreground) over the photo (Background) with the visibility
image (1 − occlusion.png) as its factor. The face itself stays an ordinary,
editable, relightable mesh; switching the compositor off (Output Properties ›
Post Processing › Compositing) shows the bare head on a transparent film.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core.io.result import Result
from .material import packed_image
from .transaction import Transaction

TREE = "FaceStage Composite"
VISIBLE = "FaceStage Visible"


def build_compositing(tx: Transaction, result: Result, scene: bpy.types.Scene, photo: bpy.types.Image) -> Any:
    """The compositor tree over `photo` (the camera's background image); nothing when the result has no occlusion."""
    if result.occlusion is None:
        return None
    visible = packed_image(tx, VISIBLE, 1.0 - np.asarray(result.occlusion, np.float32), "Non-Color", float_buffer=True)
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
    factor.image = visible
    factor.label = "Face visible (1 − occlusion.png)"
    factor.location = (-500, -450)
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.location = (-100, 0)
    tree.links.new(background.outputs["Image"], over.inputs["Background"])
    tree.links.new(layers.outputs["Image"], over.inputs["Foreground"])
    tree.links.new(factor.outputs["Image"], over.inputs[_factor_socket(over)])
    output.location = (200, 0)
    tree.links.new(over.outputs["Image"], output.inputs[0])
    return tree


def _factor_socket(node: Any) -> str:
    return "Factor" if "Factor" in node.inputs else "Fac"


def _tree(tx: Transaction, scene: bpy.types.Scene) -> tuple[Any, Any]:
    """A new compositor node tree for the scene and its output node (Blender 5 node groups; 4.x scene trees)."""
    if hasattr(scene, "compositing_node_group"):
        tree: Any = tx.new(bpy.data.node_groups.new(TREE, "CompositorNodeTree"), TREE)
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        tx.set(scene, "compositing_node_group", tree)
        return tree, tree.nodes.new("NodeGroupOutput")
    tx.set(scene, "use_nodes", True)  # Blender 4.x: the default tree (Render Layers → Composite) is replaced
    tree = scene.node_tree  # type: ignore[attr-defined]
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    return tree, tree.nodes.new("CompositorNodeComposite")
