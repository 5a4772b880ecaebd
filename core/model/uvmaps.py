"""Texture-space machinery for the per-texel maps of stage 2.

Stage 2 optimises images in the head model's UV layout, so it needs to know,
for each texel, which surface point it covers (to turn per-vertex quantities
into textures), which texel is its left/right mirror (symmetry prior), and
how to fill texels the photo never saw (back of the head, the far cheek) and
the gutter between UV islands (so bilinear lookups at seams never hit black).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage


@dataclass(frozen=True)
class UvRaster:
    """Per-texel surface point: face id (-1 outside every triangle) and barycentrics; row 0 = top (v = 1)."""

    face: np.ndarray  # (S, S) int64
    bary: np.ndarray  # (S, S, 3) float32

    @property
    def inside(self) -> np.ndarray:
        return self.face >= 0


def rasterize_uv(uvs: np.ndarray, face_uvs: np.ndarray, size: int) -> UvRaster:
    """Scan-convert every UV triangle at texel centres (conventions.md texel mapping)."""
    face_ids = np.full((size, size), -1, np.int64)
    bary = np.zeros((size, size, 3), np.float32)
    corners = uvs[face_uvs].astype(np.float64)  # (F, 3, 2)
    px = np.stack([corners[..., 0] * size - 0.5, (1.0 - corners[..., 1]) * size - 0.5], -1)
    lo = np.clip(np.floor(px.min(1)).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(px.max(1)).astype(int), 0, size - 1)
    for f in range(len(face_uvs)):
        (x0, y0), (x1, y1) = lo[f], hi[f]
        ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        a, b, c = px[f]
        det = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        if abs(det) < 1e-12:
            continue
        w1 = ((xs - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (ys - a[1])) / det
        w2 = ((b[0] - a[0]) * (ys - a[1]) - (xs - a[0]) * (b[1] - a[1])) / det
        w0 = 1.0 - w1 - w2
        hit = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        face_ids[ys[hit], xs[hit]] = f
        bary[ys[hit], xs[hit]] = np.stack([w0[hit], w1[hit], w2[hit]], -1)
    return UvRaster(face=face_ids, bary=bary)


def vertex_to_texture(values: torch.Tensor, faces: torch.Tensor, raster: UvRaster) -> torch.Tensor:
    """Interpolate per-vertex values (V, C) to an (S, S, C) texture; outside texels get 0."""
    inside = torch.from_numpy(raster.inside).to(values.device)
    face = torch.from_numpy(np.maximum(raster.face, 0)).to(values.device)
    bary = torch.from_numpy(raster.bary).to(values.device, values.dtype)
    corner_values = values[faces[face]]  # (S, S, 3, C)
    return (corner_values * bary[..., None]).sum(-2) * inside[..., None]


def mirror_uv(raster: UvRaster, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, symmetry: np.ndarray) -> np.ndarray:
    """UV (S, S, 2) of each texel's mirror point; NaN where the mirror face does not exist or outside."""
    key = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    mirror_face = np.array([key.get(tuple(sorted(symmetry[f].tolist())), -1) for f in faces], np.int64)
    size = raster.face.shape[0]
    out = np.full((size, size, 2), np.nan, np.float32)
    ys, xs = np.nonzero(raster.inside)
    src = raster.face[ys, xs]
    dst = mirror_face[src]
    ok = dst >= 0
    ys, xs, src, dst = ys[ok], xs[ok], src[ok], dst[ok]
    # Corner k of the source face maps to the corner of the mirror face holding symmetry[vertex k].
    mirrored_vertices = symmetry[faces[src]]  # (N, 3)
    position = np.argmax(faces[dst][:, None, :] == mirrored_vertices[:, :, None], axis=2)  # (N, 3)
    corner_uv = uvs[face_uvs[dst[:, None], position]]  # (N, 3, 2)
    out[ys, xs] = (corner_uv * raster.bary[ys, xs][..., None]).sum(1)
    return out


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of (S, S, C) at UV (..., 2): x = u·S − 0.5, y = (1 − v)·S − 0.5, clamped to the border.

    The same as grid_sample(align_corners=False, padding_mode="border"), written as four gathers because
    grid_sample's CUDA backward adds with atomics in no fixed order (results vary run to run), while a
    gather's backward is deterministic under torch's deterministic mode (core.common.device.deterministic).
    """
    h, w, channels = texture.shape
    x = (uv[..., 0] * w - 0.5).clamp(0, w - 1).to(texture.dtype)
    y = ((1 - uv[..., 1]) * h - 0.5).clamp(0, h - 1).to(texture.dtype)
    x0 = x.detach().floor().clamp(max=max(w - 2, 0))
    y0 = y.detach().floor().clamp(max=max(h - 2, 0))
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0i, y0i = x0.long(), y0.long()
    x1i, y1i = (x0i + 1).clamp(max=w - 1), (y0i + 1).clamp(max=h - 1)
    flat = texture.reshape(-1, channels)

    def at(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, (yi * w + xi).reshape(-1)).reshape(*uv.shape[:-1], channels)

    return ((1 - fy) * ((1 - fx) * at(y0i, x0i) + fx * at(y0i, x1i))
            + fy * ((1 - fx) * at(y1i, x0i) + fx * at(y1i, x1i)))


class MirrorPairs:
    """Each texel with a mirror and its mirror point, for the symmetry prior of stage 2.

    The layout is mirror-symmetric for almost every texel (98.9 % at 512²), so the mirror of most texels is the
    same texel of the map flipped left/right; only the rest needs a bilinear lookup. Looking up every texel took
    a fifth of stage 2's time; a flip is free. `mirror` is mirror_uv's (S, S, 2), NaN where a texel has none.
    """

    FLIP_TOLERANCE = 0.1  # texels: a mirror point this close to the flipped texel's centre is that texel

    def __init__(self, mirror: torch.Tensor) -> None:
        size = mirror.shape[0]
        has = ~torch.isnan(mirror[..., 0])
        x = mirror[..., 0] * size - 0.5
        y = (1 - mirror[..., 1]) * size - 0.5
        index = torch.arange(size, device=mirror.device, dtype=mirror.dtype)
        near = ((x - (size - 1 - index)[None, :]).abs() < self.FLIP_TOLERANCE) & ((y - index[:, None]).abs() < self.FLIP_TOLERANCE)
        self.flip = has & near
        self.rest = has & ~near
        self.rest_uv = mirror[self.rest]

    def squared_difference(self, texture: torch.Tensor) -> torch.Tensor:
        """(N,) ‖t − t(mirror)‖² over the N texels that have a mirror; texture (S, S, C)."""
        flipped = ((texture - texture.flip(1)) ** 2).sum(-1)[self.flip]
        looked_up = ((texture[self.rest] - sample_texture(texture, self.rest_uv)) ** 2).sum(-1)
        return torch.cat([flipped, looked_up])


def dilate_into_gutter(texture: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy each invalid texel from its nearest valid one (seam-safe textures for Blender)."""
    if valid.all() or not valid.any():
        return texture
    _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return texture[iy, ix]

