"""FACESTAGE_OT_* operators, one module per feature, each thin over core/ and scene/."""

from __future__ import annotations

import bpy

from . import apps, build, dependencies, lights, reconstruct, render

classes: tuple[type, ...] = (*reconstruct.classes, *build.classes, *render.classes, *lights.classes,
                             *apps.classes, *dependencies.classes)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    reconstruct.register()


def unregister() -> None:
    reconstruct.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
