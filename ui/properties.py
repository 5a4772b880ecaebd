"""Per-scene settings of the FaceStage panel (scene.facestage)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, PointerProperty, StringProperty

QUALITY_ITEMS = [
    ("fast", "Fast", "About a minute on a laptop CPU"),
    ("default", "Default", "Balanced quality and time"),
    ("high", "High", "Finer maps and more iterations"),
]
DEVICE_ITEMS = [
    ("auto", "Auto", "CUDA when available, else CPU"),
    ("cpu", "CPU", "Always use the CPU"),
    ("cuda", "CUDA", "NVIDIA GPU through CUDA"),
]


class FaceStageSettings(bpy.types.PropertyGroup):
    """Inputs and live status of a reconstruction."""

    photo: StringProperty(name="Photo", subtype="FILE_PATH", description="Photo of one face to reconstruct")  # type: ignore[valid-type]
    output_dir: StringProperty(name="Output", subtype="DIR_PATH", description="Folder for the results (empty: next to the .blend or temporary)")  # type: ignore[valid-type]
    quality: EnumProperty(name="Quality", items=QUALITY_ITEMS, default="default")  # type: ignore[valid-type]
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]
    status: StringProperty(name="Status", default="")  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR", default=0.0)  # type: ignore[valid-type]


def settings(context: bpy.types.Context) -> FaceStageSettings:
    """The scene's FaceStage settings, typed (the property is added at register time)."""
    return context.scene.facestage  # type: ignore[attr-defined, no-any-return]


def register() -> None:
    bpy.utils.register_class(FaceStageSettings)
    bpy.types.Scene.facestage = PointerProperty(type=FaceStageSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.Scene.facestage  # type: ignore[attr-defined]
    bpy.utils.unregister_class(FaceStageSettings)
