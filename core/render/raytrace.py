"""Ray queries against a triangle mesh: a Warp BVH for the renderer, a brute-force torch reference for tests.

The renderer needs two bulk queries per iteration — closest hits for primary rays and any-hits
for shadow rays — over hundreds of thousands of rays. NVIDIA Warp's `wp.Mesh` gives a BVH with
watertight ray/triangle tests that runs the same kernels on CPU and CUDA, reads torch tensors
zero-copy, and can be refitted in place when the optimiser moves the vertices. Queries here are
not differentiable: they only decide *which* triangle a ray sees; the renderer recomputes the
intersection in torch from that face id so gradients reach vertices and camera.

Barycentric convention (shared with core.render): a hit at face f with bary (b1, b2) is the point
(1 − b1 − b2)·v0 + b1·v1 + b2·v2 of the face's vertices (v0, v1, v2) = verts[faces[f]].

On CPU a Warp launch runs on one thread; large launches are split into contiguous slices that
run concurrently on `torch.get_num_threads()` threads (Warp releases the GIL while a CPU kernel
runs).
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from ..common.quiet import native_stderr_silenced

log = logging.getLogger(__name__)

_NO_HIT_T = 1.0e30
_MIN_SLICE = 16384  # rays per CPU thread below which splitting a launch costs more than it saves


@lru_cache(maxsize=1)
def warp_runtime() -> Any:
    """Import and initialise Warp once, quietly, and define the kernels (compiled lazily, cached on disk)."""
    with native_stderr_silenced():  # the native library's CUDA probe prints a warning on machines without CUDA
        import warp as wp  # heavy (and absent until installed): loaded at the first ray query

        wp.config.quiet = True
        wp.config.log_level = wp.LOG_WARNING
        wp.init()
    log.debug("Warp %s initialised, devices %s", wp.__version__, [str(d) for d in wp.get_devices()])

    @wp.kernel
    def closest_hit(mesh: wp.uint64, origins: wp.array(dtype=wp.vec3), dirs: wp.array(dtype=wp.vec3),
                    t_max: wp.array(dtype=wp.float32), offset: wp.int32, face: wp.array(dtype=wp.int32),
                    t: wp.array(dtype=wp.float32), bary: wp.array(dtype=wp.vec2)):
        i = wp.tid() + offset
        q = wp.mesh_query_ray(mesh, origins[i], dirs[i], t_max[i])
        if q.result:
            face[i] = q.face
            t[i] = q.t
            # Warp's (u, v) weight vertices 0 and 1; ours weight vertices 1 and 2.
            bary[i] = wp.vec2(q.v, 1.0 - q.u - q.v)
        else:
            face[i] = -1
            t[i] = 1.0e30
            bary[i] = wp.vec2(0.0, 0.0)

    @wp.kernel
    def any_hit(mesh: wp.uint64, origins: wp.array(dtype=wp.vec3), dirs: wp.array(dtype=wp.vec3),
                t_max: wp.array(dtype=wp.float32), offset: wp.int32, blocked: wp.array(dtype=wp.uint8)):
        i = wp.tid() + offset
        blocked[i] = wp.uint8(wp.where(wp.mesh_query_ray_anyhit(mesh, origins[i], dirs[i], t_max[i]), 1, 0))

    @wp.kernel
    def segments_blocked(mesh: wp.uint64, starts: wp.array(dtype=wp.vec3), normals: wp.array(dtype=wp.vec3),
                         ends: wp.array(dtype=wp.vec3), shading: wp.array(dtype=wp.vec3),
                         emitters: wp.array(dtype=wp.vec3), cull: wp.int32, per_start: wp.int32, eps: wp.float32,
                         offset: wp.int32, blocked: wp.array(dtype=wp.uint8)):
        i = wp.tid() + offset
        k = i / per_start
        n = normals[k]
        d = ends[i] - starts[k]
        if cull != 0:
            # no light can travel this segment: below the surface or behind a one-sided emitter
            if wp.dot(n, d) <= 0.0 or wp.dot(shading[k], d) <= 0.0 or wp.dot(emitters[i % per_start], d) >= 0.0:
                blocked[i] = wp.uint8(2)
                return
        side = wp.where(wp.dot(n, d) >= 0.0, 1.0, -1.0)
        o = starts[k] + (side * eps) * n
        d = ends[i] - o
        length = wp.length(d)
        hit = False
        if length > 2.0 * eps:
            hit = wp.mesh_query_ray_anyhit(mesh, o, d / length, length - eps)
        blocked[i] = wp.uint8(wp.where(hit, 1, 0))

    return wp, {"closest_hit": closest_hit, "any_hit": any_hit, "segments_blocked": segments_blocked}


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facestage-bvh")


def torch_stream(device: str) -> AbstractContextManager[Any]:
    """Run Warp work on torch's current CUDA stream, so it is ordered with the torch kernels that
    produce and consume the zero-copy arrays (no-op on CPU)."""
    if not device.startswith("cuda"):
        return nullcontext()
    wp, _ = warp_runtime()
    return wp.ScopedStream(wp.stream_from_torch(torch.cuda.current_stream(torch.device(device))))


def launch(kernel: Any, dim: int, inputs: list[Any], outputs: list[Any], device: str,
           adj_inputs: list[Any] | None = None, adj_outputs: list[Any] | None = None,
           private: tuple[int, ...] = ()) -> None:
    """wp.launch (or its adjoint when adj_* are given), split across CPU threads for large CPU launches.

    The kernel's last input is an `offset` added to wp.tid(). Warp's CPU "atomics" are plain adds (a
    CPU launch is serial), so adjoint arrays that several threads accumulate into — the indices in
    `private` of adj_inputs — get a zeroed copy per extra CPU thread, summed in afterwards.
    """
    wp, _ = warp_runtime()
    workers = min(torch.get_num_threads(), dim // _MIN_SLICE) if device == "cpu" else 1
    adjoint = adj_inputs is not None

    def run(lo: int, hi: int, adj: list[Any] | None) -> None:
        extra = dict(adj_inputs=[*adj, 0], adj_outputs=adj_outputs, adjoint=True) if adjoint else {}
        wp.launch(kernel, dim=hi - lo, inputs=[*inputs, lo], outputs=outputs, device=device, **extra)

    if workers <= 1:
        with torch_stream(device):
            run(0, dim, adj_inputs)
        return
    bounds = [dim * k // workers for k in range(workers + 1)]
    per_worker = [adj_inputs]
    for _ in range(1, workers):
        per_worker.append(None if adj_inputs is None else
                          [wp.zeros_like(a) if j in private else a for j, a in enumerate(adj_inputs)])
    jobs = [_pool(workers).submit(run, lo, hi, adj) for lo, hi, adj in zip(bounds[:-1], bounds[1:], per_worker)]
    for job in jobs:
        job.result()
    for adj in per_worker[1:]:
        for j in private:
            wp.to_torch(adj_inputs[j]).add_(wp.to_torch(adj[j]))


def wp_device(t: torch.Tensor) -> str:
    return "cpu" if t.device.type == "cpu" else f"cuda:{t.device.index or 0}"


@dataclass
class Hits:
    """Closest hits of N rays: hit (N,) bool, face (N,) long (−1 = miss), t (N,) distance along the
    unit direction (inf = miss), bary (N, 2) weights of the face's vertices 1 and 2."""

    hit: torch.Tensor
    face: torch.Tensor
    t: torch.Tensor
    bary: torch.Tensor

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.hit, self.face, self.t, self.bary))


