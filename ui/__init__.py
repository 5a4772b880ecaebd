"""The FaceStage side panel (3D viewport N-panel) and add-on preferences."""

from __future__ import annotations

import bpy

from . import panel, preferences, properties

classes: tuple[type, ...] = (*preferences.classes, *panel.classes)

__all__ = ["properties", "register", "unregister"]


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
