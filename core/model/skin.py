"""A two-parameter biophysical skin colour model, skin's measured specular ranges, and the priors built on them.

Diffuse skin colour is mostly set by two chromophores: melanin (absorbs more
towards blue) and haemoglobin (absorbs green and blue, little red). Writing
albedo = base · exp(−m·μ_mel − h·μ_hem) gives a 2-D manifold of skin colours.
Keeping the recovered albedo on that manifold is what stops coloured light
and cast shadows from being painted into the diffuse map: a tinted patch off
the manifold is cheaper to explain with light than with albedo.

Calibration (docs/skin.md): base, μ_mel and μ_hem are fitted to the mean
CIELAB skin colours of the ITA groups of Del Bino et al. 2006 (very light to
dark; L* 67→35, b* 13→20→14), linear-sRGB, at h = 0.4: μ_mel ∝ (1, 1.21,
1.37) over R, G, B, much flatter than a pure melanin absorption spectrum
(real skin scatters), which the first model (1, 1.5, 2.2) assumed and which
made dark skin far too saturated — the fit then read a real dark skin's
milder colour as light skin. On this manifold the colour of skin fixes its
lightness only loosely (a 10 % hue error moves the lightness by ~30 %), so
the fit takes the albedo's scale from physics first: skin's specular
reflectance (F0 ≈ 0.028 at IOR ≈ 1.4, the same for every skin tone) makes the
highlights measure the light; near-white references (sclera, teeth) measure
it where they are seen; the chromophore coupling is a prior.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Relative absorption of the chromophores in the linear sRGB R, G, B bands, and the chromophore-free skin.
MELANIN = (1.6, 1.93, 2.19)
HAEMOGLOBIN = (0.04, 0.5, 0.7)
BASE = (0.95, 0.82, 0.69)
MELANIN_MAX = 1.6  # darkest skin ≈ 1.2 (ITA −50°), plus the brows' hair
HAEMOGLOBIN_MAX = 1.5

# Skin's specular layer (Weyrich et al. 2006; Donner & Jensen): IOR ≈ 1.38–1.45, F0 = ((n−1)/(n+1))² ≈ 0.025–0.034,
# oily skin up to ~0.045. In Principled's "Specular IOR Level" s (F0 = 0.08·s): nominal and the allowed range.
SPECULAR_F0 = 0.028
SPECULAR_LEVEL = SPECULAR_F0 / 0.08  # 0.35
SPECULAR_RANGE = (0.022 / 0.08, 0.048 / 0.08)  # 0.275 … 0.6
# Blender roughness (α = r²) of skin's specular lobe: Beckmann/GGX m ≈ 0.2–0.5 in measurements.
ROUGHNESS = 0.45
ROUGHNESS_RANGE = (0.3, 0.7)
# Near-white references: mean diffuse albedo of the sclera and of teeth (linear), and how far they vary.
SCLERA_ALBEDO = 0.65
TEETH_ALBEDO = 0.6
REFERENCE_TOLERANCE = 0.05  # log-albedo band within which a reference does not pull
# Teeth vary more than the sclera (shade guides: L* 70-85, linear 0.45-0.7) and the model's teeth sit behind lips
# whose shadow it renders only roughly: their band is ±22 %.
TEETH_TOLERANCE = 0.2
ALBEDO_RANGE = (0.003, 0.95)  # linear diffuse albedo of the delivered skin map: nothing on a head reflects more


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

    log(base / colour) = m·μ_mel + h·μ_hem + log(scale): three channels, three unknowns. A colour off the
    manifold can solve to a chromophore outside the prior's range; clamping that one alone keeps the other at a
    value that only made sense with it (very light skin solved to m < 0, h 0.86 and came back as h 0.86 at
    m = 0, far redder than itself), so the clamped one is held at its bound and the rest re-solved in least
    squares. (0.3, 0.4) for a colour that is not skin at all (e.g. black).
    """
    base, mel, hem = _vectors(colour)
    if not bool((colour > 1e-6).all()):
        return 0.3, 0.4
    rhs = torch.log(base) - torch.log(colour)
    basis = torch.stack([mel, hem, torch.ones_like(mel)], dim=1)  # (3, 3)
    bounds = ((0.0, MELANIN_MAX), (0.0, HAEMOGLOBIN_MAX))
    solution = torch.linalg.solve(basis, rhs).tolist()[:2]
    for _ in range(2):  # at most one chromophore held per pass
        outside = [i for i, (value, (low, high)) in enumerate(zip(solution, bounds)) if not low <= value <= high]
        if not outside:
            break
        held, free = outside[0], 1 - outside[0]
        solution[held] = min(max(solution[held], bounds[held][0]), bounds[held][1])
        columns = basis[:, [free, 2]]
        solution[free] = torch.linalg.lstsq(columns, (rhs - solution[held] * basis[:, held])[:, None]).solution[0, 0].item()
    return tuple(min(max(value, low), high) for value, (low, high) in zip(solution, bounds))  # type: ignore[return-value]


