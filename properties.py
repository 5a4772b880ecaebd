"""Per-scene settings of the FaceStage panel (scene.facestage) and the installer's live status (window_manager.facestage_install).

Neutral ground between ui/ (which draws them) and operators/ (which read and
write them): neither imports the other, both import this module.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .core.common.config import DEVICES, QUALITIES
from .scene.query import stage_collection

# Labels and tooltips of the one list of each choice in core/common/config.py (same identifiers, same order).
QUALITY_ITEMS = [(name, *text) for name, text in zip(QUALITIES, [
    ("Fast", "About a minute on a laptop CPU"),
    ("Default", "Balanced quality and time"),
    ("High", "Finer maps and more iterations"),
], strict=True)]
DEVICE_ITEMS = [(name, *text) for name, text in zip(DEVICES, [
    ("Auto", "CUDA when available, else CPU"),
    ("CPU", "Always use the CPU"),
    ("CUDA", "NVIDIA GPU through CUDA"),
], strict=True)]


def _select_light(self: FaceStageSettings, context: bpy.types.Context) -> None:
    """Clicking a light in the panel's list selects it in the viewport."""
    collection = stage_collection()
    if collection is None or not 0 <= self.light_index < len(collection.objects):
        return
    obj = collection.objects[self.light_index]
    view_layer = context.view_layer
    if view_layer is None or view_layer.objects.get(obj.name) is None:
        return
    for other in view_layer.objects.selected:
        other.select_set(False)
    if obj.visible_get(view_layer=view_layer):
        obj.select_set(True)
    view_layer.objects.active = obj


class FaceStageSettings(bpy.types.PropertyGroup):
    """Inputs and live status of a reconstruction."""

    photo: StringProperty(name="Photo", subtype="FILE_PATH", description="Photo of one face to reconstruct")  # type: ignore[valid-type]
    output_dir: StringProperty(name="Output", subtype="DIR_PATH", description="Folder for the results (empty: next to the .blend or temporary)")  # type: ignore[valid-type]
    quality: EnumProperty(name="Quality", items=QUALITY_ITEMS, default="default")  # type: ignore[valid-type]
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]
    status: StringProperty(name="Status", default="")  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR", default=0.0)  # type: ignore[valid-type]
    result_dir: StringProperty(name="Result", subtype="DIR_PATH", description="Folder of the last reconstruction or build")  # type: ignore[valid-type]
    defaults_applied: BoolProperty(default=False, options={"HIDDEN"})  # type: ignore[valid-type]
    light_index: IntProperty(name="Light", default=-1, update=_select_light, description="The stage light selected in the list")  # type: ignore[valid-type]


class FaceStageInstall(bpy.types.PropertyGroup):
    """Progress of the dependency installer (not saved with the file)."""

    status: StringProperty(name="Status", default="")  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR", default=0.0)  # type: ignore[valid-type]


def settings(context: bpy.types.Context) -> FaceStageSettings:
    """The scene's FaceStage settings, typed (the property is added at register time)."""
    return context.scene.facestage  # type: ignore[attr-defined, no-any-return]


def install_status(context: bpy.types.Context) -> FaceStageInstall:
    """The installer's status on the window manager."""
    return context.window_manager.facestage_install  # type: ignore[attr-defined, no-any-return]


def register() -> None:
    bpy.utils.register_class(FaceStageSettings)
    bpy.utils.register_class(FaceStageInstall)
    bpy.types.Scene.facestage = PointerProperty(type=FaceStageSettings)  # type: ignore[attr-defined]
    bpy.types.WindowManager.facestage_install = PointerProperty(type=FaceStageInstall)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.WindowManager.facestage_install  # type: ignore[attr-defined]
    del bpy.types.Scene.facestage  # type: ignore[attr-defined]
    bpy.utils.unregister_class(FaceStageInstall)
    bpy.utils.unregister_class(FaceStageSettings)
