"""Real spherical harmonics for the ambient light: closed-form basis, rotation, irradiance, equirect.

The optimiser evaluates the SH environment at every shaded point and every step, so the basis is
a precomputed polynomial table (exact rationals, built once at import) applied to monomials of
the direction, not a Legendre recursion per call. Rotation lets the user turn a fitted environment
without re-fitting; the equirect helpers bake it into the Blender World with the exact mapping of
Blender's Environment Texture node.

Conventions: real orthonormal SH without the Condon-Shortley phase (Y_1,-1 ∝ y, Y_1,0 ∝ z,
Y_1,1 ∝ x), index k = l² + l + m, `bands` L → L² coefficients. Coefficients describe radiance
L(ω) = Σ c_k Y_k(ω) for world directions ω pointing away from the scene.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from ..common.errors import FaceStageError

MAX_BANDS = 9
Y00 = 0.5 / math.sqrt(math.pi)  # the constant l = 0 basis function, 1/(2√π)
DEFAULT_BANDS = 3


def _legendre_derivative(l: int, m: int) -> list[Fraction]:
    """Coefficients (by power of z) of d^m/dz^m P_l(z), exactly."""
    coeffs = [Fraction(0)] * (l + 1)
    for k in range(l // 2 + 1):
        coeffs[l - 2 * k] = Fraction((-1) ** k * math.comb(l, k) * math.comb(2 * l - 2 * k, l), 2**l)
    for _ in range(m):
        coeffs = [coeffs[j + 1] * (j + 1) for j in range(len(coeffs) - 1)]
    return coeffs


def _build_poly_table() -> np.ndarray:
    """poly[m, l, j]: coefficient of z^j in the normalised z-part of Y_l,±m (times Re/Im (x+iy)^m)."""
    table = np.zeros((MAX_BANDS, MAX_BANDS, MAX_BANDS))
    for l in range(MAX_BANDS):
        for m in range(l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            norm *= math.sqrt(2.0) if m else 1.0
            for j, c in enumerate(_legendre_derivative(l, m)):
                table[m, l, j] = float(c) * norm
    return table


_POLY = _build_poly_table()


def _check_bands(bands: int) -> None:
    if not 1 <= bands <= MAX_BANDS:
        raise FaceStageError(f"Spherical-harmonic bands must be between 1 and {MAX_BANDS}, not {bands}.")


def bands_from_size(n: int) -> int:
    """Number of bands L for n = L² coefficients."""
    bands = math.isqrt(n)
    if bands * bands != n:
        raise FaceStageError(f"{n} spherical-harmonic coefficients is not a square number of bands.")
    _check_bands(bands)
    return bands


@lru_cache(maxsize=64)
def _tables(bands: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """z_table[j, k]: the z-polynomial of coefficient k; xy_index[k]: its factor among interleaved
    Re, Im of (x + iy)^m, so that Y_k = (z^j @ z_table)[k] · xy[xy_index[k]]."""
    n = bands * bands
    z_table = np.zeros((bands, n))
    xy_index = np.zeros(n, dtype=np.int64)
    for l in range(bands):
        for m in range(-l, l + 1):
            z_table[:, l * l + l + m] = _POLY[abs(m), l, :bands]
            xy_index[l * l + l + m] = 2 * abs(m) + (m < 0)
    return torch.as_tensor(z_table, dtype=dtype, device=device), torch.as_tensor(xy_index, device=device)


def _monomials(flat: torch.Tensor, bands: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """z^j and (Re, Im) of (x + iy)^m for j, m < L, stacked along dim: all the closed form needs.

    dim = 0 gives (L, N) and (L, N, 2); dim = -1 gives (N, L) and (N, L, 2).
    """
    x, y, z = flat.unbind(-1)
    xy = torch.complex(x, y)
    z_pow, xy_pow = [torch.ones_like(z), z], [torch.ones_like(xy), xy]
    for _ in range(2, bands):
        z_pow.append(z_pow[-1] * z)
        xy_pow.append(xy_pow[-1] * xy)
    return torch.stack(z_pow[:bands], dim), torch.view_as_real(torch.stack(xy_pow[:bands], dim))


def _working(t: torch.Tensor) -> torch.Tensor:
    """Complex powers need float32/float64; half precision is computed in float32."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


