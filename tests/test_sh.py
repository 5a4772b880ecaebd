"""core.model.sh: the closed-form basis is the orthonormal real SH, rotates, convolves and bakes like Blender."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from facestage.core.common.errors import FaceStageError
from facestage.core.model.sh import (
    DEFAULT_BANDS,
    MAX_BANDS,
    equirect_directions,
    equirect_to_sh,
    equirect_uv,
    irradiance,
    irradiance_coeffs,
    irradiance_kernel,
    rotate_sh,
    sh_basis,
    sh_eval,
    sh_rotation,
    sh_to_equirect,
)

F64 = torch.float64


def _unit(n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    d = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (d / d.norm(dim=-1, keepdim=True)).to(dtype)


def _rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def _sphere_quadrature(n_z: int, n_phi: int, z_range: tuple[float, float] = (-1.0, 1.0)):
    """Gauss-Legendre in z × uniform φ: exact for the polynomials on the sphere of moderate degree."""
    nodes, weights = np.polynomial.legendre.leggauss(n_z)
    lo, hi = z_range
    z = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
    wz = 0.5 * (hi - lo) * weights
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - zz**2)
    dirs = torch.tensor(np.stack([s * np.cos(pp), s * np.sin(pp), zz], -1).reshape(-1, 3))
    w = torch.tensor(np.repeat(wz, n_phi) * 2 * np.pi / n_phi)
    return dirs, w


def _scipy_real_sh(dirs: torch.Tensor, bands: int) -> torch.Tensor:
    """Real SH from scipy's complex ones, Condon-Shortley phase removed (Y_1,1 ∝ +x)."""
    x, y, z = dirs.numpy().T
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    cols = []
    for l in range(bands):
        for m in range(-l, l + 1):
            y_abs = sph_harm_y(l, abs(m), theta, phi) * (-1) ** abs(m)
            cols.append(y_abs.real if m == 0 else math.sqrt(2) * (y_abs.real if m > 0 else y_abs.imag))
    return torch.tensor(np.stack(cols, -1))


def test_constants():
    assert (MAX_BANDS, DEFAULT_BANDS) == (9, 3)


def test_basis_is_orthonormal_under_exact_quadrature():
    dirs, w = _sphere_quadrature(16, 36)
    for bands in range(1, MAX_BANDS + 1):
        y = sh_basis(dirs, bands)
        gram = y.T @ (y * w[:, None])
        assert y.shape == (dirs.shape[0], bands * bands)
        assert (gram - torch.eye(bands * bands, dtype=F64)).abs().max() < 1e-12


def test_closed_form_equals_scipy_spherical_harmonics():
    dirs = torch.cat([_unit(500, 0), torch.eye(3, dtype=F64), -torch.eye(3, dtype=F64)])
    assert (sh_basis(dirs, MAX_BANDS) - _scipy_real_sh(dirs, MAX_BANDS)).abs().max() < 1e-12


def test_low_bands_have_the_ramamoorthi_hanrahan_signs():
    d = _unit(50, 1)
    x, y, z = d.T
    expected = torch.stack([torch.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
                            1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1),
                            1.092548 * x * z, 0.546274 * (x * x - y * y)], -1)
    assert (sh_basis(d, 3) - expected).abs().max() < 1e-6


def test_float32_blockwise_path_matches_float64_and_autograd_path():
    d64 = _unit(2 * 16384 + 123, 2)  # crosses the CPU block size
    d32 = d64.float()
    fast = sh_basis(d32, MAX_BANDS)
    tracked = sh_basis(d32.clone().requires_grad_(), MAX_BANDS)
    assert fast.dtype == torch.float32 and fast.shape == (d64.shape[0], 81) and fast.is_contiguous()
    assert (fast.double() - sh_basis(d64, MAX_BANDS)).abs().max() < 1e-4
    assert (fast - tracked.detach()).abs().max() < 1e-6


def test_basis_keeps_batch_shape_and_half_precision():
    d = _unit(24, 3).reshape(2, 3, 4, 3)
    assert sh_basis(d, 4).shape == (2, 3, 4, 16)
    half = sh_basis(d.half(), 4)
    assert half.dtype == torch.float16 and (half.double() - sh_basis(d, 4)).abs().max() < 2e-3


