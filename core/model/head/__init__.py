"""Head model: load the committed hm08 head, evaluate shapes, pose them, and read regions and symmetry; its eyes and mouth."""

from .model import DEFAULT_PATH, HeadModel, load_head_model, posed, vertex_normals

__all__ = ["DEFAULT_PATH", "HeadModel", "load_head_model", "posed", "vertex_normals"]
