"""FaceStage Blender extension: register() and unregister(), nothing else.

bpy and the add-on's Blender modules are imported inside the functions so that
`import facestage` (and `python -m facestage`) works where bpy is absent.
"""

from __future__ import annotations

_cli_handle = None


def _blender_modules():  # type: ignore[no-untyped-def]
    from . import operators, ui

    return (ui.properties, operators, ui)


def register() -> None:
    import bpy

    from . import deps
    from .cli import main

    global _cli_handle
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch threads must not spin against Blender's
    deps.activate()
    for module in _blender_modules():
        module.register()
    _cli_handle = bpy.utils.register_cli_command("facestage", main)


def unregister() -> None:
    import bpy

    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    for module in reversed(_blender_modules()):
        module.unregister()
