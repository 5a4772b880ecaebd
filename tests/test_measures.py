"""The shared re-render measures: SSIM against known answers, and the inner-face region of DESIGN.md."""

from __future__ import annotations

import math

import numpy as np

from facestage.core.common.metrics import psnr, ssim, ssim_map
from facestage.core.fit.masks import BROW_TOP, inner_face_mask


def _reference_ssim_at(a: np.ndarray, b: np.ndarray, y: int, x: int) -> float:
    """SSIM of one interior pixel, written out from Wang et al. (2004): an explicit 11×11 Gaussian (σ 1.5) window."""
    offsets = np.arange(-5, 6)
    g = np.exp(-(offsets[:, None] ** 2 + offsets[None] ** 2) / (2 * 1.5 ** 2))
    w = g / g.sum()
    pa, pb = a[y - 5:y + 6, x - 5:x + 6], b[y - 5:y + 6, x - 5:x + 6]
    mu_a, mu_b = (w * pa).sum(), (w * pb).sum()
    var_a, var_b = (w * (pa - mu_a) ** 2).sum(), (w * (pb - mu_b) ** 2).sum()
    cov = (w * (pa - mu_a) * (pb - mu_b)).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def test_ssim_matches_the_written_out_window_formula_pixel_by_pixel() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((40, 40))
    b = np.clip(0.7 * a + 0.3 * rng.random((40, 40)), 0, 1)
    full = ssim_map(a, b)
    for y, x in [(5, 5), (20, 17), (34, 30)]:
        assert math.isclose(full[y, x], _reference_ssim_at(a, b, y, x), rel_tol=1e-9, abs_tol=1e-12)


def test_ssim_of_flat_images_is_the_luminance_term() -> None:
    a, b = np.full((24, 24), 0.6), np.full((24, 24), 0.3)
    expected = (2 * 0.6 * 0.3 + 1e-4) / (0.6 ** 2 + 0.3 ** 2 + 1e-4)  # zero variances: the structure term is 1
    assert math.isclose(ssim(a, b, np.ones((24, 24))), expected, rel_tol=1e-9)


def test_ssim_is_one_for_equal_images_and_scores_colour_per_channel() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1
    assert ssim(image, image, mask) == 1.0
    inverted = image.copy()
    inverted[..., 2] = 1 - image[..., 2]  # one channel anti-correlated, two identical
    per_channel = [ssim(image[..., c], inverted[..., c], mask) for c in range(3)]
    assert math.isclose(ssim(image, inverted, mask), sum(per_channel) / 3, rel_tol=1e-12)
    assert per_channel[2] < 0 < per_channel[0] == 1.0


def test_psnr_of_a_uniform_error() -> None:
    a = np.full((10, 10, 3), 0.5)
    assert math.isclose(psnr(a, a + 0.1, np.ones((10, 10))), 20.0, rel_tol=1e-9)


def test_inner_face_is_the_hull_of_the_landmarks_at_or_below_the_brows() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform([40, 60], [160, 180], (478, 2))  # the face below the brows fills the box [40, 160] × [60, 180]
    points[[0, 1, 2, 3]] = [[40, 60], [160, 60], [40, 180], [160, 180]]
    points[list(BROW_TOP)] = np.c_[np.linspace(50, 150, len(BROW_TOP)), np.full(len(BROW_TOP), 60.0)]
    points[400:420, 1] = 20.0  # forehead points above the highest brow point are left out
    points[468:] = [100, 5]  # the ten iris points are not face landmarks
    mask = inner_face_mask(points, 200, 200)
    assert mask[30, 100] == 0 and mask[10, 100] == 0
    assert mask[61, 41] == 1 and mask[178, 158] == 1 and mask[120, 100] == 1
    assert abs(mask.sum() - 120 * 120) <= 2 * (120 + 120)  # the box, to a pixel along its border
