"""FaceStage core: bpy-free reconstruction of a face from one photo.

Importable and testable without Blender; the add-on's scene/ and operators/
packages call into it. Submodules are imported on demand so that importing
the package stays cheap (torch is only loaded by the modules that need it).
"""

from .errors import Cancelled, FaceStageError

__all__ = ["Cancelled", "FaceStageError"]
