"""The FaceStage side panel (3D viewport N-panel, one module per section) and the add-on preferences."""

from __future__ import annotations

import bpy

from . import apps, lights, maps, output, panel, preferences, reconstruct

classes: tuple[type, ...] = (*preferences.classes, *panel.classes, *reconstruct.classes, *lights.classes,
                             *maps.classes, *apps.classes, *output.classes)

__all__ = ["register", "unregister"]


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    preferences.register()


def unregister() -> None:
    preferences.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
