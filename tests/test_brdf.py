"""core.brdf: GGX normalisation, the white furnace, reciprocity of the specular lobe, Fresnel limits."""

from __future__ import annotations

import math

import pytest
import torch

from facestage.core import brdf


def _hemisphere(n_theta=400, n_phi=200):
    theta = (torch.arange(n_theta, dtype=torch.float64) + 0.5) * (math.pi / 2) / n_theta
    phi = (torch.arange(n_phi, dtype=torch.float64) + 0.5) * 2 * math.pi / n_phi
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    dirs = torch.stack([torch.sin(t) * torch.cos(p), torch.sin(t) * torch.sin(p), torch.cos(t)], -1)
    d_omega = torch.sin(t) * (math.pi / 2 / n_theta) * (2 * math.pi / n_phi)
    return dirs, d_omega


@pytest.mark.parametrize("roughness", [0.2, 0.4, 0.6, 0.8, 1.0])
def test_ggx_ndf_is_normalised(roughness):
    dirs, d_omega = _hemisphere(2000, 8)
    alpha = torch.tensor(roughness ** 2, dtype=torch.float64)
    assert float((brdf.ggx_ndf(dirs[..., 2], alpha) * dirs[..., 2] * d_omega).sum()) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("roughness", [0.2, 0.4, 0.6, 0.8, 1.0])
def test_white_furnace_specular_lobe_never_creates_energy(roughness):
    dirs, d_omega = _hemisphere()
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(dirs)
    for theta_v in (0.0, 0.6, 1.2):
        v = torch.tensor([math.sin(theta_v), 0.0, math.cos(theta_v)], dtype=torch.float64).expand_as(dirs)
        ones = torch.ones(*dirs.shape[:-1], 3, dtype=torch.float64)
        level = torch.full((*dirs.shape[:-1], 1), 1 / 0.08, dtype=torch.float64)  # F0 = 1: no Fresnel loss
        rough = torch.full((*dirs.shape[:-1], 1), roughness, dtype=torch.float64)
        _, spec = brdf.shade(n, v, dirs, ones, level, rough)
        albedo = float((spec[..., 0] * dirs[..., 2] * d_omega).sum())
        assert albedo <= 1.0 + 2e-3
        # Single scattering loses energy as roughness grows (Kulla & Conty 2017): near 1 when smooth.
        assert albedo >= (0.97 if roughness <= 0.2 and theta_v == 0 else 0.25)


def test_specular_lobe_is_reciprocal_and_fresnel_has_its_limits():
    gen = torch.Generator().manual_seed(0)
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(100, 3)
    l = torch.nn.functional.normalize(torch.randn(100, 3, generator=gen, dtype=torch.float64).abs() + 0.1, dim=-1)
    v = torch.nn.functional.normalize(torch.randn(100, 3, generator=gen, dtype=torch.float64).abs() + 0.1, dim=-1)
    args = (torch.full((100, 3), 0.5, dtype=torch.float64), torch.full((100, 1), 0.5, dtype=torch.float64),
            torch.full((100, 1), 0.45, dtype=torch.float64))
    _, s1 = brdf.shade(n, v, l, *args)
    _, s2 = brdf.shade(n, l, v, *args)
    assert torch.allclose(s1, s2, rtol=1e-12)
    f0 = torch.tensor(0.04, dtype=torch.float64)
    assert float(brdf.fresnel_schlick(torch.tensor(1.0), f0)) == pytest.approx(0.04)
    assert float(brdf.fresnel_schlick(torch.tensor(0.0), f0)) == pytest.approx(1.0)
    assert float(brdf.f0_from_specular_level(torch.tensor(0.5))) == pytest.approx(0.04)


def test_diffuse_plus_specular_conserves_energy_and_has_finite_gradients():
    dirs, d_omega = _hemisphere(200, 100)
    n = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(dirs)
    v = torch.tensor([0.3, 0.0, 0.954], dtype=torch.float64)
    v = (v / v.norm()).expand_as(dirs)
    rough = torch.full((*dirs.shape[:-1], 1), 0.5, dtype=torch.float64, requires_grad=True)
    diffuse, spec = brdf.shade(n, v, dirs, torch.ones(*dirs.shape[:-1], 3, dtype=torch.float64),
                               torch.full((*dirs.shape[:-1], 1), 0.5, dtype=torch.float64), rough)
    total = float(((diffuse + spec)[..., 0] * dirs[..., 2] * d_omega).sum().detach())
    assert 0.9 < total <= 1.0 + 1e-3
    spec.sum().backward()
    assert torch.isfinite(rough.grad).all()