_CPU_CHUNK = 8192


def _chunk_size(flat: torch.Tensor) -> int:
    """Directions per block: cache-sized on CPU, where fresh large buffers cost more than the
    arithmetic (page faults), and all at once on GPUs, where kernel launches are what costs."""
    return _CPU_CHUNK if flat.device.type == "cpu" else max(flat.shape[0], 1)


def sh_basis(dirs: torch.Tensor, bands: int) -> torch.Tensor:
    """Y_k(dirs) for unit dirs (..., 3) → (..., bands²), differentiable in dirs.

    One small matmul of the z-monomials with the polynomial table, times the matching
    Re/Im (x + iy)^m. Without autograd this runs block by block on CPU straight into the output,
    so the only large allocation is the result. The gradient is that of the polynomial extension
    off the sphere: normalise upstream so only its tangential part counts. To shade with
    gradients, sh_eval is cheaper: it never stores the (..., n) basis for backward.
    """
    _check_bands(bands)
    shape, n = dirs.shape[:-1], bands * bands
    flat = _working(dirs).reshape(-1, 3)
    z_table, xy_index = _tables(bands, flat.dtype, flat.device)
    if torch.is_grad_enabled() and dirs.requires_grad:
        z_pow, xy = _monomials(flat, bands, -1)
        return ((z_pow @ z_table) * xy.flatten(1)[:, xy_index]).reshape(*shape, n).to(dirs.dtype)
    count, chunk = flat.shape[0], _chunk_size(flat)
    basis = flat.new_empty(count, n)
    xy_part = flat.new_empty(min(count, chunk), n)
    for start in range(0, count, chunk):
        z_pow, xy = _monomials(flat[start : start + chunk], bands, -1)
        block = basis[start : start + z_pow.shape[0]]
        torch.mm(z_pow, z_table, out=block)
        block.mul_(torch.index_select(xy.flatten(1), 1, xy_index, out=xy_part[: z_pow.shape[0]]))
    return basis.reshape(*shape, n).to(dirs.dtype)


