"""Edge sampling (Li et al. 2018) for the gradients of primary visibility.

A pixel of the render is the box-filtered integral of the radiance over its square. Moving the
geometry or the camera moves the silhouettes, and the integral changes by the radiance jump
across each silhouette times how far it moved — a term that point-sampled ray tracing, whose
samples are piecewise constant in the parameters, never sees. Li et al. estimate it by sampling
points on the projected silhouette edges:

    ∂I_p/∂θ = ∫_{edges ∩ pixel p} (f₋(x) − f₊(x)) · (n(x) · ∂x/∂θ) dl

Sign convention: an edge from screen point p0 to p1 has unit normal n = (−(p1−p0)_y, (p1−p0)_x)/ℓ
(screen pixels, x right, y down); f₊ / f₋ are the radiances just on the +n / −n side
(rays through x ± ε·n). If the edge moves by δ along +n, the surface on the −n side sweeps over
the +n side, so the pixel gains (f₋ − f₊)·δ per unit length. This holds whichever side the
occluding surface is on (if it is on the +n side it recedes and the pixel gains −(f₊ − f₋)·δ,
the same), so no edge orientation is needed.

`EdgeSampling` is an autograd.Function whose forward returns the image unchanged and whose
backward reads grad_image at each sample's pixel and returns gradients for the projected edge
endpoints, weighted (1 − t, t) by where the sample lies on the edge; the projection stays in
autograd, so the gradients reach vertices, K and world_from_camera.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .sampling import uniform


@dataclass(frozen=True)
class EdgeTopology:
    """Unique edges (E, 2) of a triangle mesh and their adjacent faces (E, 2), −1 for a boundary edge."""

    edges: torch.Tensor
    edge_faces: torch.Tensor


_TOPOLOGIES: dict[str, EdgeTopology] = {}  # cache: faces digest → topology (CPU), a few meshes at most


def _topology(faces: torch.Tensor) -> EdgeTopology:
    count = faces.shape[0]
    pairs = torch.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=1).reshape(-1, 2)
    pairs = pairs.sort(dim=1).values
    edges, inverse = torch.unique(pairs, dim=0, return_inverse=True)
    face_of = torch.arange(count).repeat_interleave(3)
    order = torch.argsort(inverse, stable=True)
    sorted_edges = inverse[order]
    first = torch.ones_like(sorted_edges, dtype=torch.bool)
    first[1:] = sorted_edges[1:] != sorted_edges[:-1]
    starts = torch.nonzero(first).squeeze(1)
    counts = torch.diff(torch.cat([starts, torch.tensor([sorted_edges.numel()])]))
    edge_faces = torch.full((edges.shape[0], 2), -1, dtype=torch.int64)
    edge_faces[:, 0] = face_of[order[starts]]
    two = counts >= 2
    edge_faces[two, 1] = face_of[order[starts[two] + 1]]
    return EdgeTopology(edges, edge_faces)


def edge_topology(faces: torch.Tensor) -> EdgeTopology:
    """Edges and edge→face adjacency of `faces` (F, 3), cached by content, on the faces' device.

    A non-manifold edge (more than two faces) keeps its first two faces.
    """
    flat = faces.detach().to("cpu", torch.int64).contiguous()
    key = hashlib.blake2b(flat.numpy().tobytes(), digest_size=16).hexdigest()
    if key not in _TOPOLOGIES:
        if len(_TOPOLOGIES) >= 8:
            _TOPOLOGIES.pop(next(iter(_TOPOLOGIES)))
        _TOPOLOGIES[key] = _topology(flat)
    topo = _TOPOLOGIES[key]
    return EdgeTopology(topo.edges.to(faces.device), topo.edge_faces.to(faces.device))


def silhouette_edges(verts: torch.Tensor, faces: torch.Tensor, topo: EdgeTopology,
                     eye: torch.Tensor) -> torch.Tensor:
    """Indices of the edges that can be visibility discontinuities seen from `eye` (3,): boundary edges
    and edges between a front-facing and a back-facing triangle."""
    with torch.no_grad():
        v = verts.detach()[faces.long()]
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        front = (normal * (eye.detach().to(v.dtype) - v[:, 0])).sum(-1) > 0
        f0, f1 = topo.edge_faces[:, 0], topo.edge_faces[:, 1]
        boundary = f1 < 0
        keep = boundary | (front[f0] != front[f1.clamp_min(0)])
        return torch.nonzero(keep).squeeze(1)


class EdgeSampling(torch.autograd.Function):
    """Identity on the image; the backward adds the edge-sampling gradient for the edge endpoints.

    Inputs: image (H, W, C); p0, p1 (N, 2) screen endpoints of each sample's edge (in autograd);
    t (N,) position of the sample on its edge; normal (N, 2); jump (N, C) = (f₋ − f₊) · ℓ_total / N
    (the radiance jump already divided by the sample density); pixel (N,) flat pixel index, −1 = off
    screen.
    """

    @staticmethod
    def forward(ctx, image: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor,  # type: ignore[override]
                t: torch.Tensor, normal: torch.Tensor, jump: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(t, normal, jump, pixel)
        return image.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        t, normal, jump, pixel = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        on = pixel >= 0
        g = torch.zeros_like(jump)
        g[on] = flat[pixel[on]].to(jump.dtype)
        w = (g * jump).sum(-1)
        grad_p0 = ((w * (1 - t))[:, None] * normal)
        grad_p1 = ((w * t)[:, None] * normal)
        return grad, grad_p0, grad_p1, None, None, None, None


@dataclass
class EdgeSamples:
    """Points sampled on projected silhouette edges (all detached except p0/p1)."""

    p0: torch.Tensor  # (N, 2) in autograd
    p1: torch.Tensor  # (N, 2) in autograd
    t: torch.Tensor  # (N,)
    normal: torch.Tensor  # (N, 2)
    point: torch.Tensor  # (N, 2) screen position
    weight: float  # ℓ_total / N, the inverse sample density per unit length


def sample_edges(screen: torch.Tensor, depth: torch.Tensor, edges: torch.Tensor, count: int,
                 generator: torch.Generator | None) -> EdgeSamples | None:
    """`count` points on the edges (E, 2) of the projected vertices screen (V, 2), stratified along
    their concatenated screen length (so each edge gets samples in proportion to its length).
    Edges with an endpoint behind the camera (depth ≤ 0) are skipped. None when nothing is left."""
    keep = (depth[edges[:, 0]] > 0) & (depth[edges[:, 1]] > 0)
    edges = edges[keep]
    if edges.shape[0] == 0 or count <= 0:
        return None
    p0_all, p1_all = screen[edges[:, 0]], screen[edges[:, 1]]
    with torch.no_grad():
        seg = (p1_all - p0_all).detach()
        length = seg.norm(dim=-1).double()
        cumulative = torch.cumsum(length, 0)
        total = float(cumulative[-1])
        if total <= 0:
            return None
        xi = uniform((count,), generator, screen.device, torch.float64)
        u = (torch.arange(count, dtype=torch.float64, device=screen.device) + xi) * (total / count)
        idx = torch.searchsorted(cumulative, u, right=True).clamp_max(edges.shape[0] - 1)
        start = cumulative[idx] - length[idx]
        t = ((u - start) / length[idx].clamp_min(1e-30)).clamp(0, 1).to(screen.dtype)
        d = seg[idx] / length[idx].clamp_min(1e-30).to(screen.dtype)[:, None]
        normal = torch.stack([-d[:, 1], d[:, 0]], dim=-1)
        point = p0_all.detach()[idx] + t[:, None] * seg[idx]
    return EdgeSamples(p0_all[idx], p1_all[idx], t, normal, point, total / count)


def edge_gradient(image: torch.Tensor, samples: EdgeSamples | None,
                  radiance: Callable[[torch.Tensor], torch.Tensor], eps_px: float) -> torch.Tensor:
    """Attach the edge-sampling gradient to image (H, W, C): radiance(points (N, 2)) → (N, C) is the
    (no-grad) radiance of rays through screen points; returns the image, unchanged in value."""
    if samples is None:
        return image
    height, width = image.shape[:2]
    with torch.no_grad():
        offset = eps_px * samples.normal
        both = radiance(torch.cat([samples.point - offset, samples.point + offset]))
        minus, plus = both.chunk(2)
        jump = (minus - plus) * samples.weight
        x, y = samples.point.unbind(-1)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        pixel = torch.where(inside, y.floor().long().clamp(0, height - 1) * width
                            + x.floor().long().clamp(0, width - 1), torch.full_like(x, -1, dtype=torch.long))
    return EdgeSampling.apply(image, samples.p0, samples.p1, samples.t, samples.normal, jump.to(image.dtype),
                              pixel)
