"""FaceStage core: bpy-free reconstruction of a face from one photo.

Importable and testable without Blender; the add-on's scene/ and operators/
packages call into it. One layer a folder, in this order, and a folder imports
only the folders listed before it (tests/test_layers.py enforces it):

    common   errors, config and the one list of each choice, device, progress, versions, metrics
    model    what a face and its light are: head model (+ data/), camera, light stage, skin, BRDF, SH, UV maps
    io       files in and out: photos, the result folder (the output contract), light files, report.png
    render   the differentiable ray tracer: BVH queries, sampling, edge sampling, the photo crop
    apps     what can be done with a finished reconstruction: re-render, relight, caricature, passes
    fit      from a photo to a result: landmarks, masks, landmark solver, stages, pipeline

The pipeline sits on top because it ends by re-rendering its own result exactly
as a later `relight`/`render` of the saved folder will (apps.rerender).
Imports inside functions are kept for heavy dependencies only (torch, warp,
mediapipe), each with a comment, so that `import facestage.core` and the
Blender add-on's registration stay cheap and work before those are installed.
"""

from .common.errors import Cancelled, FaceStageError

__all__ = ["Cancelled", "FaceStageError"]
