"""FACESTAGE_OT_* operators, one module per feature, each thin over core/ and scene/."""

from __future__ import annotations

import bpy

from . import dependencies, reconstruct

classes: tuple[type, ...] = (*reconstruct.classes, *dependencies.classes)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