def test_sh_eval_equals_basis_times_coefficients():
    d = _unit(300, 4).reshape(10, 30, 3)
    coeffs = torch.randn(3, 81, generator=torch.Generator().manual_seed(5), dtype=F64)
    for bands in (1, 3, 9):
        c = coeffs[:, : bands * bands]
        assert (sh_eval(d, c) - sh_basis(d, bands) @ c.T).abs().max() < 1e-12
    many = _unit(2 * 8192 + 5, 8, torch.float32)  # crosses the CPU block size
    value = sh_eval(many, coeffs.float())
    assert value.shape == (many.shape[0], 3) and value.dtype == torch.float32
    assert (value.double() - sh_basis(many.double(), 9) @ coeffs.T).abs().max() < 1e-4
    assert sh_eval(many[:0], coeffs).shape == (0, 3) and sh_basis(many[:0], 9).shape == (0, 81)


def test_gradient_flows_to_directions():
    d = _unit(4, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: sh_basis(v, MAX_BANDS), (d,))
    c = torch.randn(3, 16, generator=torch.Generator().manual_seed(7), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_eval, (d, c))


@pytest.mark.parametrize("seed", [10, 11, 12, 13, 14])
def test_rotated_coefficients_evaluate_like_rotated_directions(seed):
    R = _rotation(seed)
    d = _unit(400, seed)
    c = torch.randn(3, 81, generator=torch.Generator().manual_seed(seed), dtype=F64)
    for bands in range(1, MAX_BANDS + 1):
        cb = c[:, : bands * bands]
        lhs = sh_basis(d @ R.T, bands) @ rotate_sh(cb, R).T
        assert (lhs - sh_basis(d, bands) @ cb.T).abs().max() < 1e-10


def test_rotation_matrix_is_block_diagonal_and_orthogonal():
    D = sh_rotation(_rotation(20), MAX_BANDS)
    assert (D @ D.T - torch.eye(81, dtype=F64)).abs().max() < 1e-12
    band = torch.tensor([math.isqrt(k) for k in range(81)])
    assert D[band[:, None] != band[None, :]].abs().max() == 0


def test_rotation_of_composition_is_product_of_rotations():
    R1, R2 = _rotation(21), _rotation(22)
    assert (sh_rotation(R1 @ R2, MAX_BANDS) - sh_rotation(R1, MAX_BANDS) @ sh_rotation(R2, MAX_BANDS)).abs().max() < 1e-12
    assert (sh_rotation(torch.eye(3, dtype=F64), MAX_BANDS) - torch.eye(81, dtype=F64)).abs().max() < 1e-14


def test_light_from_plus_x_turned_90_degrees_about_z_comes_from_plus_y():
    c = torch.zeros(1, 4, dtype=F64)
    c[0, 3] = 1.0  # Y_1,1 ∝ x
    quarter_turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    assert torch.allclose(rotate_sh(c, quarter_turn), torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=F64), atol=1e-15)


def test_rotation_is_differentiable_in_the_rotation_matrix():
    R = _rotation(23).requires_grad_()
    assert torch.autograd.gradcheck(lambda r: sh_rotation(r, 4), (R,))


def test_irradiance_kernel_values():
    A = irradiance_kernel(9)
    expected = [math.pi, 2 * math.pi / 3, math.pi / 4, 0, -math.pi / 24, 0, math.pi / 64, 0, -math.pi / 128]
    assert np.allclose(A, expected, rtol=0, atol=1e-15)


def test_constant_environment_gives_irradiance_pi_times_radiance():
    radiance = torch.tensor([0.7, 1.3, 2.0], dtype=F64)
    c = torch.zeros(3, 81, dtype=F64)
    c[:, 0] = radiance * math.sqrt(4 * math.pi)
    e = irradiance(_unit(100, 30).reshape(10, 10, 3), c)
    assert e.shape == (10, 10, 3)
    assert (e - math.pi * radiance).abs().max() < 1e-12


def _exact_clamped_cosine_irradiance(theta: torch.Tensor) -> torch.Tensor:
    """∫ max(0, ω·z) max(0, ω·n) dω for n at angle θ from z."""
    return 2 / 3 * ((math.pi - theta) * theta.cos() + theta.sin())


