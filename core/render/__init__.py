"""Layer 4 of core/: the differentiable ray tracer the fit inverts (renderer.py), its BVH, sampling and edge sampling."""

from .renderer import PASSES, Material, Part, RenderOptions, RenderOutput, RenderScene, compose, render, scene_mesh

__all__ = ["PASSES", "Material", "Part", "RenderOptions", "RenderOutput", "RenderScene", "compose", "render",
           "scene_mesh"]
