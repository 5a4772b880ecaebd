"""Baseline real SH basis by Green-style associated-Legendre recursion, the way most face-capture code does it.

It exists only so bench/sh.py has an honest comparison for core.model.sh's closed form: per (l, m) it
converts to (theta, phi), runs the P_l^m recursion of Green's "Spherical Harmonic Lighting: The
Gritty Details" with whole-tensor ops, and multiplies by the normalisation and cos/sin(m phi).
The Condon-Shortley phase is left out so the signs match core.model.sh.
"""

from __future__ import annotations

import math

import torch


def legendre(l: int, m: int, x: torch.Tensor) -> torch.Tensor:
    """P_l^m(x) without the Condon-Shortley phase, by Green's upward recursion in l."""
    pmm = torch.ones_like(x)
    if m > 0:
        somx2 = torch.sqrt((1.0 - x) * (1.0 + x))
        fact = 1.0
        for _ in range(m):
            pmm = pmm * fact * somx2
            fact += 2.0
    if l == m:
        return pmm
    pmmp1 = x * (2.0 * m + 1.0) * pmm
    if l == m + 1:
        return pmmp1
    pll = pmmp1
    for ll in range(m + 2, l + 1):
        pll = ((2.0 * ll - 1.0) * x * pmmp1 - (ll + m - 1.0) * pmm) / (ll - m)
        pmm, pmmp1 = pmmp1, pll
    return pll


def normalisation(l: int, m: int) -> float:
    return math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))


def sh_basis_recursive(dirs: torch.Tensor, bands: int) -> torch.Tensor:
    """Real orthonormal SH of unit `dirs` (..., 3), index l*l + l + m, one recursion per coefficient."""
    theta = torch.acos(dirs[..., 2].clamp(-1.0, 1.0))
    phi = torch.atan2(dirs[..., 1], dirs[..., 0])
    cos_theta = torch.cos(theta)
    out = []
    for l in range(bands):
        for m in range(-l, l + 1):
            if m == 0:
                out.append(normalisation(l, 0) * legendre(l, 0, cos_theta))
            elif m > 0:
                out.append(math.sqrt(2.0) * normalisation(l, m) * torch.cos(m * phi) * legendre(l, m, cos_theta))
            else:
                out.append(math.sqrt(2.0) * normalisation(l, -m) * torch.sin(-m * phi) * legendre(l, -m, cos_theta))
    return torch.stack(out, dim=-1)