class Bvh:
    """A Warp BVH over a triangle mesh (verts (V, 3), faces (F, 3)) on the vertices' device.

    The BVH owns a float32 copy of the vertices (Warp reads it zero-copy); `refit` overwrites it
    and refits the tree in place, which is much cheaper than a rebuild and keeps kernels cached.
    Directions passed to the queries are normalised here, so t and t_max are distances.
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor) -> None:
        wp, _ = warp_runtime()
        self.device = verts.device
        self._wp_device = wp_device(verts)
        self._points = verts.detach().to(torch.float32).contiguous().clone()
        self._indices = faces.detach().to(device=self.device, dtype=torch.int32).reshape(-1).contiguous()
        self.num_faces = int(faces.shape[0])
        with torch_stream(self._wp_device):
            self.mesh = wp.Mesh(points=wp.from_torch(self._points, dtype=wp.vec3),
                                indices=wp.from_torch(self._indices, dtype=wp.int32))

    @property
    def verts(self) -> torch.Tensor:
        """The vertices the tree was last built or refitted with (float32, read-only by convention)."""
        return self._points

    def refit(self, verts: torch.Tensor) -> None:
        """Move the vertices (same count) and refit the tree in place."""
        if verts.shape != self._points.shape:
            raise ValueError(f"refit needs {tuple(self._points.shape)} vertices, got {tuple(verts.shape)}")
        self._points.copy_(verts.detach())
        with torch_stream(self._wp_device):
            self.mesh.refit()

    def _rays(self, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dirs = dirs.detach().to(device=self.device, dtype=torch.float32).reshape(-1, 3)
        origins = origins.detach().to(device=self.device, dtype=torch.float32).expand(dirs.shape[0], 3)
        dirs = torch.nn.functional.normalize(dirs, dim=-1)
        return origins.contiguous(), dirs.contiguous()

    def _t_max(self, t_max: float | torch.Tensor, n: int) -> torch.Tensor:
        if isinstance(t_max, torch.Tensor):
            return t_max.detach().to(device=self.device, dtype=torch.float32).expand(n).contiguous()
        value = _NO_HIT_T if math.isinf(t_max) else float(t_max)
        return torch.full((n,), value, dtype=torch.float32, device=self.device)

    def intersect(self, origins: torch.Tensor, dirs: torch.Tensor, t_max: float | torch.Tensor = math.inf) -> Hits:
        """Closest hit of each ray (origins (N, 3) or (3,), dirs (N, 3)) within t_max (scalar or (N,))."""
        wp, kernels = warp_runtime()
        origins, dirs = self._rays(origins, dirs)
        n = dirs.shape[0]
        face = torch.empty(n, dtype=torch.int32, device=self.device)
        t = torch.empty(n, dtype=torch.float32, device=self.device)
        bary = torch.empty(n, 2, dtype=torch.float32, device=self.device)
        if n:
            launch(kernels["closest_hit"], n,
                    [self.mesh.id, wp.from_torch(origins, dtype=wp.vec3), wp.from_torch(dirs, dtype=wp.vec3),
                     wp.from_torch(self._t_max(t_max, n))],
                    [wp.from_torch(face), wp.from_torch(t), wp.from_torch(bary, dtype=wp.vec2)], self._wp_device)
        hit = face >= 0
        return Hits(hit, face.long(), torch.where(hit, t, torch.full_like(t, math.inf)), bary)

    def occluded(self, origins: torch.Tensor, dirs: torch.Tensor, t_max: float | torch.Tensor) -> torch.Tensor:
        """Whether anything lies on each ray before t_max → bool (N,). Offset the origins off the surface
        first (see `segments_occluded`, which does that for you)."""
        wp, kernels = warp_runtime()
        origins, dirs = self._rays(origins, dirs)
        n = dirs.shape[0]
        blocked = torch.empty(n, dtype=torch.uint8, device=self.device)
        if n:
            launch(kernels["any_hit"], n,
                    [self.mesh.id, wp.from_torch(origins, dtype=wp.vec3), wp.from_torch(dirs, dtype=wp.vec3),
                     wp.from_torch(self._t_max(t_max, n))],
                    [wp.from_torch(blocked)], self._wp_device)
        return blocked.bool()

    def segments_occluded(self, starts: torch.Tensor, normals: torch.Tensor, ends: torch.Tensor,
                          eps: float = 1.0e-4, cull: tuple[torch.Tensor, torch.Tensor] | None = None,
                          codes: bool = False) -> torch.Tensor:
        """Shadow rays from surface points to targets: starts (M, 3) with geometric normals (M, 3),
        ends (M, K, 3) → bool (M, K), True where the open segment is blocked.

        Each ray starts eps off the surface on the side the target lies (along ±normal, so neither the
        start's own triangle nor its neighbours self-hit) and stops eps before the target.
        With cull = (shading normals (M, 3), emitter normals (K, 3)), segments that cannot carry light
        — target below the start's geometric or shading tangent plane, or start behind the target's
        one-sided emitter (the emitter normal points the way light leaves it) — are reported blocked
        without being traced. With codes=True the result is uint8 (M, K) instead: 0 visible,
        1 occluded, 2 culled.
        """
        wp, kernels = warp_runtime()
        m, k = ends.shape[0], ends.shape[1]
        prep = dict(device=self.device, dtype=torch.float32)
        starts = starts.detach().to(**prep).contiguous()
        normals = normals.detach().to(**prep).contiguous()
        ends = ends.detach().to(**prep).reshape(m * k, 3).contiguous()
        shading, emitters = (normals, normals[:1]) if cull is None else (
            cull[0].detach().to(**prep).contiguous(), cull[1].detach().to(**prep).contiguous())
        blocked = torch.empty(m * k, dtype=torch.uint8, device=self.device)
        if m * k:
            launch(kernels["segments_blocked"], m * k,
                   [self.mesh.id, wp.from_torch(starts, dtype=wp.vec3), wp.from_torch(normals, dtype=wp.vec3),
                    wp.from_torch(ends, dtype=wp.vec3), wp.from_torch(shading, dtype=wp.vec3),
                    wp.from_torch(emitters, dtype=wp.vec3), int(cull is not None), k, float(eps)],
                   [wp.from_torch(blocked)], self._wp_device)
        return blocked.view(m, k) if codes else blocked.view(m, k).bool()


def reference_intersect(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                        t_max: float = math.inf, chunk: int = 1024) -> Hits:
    """Brute-force Möller–Trumbore over every (ray, face) pair in float64 — for tests only."""
    v = verts.detach().double()[faces.long()]
    v0, e1, e2 = v[:, 0], v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    dirs = torch.nn.functional.normalize(dirs.detach().double().reshape(-1, 3), dim=-1)
    origins = origins.detach().double().expand(dirs.shape[0], 3)
    out_face, out_t, out_bary = [], [], []
    for lo in range(0, dirs.shape[0], chunk):
        o, d = origins[lo:lo + chunk, None], dirs[lo:lo + chunk, None]
        p = torch.cross(d.expand(-1, e2.shape[0], 3), e2.expand(d.shape[0], -1, 3), dim=-1)
        det = (e1 * p).sum(-1)
        inv = 1.0 / torch.where(det.abs() > 1e-300, det, torch.full_like(det, 1e-300))
        s = o - v0
        b1 = (s * p).sum(-1) * inv
        q = torch.cross(s, e1.expand_as(s), dim=-1)
        b2 = (d * q).sum(-1) * inv
        t = (e2 * q).sum(-1) * inv
        valid = (det.abs() > 1e-300) & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t >= 0) & (t < t_max)
        t = torch.where(valid, t, torch.full_like(t, math.inf))
        best_t, best = t.min(dim=1)
        rows = torch.arange(best.shape[0])
        out_face.append(torch.where(torch.isfinite(best_t), best, torch.full_like(best, -1)))
        out_t.append(best_t)
        out_bary.append(torch.stack([b1[rows, best], b2[rows, best]], dim=-1))
    face = torch.cat(out_face)
    hit = face >= 0
    bary = torch.where(hit[:, None], torch.cat(out_bary), torch.zeros(1, dtype=torch.float64))
    return Hits(hit, face, torch.cat(out_t), bary)