def test_clamped_cosine_environment_irradiance_matches_closed_form():
    upper, w = _sphere_quadrature(24, 48, z_range=(0.0, 1.0))  # exact for max(0, z)·Y on the upper half
    theta = torch.linspace(0, math.pi, 19, dtype=F64)
    normals = torch.stack([theta.sin(), torch.zeros_like(theta), theta.cos()], -1)
    exact = _exact_clamped_cosine_irradiance(theta)
    assert abs(exact[0].item() - 2 * math.pi / 3) < 1e-15
    fine, fine_w = _sphere_quadrature(400, 800, z_range=(0.0, 1.0))
    brute_force = (torch.clamp(fine @ normals.T, min=0) * (fine[:, 2] * fine_w)[:, None]).sum(0)
    assert (brute_force - exact).abs().max() < 1e-5  # the formula itself
    errors = {}
    for bands in (3, 9):
        coeffs = ((sh_basis(upper, bands) * (upper[:, 2] * w)[:, None]).sum(0))[None]
        errors[bands] = (irradiance(normals, coeffs)[:, 0] - exact).abs().max().item()
        truncated = sum(a * a * (2 * l + 1) / (4 * math.pi) * torch.special.legendre_polynomial_p(theta.cos(), l)
                        for l, a in enumerate(irradiance_kernel(bands)))
        assert (irradiance(normals, coeffs)[:, 0] - truncated).abs().max() < 1e-12
    assert errors[3] < 0.02 and errors[9] < 1.5e-3 and errors[9] < errors[3] / 10


def test_irradiance_coeffs_scale_each_band():
    c = torch.ones(2, 16, dtype=F64)
    scaled = irradiance_coeffs(c)
    assert torch.allclose(scaled[0], torch.tensor([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5 + [0.0] * 7,
                                                  dtype=F64))


def test_equirect_round_trip_recovers_coefficients():
    c = torch.randn(3, 81, generator=torch.Generator().manual_seed(40), dtype=F64)
    image = sh_to_equirect(c, 128)
    assert image.shape == (128, 256, 3)
    assert (equirect_to_sh(image, 9) - c).abs().max() < 1e-10
    assert (equirect_to_sh(image.float(), 9).double() - c).abs().max() < 1e-3
    constant = torch.ones(4, 8, 1, dtype=F64)  # even a coarse image integrates a constant exactly
    assert abs(equirect_to_sh(constant, 1).item() - math.sqrt(4 * math.pi)) < 1e-12


def test_equirect_follows_cycles_environment_texture_mapping():
    dirs = equirect_directions(64, dtype=F64)
    assert dirs.shape == (64, 128, 3)
    # Cycles kernel/camera/projection.h: direction_to_equirectangular_range(dir, (-2π, π, -π, π)).
    x, y, z = dirs.reshape(-1, 3).numpy().T
    cycles_u = (np.arctan2(y, x) - np.pi) / (-2 * np.pi)
    cycles_v = (np.arccos(z) - np.pi) / (-np.pi)
    rows, cols = np.meshgrid(np.arange(64), np.arange(128), indexing="ij")
    assert np.abs(cycles_u - (cols.ravel() + 0.5) / 128).max() < 1e-12
    assert np.abs(cycles_v - (1 - (rows.ravel() + 0.5) / 64)).max() < 1e-12
    assert np.abs(equirect_uv(dirs).reshape(-1, 2).numpy() - np.stack([cycles_u, cycles_v], -1)).max() < 1e-12
    centre = dirs[31:33, 63:65].reshape(-1, 3).mean(0)
    assert torch.allclose(centre / centre.norm(), torch.tensor([1.0, 0.0, 0.0], dtype=F64), atol=1e-12)
    assert dirs[0, :, 2].min() > 0.99 and dirs[-1, :, 2].max() < -0.99  # row 0 = top = +Z
    axes = torch.tensor([[1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=F64)
    assert torch.allclose(equirect_uv(axes), torch.tensor([[0.5, 0.5], [0.25, 0.5], [0.75, 0.5], [0.5, 1.0]],
                                                          dtype=F64))


def test_bad_band_counts_are_refused():
    d = _unit(3, 50)
    for bands in (0, 10):
        with pytest.raises(FaceStageError, match="between 1 and 9"):
            sh_basis(d, bands)
    with pytest.raises(FaceStageError, match="not a square"):
        irradiance(d, torch.zeros(3, 10))
    with pytest.raises(FaceStageError, match="between 1 and 9"):
        sh_eval(d, torch.zeros(3, 100))
