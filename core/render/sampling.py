"""The random numbers of the renderer: one stream, stratified unit squares, and the triangle warp.

Every random choice of a render (pixel jitter, light samples, bounce
directions, edge samples) is drawn here from the caller's generator, so a
seeded generator gives a deterministic render on any device.
"""

from __future__ import annotations

import math

import torch


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) numbers drawn on the generator's device (so a CPU generator gives the same numbers for a
    CUDA render) and moved to `device`."""
    source = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, dtype=dtype, device=source).to(device)


def stratified(shape: tuple[int, ...], count: int, generator: torch.Generator | None, device: torch.device,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0,1)² points (*shape, count, 2), jittered on a √count × √count grid when count is a perfect square."""
    xi = uniform((*shape, count, 2), generator, device, dtype)
    k = math.isqrt(count)
    if k * k == count and count > 1:
        s = torch.arange(count, device=device)
        xi = (torch.stack([s % k, s // k], dim=-1).to(dtype) + xi) / k
    return xi


def triangle_points(triangles: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """Uniform points (..., 3) on triangles (..., 3, 3) from unit-square points xi (..., 2), by the square-root warp.

    Barycentrics (1 − √u₁, √u₁(1 − u₂), √u₁ u₂) are uniform in area and keep the square's strata apart.
    """
    root = xi[..., 0].sqrt()
    b1 = root * (1 - xi[..., 1])
    b2 = root * xi[..., 1]
    return triangles[..., 0, :] + b1[..., None] * (triangles[..., 1, :] - triangles[..., 0, :]) \
        + b2[..., None] * (triangles[..., 2, :] - triangles[..., 0, :])
