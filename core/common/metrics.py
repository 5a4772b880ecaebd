"""Image comparison measures shared by the pipeline's scene.json metrics, the benchmarks and the tests.

Both measures take sRGB images in [0, 1] (what a person looks at) and a mask of the pixels that count:
the re-render scores of DESIGN.md are PSNR and SSIM over the inner face (core.fit.masks.inner_face_mask).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SSIM_SIGMA = 1.5  # Wang et al. 2004: 11×11 Gaussian window, σ = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5·1.5 + 0.5) = 5 → an 11-tap window, as skimage's gaussian_weights=True
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the mask (images in [0, 1])."""
    weight = mask[..., None] if a.ndim == 3 else mask
    mse = float(((a - b) ** 2 * weight).sum() / max(weight.sum() * (a.shape[-1] if a.ndim == 3 else 1), 1e-8))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two (H, W) images in [0, 1]: Gaussian-weighted local statistics (population
    variances), data range 1, C1 = (0.01)², C2 = (0.03)²; borders reflect (scipy's 'reflect' mode)."""
    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM over the mask of two (H, W) or (H, W, C) images in [0, 1]; colour images are scored per channel
    (R, G, B separately, then averaged), so a colour cast costs SSIM as it costs PSNR. The windows see the whole
    image; only the averaging is restricted to the mask."""
    a, b = np.asarray(a), np.asarray(b)
    maps = [ssim_map(a, b)] if a.ndim == 2 else [ssim_map(a[..., c], b[..., c]) for c in range(a.shape[-1])]
    weight = np.asarray(mask, np.float64)
    return float(sum((m * weight).sum() for m in maps) / max(len(maps) * weight.sum(), 1e-8))
