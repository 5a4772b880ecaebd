"""Add-on preferences: dependency status, the two installers (online, wheel files) with progress, defaults."""

from __future__ import annotations

import textwrap

import bpy

from .. import deps
from ..jobs import INSTALL, running
from ..properties import DEVICE_ITEMS, QUALITY_ITEMS, install_status


class FACESTAGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__.rpartition(".")[0] if __package__ else "facestage"

    default_quality: bpy.props.EnumProperty(name="Default quality", items=QUALITY_ITEMS, default="default")  # type: ignore[valid-type]
    default_device: bpy.props.EnumProperty(name="Default device", items=DEVICE_ITEMS, default="auto")  # type: ignore[valid-type]

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        missing = deps.missing()
        box = layout.box()
        if missing:
            for i, line in enumerate(textwrap.wrap(deps.missing_sentence(missing), 90)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        else:
            box.label(text="Everything FaceStage needs is installed", icon="CHECKMARK")
        status = install_status(context)
        if running(INSTALL) is not None:
            box.progress(factor=status.progress, type="BAR", text=status.status or "Installing…")
        elif status.status:
            box.label(text=status.status, icon="INFO")
        row = box.row()
        if missing:
            row.operator("facestage.install_dependencies", icon="URL")
            row.operator("facestage.install_wheel_files", icon="FILE_FOLDER")
        row.operator("facestage.check_dependencies", icon="VIEWZOOM")
        column = layout.column()
        column.use_property_split = True
        column.prop(self, "default_quality")
        column.prop(self, "default_device")


def preferences(context: bpy.types.Context) -> FACESTAGE_AP_preferences | None:
    """This add-on's preferences, or None when it runs unregistered (scripts, tests)."""
    addon = context.preferences.addons.get(FACESTAGE_AP_preferences.bl_idname)
    return addon.preferences if addon is not None else None  # type: ignore[return-value]


def apply_defaults(context: bpy.types.Context) -> None:
    """Give every scene that never had FaceStage settings the preferred quality and device."""
    prefs = preferences(context)
    if prefs is None:
        return
    for scene in bpy.data.scenes:
        settings = scene.facestage  # type: ignore[attr-defined]
        if not settings.defaults_applied:
            settings.quality, settings.device = prefs.default_quality, prefs.default_device
            settings.defaults_applied = True


@bpy.app.handlers.persistent
def _defaults_on_load(*_: object) -> None:
    apply_defaults(bpy.context)


def _defaults_soon() -> None:
    apply_defaults(bpy.context)


def register() -> None:
    bpy.app.handlers.load_post.append(_defaults_on_load)
    bpy.app.timers.register(_defaults_soon, first_interval=0.1)


def unregister() -> None:
    if _defaults_on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_defaults_on_load)
    if bpy.app.timers.is_registered(_defaults_soon):
        bpy.app.timers.unregister(_defaults_soon)


classes: tuple[type, ...] = (FACESTAGE_AP_preferences,)
