"""Attribute separation in Cycles: the render passes that correspond to the core's layers, wired to a File Output in the compositor.

Core layer → Cycles pass: albedo → Diffuse Color; diffuse + ambient shading →
Diffuse Direct (+ Indirect); specular → Glossy Color × Glossy Direct; the
light stage's and the environment's contributions → the light-group passes
"Combined_stage" and "Combined_ambient". Every F12 / Render Shot then also
writes one multilayer OpenEXR with those layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from .query import stage_lights

TREE = "FaceStage Passes"
STAGE_GROUP, AMBIENT_GROUP = "stage", "ambient"
PASSES = {  # EXR layer: (Render Layers output, view-layer switch)
    "albedo": ("Diffuse Color", "use_pass_diffuse_color"),
    "diffuse_direct": ("Diffuse Direct", "use_pass_diffuse_direct"),
    "diffuse_indirect": ("Diffuse Indirect", "use_pass_diffuse_indirect"),
    "specular_color": ("Glossy Color", "use_pass_glossy_color"),
    "specular_direct": ("Glossy Direct", "use_pass_glossy_direct"),
    "specular_indirect": ("Glossy Indirect", "use_pass_glossy_indirect"),
    "normal": ("Normal", "use_pass_normal"),
}
GROUP_LAYERS = {"stage": f"Combined_{STAGE_GROUP}", "ambient": f"Combined_{AMBIENT_GROUP}"}


def enable_passes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> None:
    """Switch on the passes and put the stage lights and the world into their light groups."""
    for _, switch in PASSES.values():
        setattr(view_layer, switch, True)
    for name in (STAGE_GROUP, AMBIENT_GROUP):
        if view_layer.lightgroups.get(name) is None:
            view_layer.lightgroups.add(name=name)
    for light in stage_lights():
        light.lightgroup = STAGE_GROUP
    if scene.world is not None:
        scene.world.lightgroup = AMBIENT_GROUP


def compositor_tree(scene: bpy.types.Scene) -> Any:
    """An empty compositor node tree for the scene that passes the render through (Blender 4.x and 5.x)."""
    if hasattr(scene, "compositing_node_group"):
        tree: Any = bpy.data.node_groups.get(TREE) or bpy.data.node_groups.new(TREE, "CompositorNodeTree")
        tree.nodes.clear()
        if not any(item.item_type == "SOCKET" and item.in_out == "OUTPUT" for item in tree.interface.items_tree):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        return tree, tree.nodes.new("NodeGroupOutput")
    scene.use_nodes = True
    tree = scene.node_tree  # type: ignore[attr-defined]
    tree.nodes.clear()
    return tree, tree.nodes.new("CompositorNodeComposite")


def file_output(tree: Any, directory: Path, layers: list[str]) -> Any:
    """A multilayer OpenEXR File Output node with one input per layer."""
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.format.file_format = "OPEN_EXR_MULTILAYER"
    if hasattr(node, "file_output_items"):
        node.directory = str(directory) + "/"
        node.file_name = "passes_"
        for name in layers:
            node.file_output_items.new("RGBA", name)
    else:
        node.base_path = str(directory / "passes_")
        node.layer_slots.clear()
        for name in layers:
            node.layer_slots.new(name)
    return node


def setup_passes(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, directory: Path) -> Any:
    """Enable the passes and build the compositor tree; renders then write directory/passes_####.exr."""
    enable_passes(scene, view_layer)
    tree, output = compositor_tree(scene)
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    layers.layer = view_layer.name
    layers.location = (-400, 0)
    output.location = (300, 200)
    tree.links.new(layers.outputs["Image"], output.inputs[0])
    sources = {name: output_name for name, (output_name, _) in PASSES.items()}
    sources.update(GROUP_LAYERS)
    sources["image"] = "Image"
    files = file_output(tree, directory, list(sources))
    files.location = (300, -100)
    for name, source in sources.items():
        socket = layers.outputs.get(source)
        if socket is not None:
            tree.links.new(socket, files.inputs[name])
    return tree