def sh_eval(dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Σ_k coeffs[c, k] Y_k(dirs) → (..., C) without building the (..., n) basis (the shading hot path).

    The coefficients are first folded into one z-polynomial per channel and Re/Im (x + iy)^m
    factor, so each block of directions costs one (2L·C, L) matmul and one weighted sum, and
    autograd keeps only block-sized intermediates.
    """
    bands = bands_from_size(coeffs.shape[-1])
    shape, channels = dirs.shape[:-1], coeffs.shape[0]
    flat = _working(dirs).reshape(-1, 3)
    z_table, xy_index = _tables(bands, flat.dtype, flat.device)
    per_coeff = z_table.T[:, None, :] * coeffs.T.to(flat.dtype)[:, :, None]  # (n, C, L)
    weights = per_coeff.new_zeros(2 * bands, channels, bands).index_add(0, xy_index, per_coeff)
    values, chunk = [], _chunk_size(flat)
    for start in range(0, flat.shape[0], chunk):
        z_pow, xy = _monomials(flat[start : start + chunk], bands, 0)
        parts = (weights.view(-1, bands) @ z_pow).view(2 * bands, channels, -1)
        values.append((parts * xy.permute(0, 2, 1).reshape(2 * bands, 1, -1)).sum(0).T)
    value = torch.cat(values) if values else flat.new_zeros(0, channels)
    return value.reshape(*shape, channels).to(dirs.dtype)


@lru_cache(maxsize=16)
def _rotation_plan(l: int) -> tuple[np.ndarray, ...]:
    """Ivanic-Ruedenberg (1996, erratum 1998) row selections and weights for band l from band l-1.

    Rows index a + l + 1 of the P(i, a, b) matrices padded to a ∈ [-l-1, l+1]; the returned
    weights fold u, v, w and the V/W combination signs into (2l+1, 2l+1) arrays per term.
    """
    ms = np.arange(-l, l + 1)
    ns = np.arange(-l, l + 1)
    mm, nn = np.meshgrid(ms, ns, indexing="ij")
    d = (mm == 0).astype(float)
    denom = np.where(np.abs(nn) == l, 2.0 * l * (2 * l - 1), (l + nn) * (l - nn))
    u = np.sqrt((l + mm) * (l - mm) / denom)
    v = 0.5 * np.sqrt((1 + d) * (l + np.abs(mm) - 1) * (l + np.abs(mm)) / denom) * (1 - 2 * d)
    w = -0.5 * np.sqrt(np.maximum((l - np.abs(mm) - 1) * (l - np.abs(mm)), 0) / denom) * (1 - d)
    one = (np.abs(ms) == 1).astype(float)
    v1_row = np.where(ms == 0, 1, np.where(ms > 0, ms - 1, ms + 1))
    v1_w = np.where(ms == 0, 1.0, np.where(ms > 0, np.sqrt(1 + one), 1 - one))
    v2_row = np.where(ms == 0, -1, np.where(ms > 0, -ms + 1, -ms - 1))
    v2_w = np.where(ms == 0, 1.0, np.where(ms > 0, -(1 - one), np.sqrt(1 + one)))
    w1_row = np.where(ms > 0, ms + 1, ms - 1)
    w2_row = np.where(ms > 0, -ms - 1, -ms + 1)
    w2_w = np.where(ms > 0, 1.0, -1.0)
    rows = [r + l + 1 for r in (ms, v1_row, v2_row, w1_row, w2_row)]
    weights = [u, v * v1_w[:, None], v * v2_w[:, None], w, w * w2_w[:, None]]
    return (*rows, *weights)


def _rotate_band(r1: torch.Tensor, prev: torch.Tensor, l: int) -> torch.Tensor:
    """Band-l rotation block from the band-1 block r1 and the band-(l-1) block prev."""

    def p_matrix(i: int) -> torch.Tensor:
        # P(i, a, b) for a ∈ [-l+1, l-1] (rows), b ∈ [-l, l] (columns), zero-padded to a ∈ [-l-1, l+1].
        lo = r1[i, 2] * prev[:, :1] + r1[i, 0] * prev[:, -1:]
        hi = r1[i, 2] * prev[:, -1:] - r1[i, 0] * prev[:, :1]
        body = torch.cat([lo, r1[i, 1] * prev, hi], dim=1)
        return torch.nn.functional.pad(body, (0, 0, 2, 2))

    u_row, v1_row, v2_row, w1_row, w2_row, u, v1, v2, w1, w2 = (
        torch.as_tensor(a, device=r1.device, dtype=r1.dtype if a.dtype == np.float64 else torch.long)
        for a in _rotation_plan(l)
    )
    p_minus, p_zero, p_plus = p_matrix(0), p_matrix(1), p_matrix(2)
    return (u * p_zero[u_row] + v1 * p_plus[v1_row] + v2 * p_minus[v2_row]
            + w1 * p_plus[w1_row] + w2 * p_minus[w2_row])


def sh_rotation(R: torch.Tensor, bands: int) -> torch.Tensor:
    """Block-diagonal (n, n) D with Y(R ω) = D Y(ω) for a proper rotation R (3, 3); differentiable in R."""
    _check_bands(bands)
    blocks = [R.new_ones(1, 1)]
    if bands > 1:
        order = [1, 2, 0]  # band 1 is (y, z, x)
        blocks.append(R[order][:, order])
    for l in range(2, bands):
        blocks.append(_rotate_band(blocks[1], blocks[-1], l))
    return torch.block_diag(*blocks)


def rotate_sh(coeffs: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Coefficients (..., n) of the environment turned by R: L'(ω) = L(Rᵀ ω)."""
    D = sh_rotation(R.to(coeffs.dtype), bands_from_size(coeffs.shape[-1]))
    return coeffs @ D.T


def irradiance_kernel(bands: int) -> list[float]:
    """Ramamoorthi-Hanrahan clamped-cosine convolution weights A_l, l < bands."""
    kernel = []
    for l in range(bands):
        if l == 0:
            kernel.append(math.pi)
        elif l == 1:
            kernel.append(2 * math.pi / 3)
        elif l % 2:
            kernel.append(0.0)
        else:
            half = l // 2
            kernel.append(2 * math.pi * (-1) ** (half - 1) / ((l + 2) * (l - 1))
                          * math.factorial(l) / (2**l * math.factorial(half) ** 2))
    return kernel


def irradiance_coeffs(coeffs: torch.Tensor) -> torch.Tensor:
    """Radiance coefficients (..., n) → irradiance coefficients: E(n) = sh_basis(n) · result."""
    bands = bands_from_size(coeffs.shape[-1])
    scale = torch.tensor([a for l, a in enumerate(irradiance_kernel(bands)) for _ in range(2 * l + 1)],
                         dtype=coeffs.dtype, device=coeffs.device)
    return coeffs * scale


def irradiance(normals: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Irradiance E (..., C) at unit normals (..., 3) under the environment coeffs (C, n)."""
    return sh_eval(normals, irradiance_coeffs(coeffs))


def equirect_uv(dirs: torch.Tensor) -> torch.Tensor:
    """Blender Environment Texture (equirectangular) uv (..., 2) of directions (..., 3).

    Cycles' direction_to_equirectangular: u = 0.5 - atan2(y, x) / 2π, v = 0.5 + elevation / π,
    so the image centre looks along +X, u = 0.25 along +Y, and v = 1 (row 0) is +Z.
    """
    x, y, z = dirs.unbind(-1)
    u = 0.5 - torch.atan2(y, x) / (2 * math.pi)
    v = torch.atan2(z, torch.hypot(x, y)) / math.pi + 0.5
    return torch.stack([u, v], dim=-1)


def equirect_directions(height: int, width: int | None = None, *, dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Unit directions (H, W, 3) at the pixel centres of an equirect image; row 0 = top (v = 1), W = 2H by default."""
    width = 2 * height if width is None else width
    u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    theta = (torch.arange(height, dtype=torch.float64) + 0.5) * (math.pi / height)  # from +Z
    phi = math.pi - 2 * math.pi * u
    dirs = torch.stack(torch.broadcast_tensors(
        theta.sin()[:, None] * phi.cos(), theta.sin()[:, None] * phi.sin(), theta.cos()[:, None]), dim=-1)
    return dirs.to(dtype=dtype, device=device)


def sh_to_equirect(coeffs: torch.Tensor, height: int) -> torch.Tensor:
    """Equirect image (H, 2H, C) of the environment coeffs (C, n), row 0 = top."""
    return sh_eval(equirect_directions(height, dtype=coeffs.dtype, device=coeffs.device), coeffs)


def equirect_to_sh(image: torch.Tensor, bands: int) -> torch.Tensor:
    """Project an equirect image (H, W, C), row 0 = top, onto `bands` of SH → (C, n).

    Pixels are weighted by their solid angle, with the row weights of Fejér's first rule (≈ sin θ
    Δθ, but exact in cos θ up to degree H - 1 on these pixel-centre rows), so a band-limited image
    projects back to its coefficients to rounding error.
    """
    _check_bands(bands)
    height, width = image.shape[:2]
    theta = (torch.arange(height, dtype=torch.float64) + 0.5) * (math.pi / height)
    j = torch.arange(1, height // 2 + 1, dtype=torch.float64)
    fejer = 2 / height * (1 - 2 * (torch.cos(2 * j * theta[:, None]) / (4 * j * j - 1)).sum(-1))
    solid_angle = fejer * (2 * math.pi / width)
    basis = sh_basis(equirect_directions(height, width, dtype=image.dtype, device=image.device), bands)
    return torch.einsum("hwn,hwc,h->cn", basis, image, solid_angle.to(image.dtype).to(image.device))
