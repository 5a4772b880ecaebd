"""All-or-nothing scene edits: a failed build removes what it created and restores what it changed.

Every builder creates its datablocks through `Transaction.new` and changes
scene settings through `Transaction.set`, so `build_scene` can promise that
an exception leaves the file exactly as it was. Created datablocks are
tagged with the build's token, which is how a later build finds (and
replaces) this one.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import bpy

TAG = "facestage_build"
ROLE = "facestage_role"  # on built objects: "face", "eye", "stage", "light", "camera"
ID = TypeVar("ID", bound=bpy.types.ID)


class Transaction:
    """Datablocks created and settings changed by one build, in order."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.created: list[tuple[bpy.types.ID, str]] = []
        self.changed: list[tuple[Any, str, Any]] = []

    def new(self, datablock: ID, name: str, role: str = "") -> ID:
        """Adopt a freshly created datablock; ``name`` is the name it should end up with."""
        datablock[TAG] = self.token
        if role:
            datablock[ROLE] = role
        self.created.append((datablock, name))
        return datablock

    def set(self, owner: Any, attribute: str, value: Any) -> None:
        """Change one setting, remembering its old value."""
        self.changed.append((owner, attribute, getattr(owner, attribute)))
        setattr(owner, attribute, value)

    def rollback(self) -> None:
        """Restore every changed setting and remove every created datablock."""
        for owner, attribute, value in reversed(self.changed):
            try:
                setattr(owner, attribute, value)
            except (ReferenceError, TypeError, AttributeError):
                continue
        bpy.data.batch_remove([datablock for datablock, _ in self.created if _alive(datablock)])
        self.created.clear()
        self.changed.clear()

    def commit(self) -> None:
        """Remove what earlier builds left, then give the new datablocks their plain names."""
        previous = [d for d in tagged() if d.get(TAG) != self.token]
        if previous:
            bpy.data.batch_remove(previous)
        for datablock, name in self.created:
            if _alive(datablock):
                datablock.name = name


def tagged() -> list[bpy.types.ID]:
    """Every datablock made by any FaceStage build in this file."""
    groups = (bpy.data.collections, bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.images,
              bpy.data.lights, bpy.data.cameras, bpy.data.worlds)
    return [d for group in groups for d in group if d.get(TAG) is not None]


def _alive(datablock: bpy.types.ID) -> bool:
    try:
        datablock.name  # noqa: B018 - a removed datablock raises ReferenceError here
    except ReferenceError:
        return False
    return True
