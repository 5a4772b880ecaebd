"""Skin reflectance as Blender's Principled BSDF computes it (single-scatter GGX), in torch.

The maps the fit recovers drop straight into Principled BSDF, so the model
is Principled's: a Lambertian base weighted by the energy the dielectric
specular layer leaves, and a GGX microfacet lobe with the height-correlated
Smith masking Cycles uses (G₂ = 1 / (1 + Λ(l) + Λ(v))), Schlick Fresnel with
F0 = 0.08·s ("Specular IOR Level" s at IOR 1.5: 0.04·2s) and α = roughness².
The layer's directional albedo is approximated by the roughness-aware
Schlick term F0 + (max(1 − r, F0) − F0)(1 − n·v)⁵ (Fdez-Agüera 2019), which
is what Cycles' albedo-scaling table does to the diffuse base, to within a
few per cent for skin-like F0.
"""

from __future__ import annotations

import math

import torch

ALPHA_MIN = 1e-3
COS_EPS = 1e-6


def f0_from_specular_level(s: torch.Tensor) -> torch.Tensor:
    return 0.08 * s


def alpha_from_roughness(r: torch.Tensor) -> torch.Tensor:
    return (r * r).clamp_min(ALPHA_MIN)


def ggx_ndf(n_dot_h: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    a2 = alpha * alpha
    c = n_dot_h.clamp_min(0.0)
    denom = c * c * (a2 - 1.0) + 1.0
    return a2 / (math.pi * denom * denom)


def smith_lambda(cos: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    c2 = cos.clamp(COS_EPS, 1.0) ** 2
    return 0.5 * (torch.sqrt(1.0 + alpha * alpha * (1.0 - c2) / c2) - 1.0)


def smith_g2(n_dot_l: torch.Tensor, n_dot_v: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Height-correlated Smith masking-shadowing (as in Cycles' microfacet GGX)."""
    return 1.0 / (1.0 + smith_lambda(n_dot_l, alpha) + smith_lambda(n_dot_v, alpha))


def fresnel_schlick(cos: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    return f0 + (1.0 - f0) * (1.0 - cos.clamp(0.0, 1.0)) ** 5


def specular_albedo(n_dot_v: torch.Tensor, f0: torch.Tensor, roughness: torch.Tensor) -> torch.Tensor:
    """Approximate directional albedo of the specular layer (the energy it takes from the diffuse base)."""
    return f0 + (torch.maximum(1.0 - roughness, f0) - f0) * (1.0 - n_dot_v.clamp(0.0, 1.0)) ** 5


def shade(normal: torch.Tensor, view_dir: torch.Tensor, light_dir: torch.Tensor, albedo: torch.Tensor,
          specular_level: torch.Tensor, roughness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BRDF values (diffuse_f, specular_f), each (..., 3), without the n·l cosine.

    normal, view_dir (towards the eye), light_dir (towards the light): (..., 3) unit.
    specular_level, roughness: (..., 1). Zero where the light or view is below the surface.
    """
    n_dot_l = (normal * light_dir).sum(-1, keepdim=True)
    n_dot_v = (normal * view_dir).sum(-1, keepdim=True)
    above = ((n_dot_l > 0) & (n_dot_v > 0)).to(albedo.dtype)
    half = torch.nn.functional.normalize(light_dir + view_dir, dim=-1, eps=1e-8)
    n_dot_h = (normal * half).sum(-1, keepdim=True)
    v_dot_h = (view_dir * half).sum(-1, keepdim=True)
    f0 = f0_from_specular_level(specular_level)
    alpha = alpha_from_roughness(roughness)
    nl, nv = n_dot_l.clamp_min(COS_EPS), n_dot_v.clamp_min(COS_EPS)
    spec = ggx_ndf(n_dot_h, alpha) * smith_g2(nl, nv, alpha) * fresnel_schlick(v_dot_h, f0) / (4.0 * nl * nv)
    diffuse = (1.0 - specular_albedo(n_dot_v, f0, roughness)) * albedo / math.pi
    return diffuse * above, spec.expand_as(albedo) * above
