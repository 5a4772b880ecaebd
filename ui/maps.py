"""Maps section: previews of the recovered diffuse, specular and roughness maps."""

from __future__ import annotations

import bpy

from ..scene.material import MAPS
from ..scene.transaction import TAG
from .panel import FaceStageSubPanel

LABELS = {"diffuse": "Diffuse (sRGB)", "specular": "Specular IOR Level", "roughness": "Roughness"}


class VIEW3D_PT_facestage_maps(FaceStageSubPanel):
    bl_label = "Maps"
    bl_idname = "VIEW3D_PT_facestage_maps"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        images = {key: bpy.data.images.get(name) for key, name in MAPS.items()}
        if not any(image is not None and TAG in image for image in images.values()):
            layout.label(text="No maps yet: reconstruct or build a scene.")
            return
        flow = layout.grid_flow(columns=3, even_columns=True)
        for key, image in images.items():
            column = flow.column(align=True)
            column.label(text=LABELS[key])
            if image is None:
                column.label(text="missing", icon="ERROR")
                continue
            column.template_icon(icon_value=layout.icon(image), scale=5.0)
            column.label(text=f"{image.size[0]}×{image.size[1]}")


classes: tuple[type, ...] = (VIEW3D_PT_facestage_maps,)
