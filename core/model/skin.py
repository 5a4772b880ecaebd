"""A two-parameter biophysical skin colour model and the prior built on it.

Diffuse skin colour is mostly set by two chromophores: melanin (absorbs more
towards blue, ~λ^-3) and haemoglobin (absorbs green and blue, little red).
Writing albedo = base · exp(−m·μ_mel − h·μ_hem) gives a 2-D manifold of
plausible skin colours across Fitzpatrick types I–VI. Keeping the recovered
albedo near that manifold is what stops coloured light and cast shadows from
being painted into the diffuse map: a tinted or darkened patch off the
manifold is cheaper to explain with light than with albedo.
"""

from __future__ import annotations

import torch

# Relative absorption of the chromophores in the linear sRGB R, G, B bands.
MELANIN = (1.6, 2.4, 3.5)
HAEMOGLOBIN = (0.04, 0.5, 0.7)
BASE = (0.85, 0.80, 0.78)


def _vectors(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kw = {"device": like.device, "dtype": like.dtype}
    return torch.tensor(BASE, **kw), torch.tensor(MELANIN, **kw), torch.tensor(HAEMOGLOBIN, **kw)


def skin_albedo(melanin: torch.Tensor, haemoglobin: torch.Tensor) -> torch.Tensor:
    """Linear RGB albedo (..., 3) from chromophore amounts in about [0, 1]."""
    base, mel, hem = _vectors(melanin)
    return base * torch.exp(-(melanin[..., None] * mel + haemoglobin[..., None] * hem))


def chromophores(albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares (melanin, haemoglobin) of an albedo and the log-space distance to the manifold."""
    base, mel, hem = _vectors(albedo)
    target = torch.log(base) - torch.log(albedo.clamp_min(1e-4))  # = m·mel + h·hem on the manifold
    basis = torch.stack([mel, hem], dim=1)  # (3, 2)
    coeffs = target @ torch.linalg.pinv(basis).T  # (..., 2)
    residual = target - coeffs @ basis.T
    return coeffs[..., 0], coeffs[..., 1], residual


def from_colour(colour: torch.Tensor) -> tuple[float, float]:
    """(melanin, haemoglobin) of skin with this colour up to brightness (linear RGB (3,), any scale).

    log(base / colour) = m·μ_mel + h·μ_hem + log(scale): three channels, three unknowns. Clamped to the
    prior's range; (0.3, 0.4) for a colour that is not skin at all (e.g. black).
    """
    base, mel, hem = _vectors(colour)
    if not bool((colour > 1e-6).all()):
        return 0.3, 0.4
    basis = torch.stack([mel, hem, torch.ones_like(mel)], dim=1)  # (3, 3)
    m, h, _ = torch.linalg.solve(basis, torch.log(base) - torch.log(colour)).tolist()
    return min(max(m, 0.0), 1.2), min(max(h, 0.0), 1.5)


def skin_prior(albedo: torch.Tensor, weight_range: float = 10.0) -> torch.Tensor:
    """Mean squared distance of albedo texels from the skin manifold, plus out-of-range chromophores."""
    melanin, haemoglobin, residual = chromophores(albedo)
    out_of_range = (torch.relu(-melanin) + torch.relu(melanin - 1.2) + torch.relu(-haemoglobin) + torch.relu(haemoglobin - 1.5)) ** 2
    return (residual ** 2).sum(-1).mean() + weight_range * out_of_range.mean()


def ita_degrees(albedo_srgb_mean: torch.Tensor) -> torch.Tensor:
    """Individual Typology Angle of an sRGB colour: atan((L* − 50) / b*) in degrees (skin-tone measure)."""
    rgb = albedo_srgb_mean.clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], dtype=rgb.dtype)
    xyz = linear @ m.T / torch.tensor([0.95047, 1.0, 1.08883], dtype=rgb.dtype)
    f = torch.where(xyz > (6 / 29) ** 3, xyz ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[..., 1] - 16
    b = 200 * (f[..., 1] - f[..., 2])
    return torch.rad2deg(torch.atan2(lightness - 50, b))