def skin_prior(albedo: torch.Tensor, weight_range: float = 10.0) -> torch.Tensor:
    """Mean squared distance of albedo texels from the skin manifold, plus out-of-range chromophores."""
    melanin, haemoglobin, residual = chromophores(albedo)
    return (residual ** 2).sum(-1).mean() + weight_range * range_penalty(melanin, haemoglobin)


def range_penalty(melanin: torch.Tensor, haemoglobin: torch.Tensor) -> torch.Tensor:
    """Mean squared excursion of chromophore amounts outside [0, MELANIN_MAX] × [0, HAEMOGLOBIN_MAX]."""
    out = (torch.relu(-melanin) + torch.relu(melanin - MELANIN_MAX) + torch.relu(-haemoglobin)
           + torch.relu(haemoglobin - HAEMOGLOBIN_MAX)) ** 2
    return out.mean()


def bounded(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A value in (low, high) from an unconstrained one (sigmoid), for the specular level and roughness."""
    return low + (high - low) * torch.sigmoid(raw)


def unbounded(value: float, low: float, high: float) -> float:
    """Inverse of `bounded` for an initial value."""
    t = min(max((value - low) / (high - low), 1e-4), 1 - 1e-4)
    return float(torch.logit(torch.tensor(t)))


def within_albedo_range(albedo: np.ndarray) -> np.ndarray:
    """A diffuse albedo (..., 3: the skin map, the tongue's and cavity's samples) inside ALBEDO_RANGE with each
    texel's hue kept: one brighter than the top is scaled down as a whole, not clipped channel by channel.

    Where the fitted shading is too dark (a cheek turned towards a light the stage misses), stage 2 asks for a
    skin albedo above 1 in red (2.4 on beard_man_yaw) while green and blue stay below it; clipping each channel
    then keeps green and blue and loses red, and the texel renders grey-cyan in a skin-coloured face.
    """
    peak = albedo.max(-1, keepdims=True)
    scaled = albedo * np.minimum(1.0, ALBEDO_RANGE[1] / np.maximum(peak, 1e-12))
    return np.clip(scaled, *ALBEDO_RANGE).astype(np.float32)


def white_reference_loss(observed: torch.Tensor, shading: torch.Tensor, albedo: float,
                         tolerance: float = REFERENCE_TOLERANCE) -> torch.Tensor:
    """How far a near-white reference (sclera, teeth) says the light level is off: zero while the albedo it implies,
    observed / shading (linear radiance over the rendered shading at albedo 1, per channel), lies within
    ±tolerance of its known albedo in log, quadratic beyond. The eye and mouth fit supplies both colours;
    without them there is nothing to add."""
    implied = torch.log(observed.clamp_min(1e-6)) - torch.log(shading.clamp_min(1e-6)) - math.log(albedo)
    return (torch.relu(implied.abs() - tolerance) ** 2).mean()


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
