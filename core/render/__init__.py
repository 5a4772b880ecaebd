"""Layer 4 of core/: the differentiable ray tracer the fit inverts (renderer.py), its BVH, sampling and edge sampling."""

from .renderer import PASSES, RenderOptions, RenderOutput, RenderScene, compose, render

__all__ = ["PASSES", "RenderOptions", "RenderOutput", "RenderScene", "compose", "render"]
