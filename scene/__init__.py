"""Blender scene builders (bpy only; the maths lives in core/)."""
