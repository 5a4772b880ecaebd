"""FaceStage Blender extension: register() and unregister(), and the one setting torch must find as it loads.

bpy and the add-on's Blender modules are imported inside the functions so that
`import facestage` (and `python -m facestage`) works where bpy is absent.

Every facestage import passes through here first, so OMP_WAIT_POLICY, which
OpenMP reads once as torch loads, is defaulted here (an explicit value wins):
with libgomp's default spin-waiting, an idle torch worker spins against Warp's
CPU kernels, other processes and Blender's own threads, and 2-thread iterations
measured 5-10x slower on a busy 2-core machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import deps  # noqa: E402  (after the environment default above)
from .cli import main  # noqa: E402

_cli_handle = None


def _blender_modules():  # type: ignore[no-untyped-def]
    from . import operators, properties, ui  # bpy: only inside Blender

    return (properties, operators, ui)


def register() -> None:
    import bpy  # only inside Blender: `import facestage` works without it

    global _cli_handle
    deps.activate()
    for module in _blender_modules():
        module.register()
    _cli_handle = bpy.utils.register_cli_command("facestage", main)


def unregister() -> None:
    import bpy  # only inside Blender: `import facestage` works without it

    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    for module in reversed(_blender_modules()):
        module.unregister()
