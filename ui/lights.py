"""Lights section: the 20 stage lights as a list (on/off, colour, power); clicking one selects it in the viewport."""

from __future__ import annotations

from typing import Any

import bpy

from ..scene.lights import INDEX, is_on, is_stage_light
from ..scene.query import stage_collection
from .panel import FaceStageSubPanel
from ..properties import settings as get_settings


class FACESTAGE_UL_lights(bpy.types.UIList):
    """The stage lights of the FaceStage collection, in stage order."""

    def draw_item(self, context: bpy.types.Context | None, layout: bpy.types.UILayout, data: Any | None, item: Any | None,
                  icon: int | None, active_data: Any, active_property: str | None, index: int | None = 0,
                  flt_flag: int | None = 0) -> None:
        if item is None:
            return
        on = is_on(item)
        row = layout.row(align=True)
        toggle = row.operator("facestage.toggle_light", text="", emboss=False, depress=on,
                              icon="OUTLINER_OB_LIGHT" if on else "LIGHT")
        toggle.name = item.name
        row.label(text=item.name)
        sub = row.row(align=True)
        sub.active = on
        sub.prop(item.data, "color", text="")
        sub.prop(item.data, "energy", text="")

    def filter_items(self, context: bpy.types.Context | None, data: Any, property: str) -> Any:
        items = getattr(data, property)
        flags = [self.bitflag_filter_item if is_stage_light(o) else 0 for o in items]
        keys = [(int(o[INDEX]) if is_stage_light(o) else 1 << 20, i) for i, o in enumerate(items)]
        order = [0] * len(keys)
        for position, (_, i) in enumerate(sorted(keys)):
            order[i] = position
        return flags, order


class VIEW3D_PT_facestage_lights(FaceStageSubPanel):
    bl_label = "Lights"
    bl_idname = "VIEW3D_PT_facestage_lights"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        collection = stage_collection()
        if collection is None:
            layout.label(text="No light stage yet: reconstruct or build a scene.")
            return
        settings = get_settings(context)
        layout.template_list("FACESTAGE_UL_lights", "", collection, "objects", settings, "light_index", rows=5)
        if 0 <= settings.light_index < len(collection.objects):
            obj = collection.objects[settings.light_index]
            if is_stage_light(obj):
                column = layout.column(align=True)
                column.use_property_split = True
                column.prop(obj.data, "energy", text="Power")
                column.prop(obj.data, "color")
                column.prop(obj.data, "shape")
                column.prop(obj.data, "size")


classes: tuple[type, ...] = (FACESTAGE_UL_lights, VIEW3D_PT_facestage_lights)
