"""Image comparison measures shared by the pipeline's scene.json metrics, the benchmarks and the tests."""

from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the mask (images in [0, 1])."""
    weight = mask[..., None] if a.ndim == 3 else mask
    mse = float(((a - b) ** 2 * weight).sum() / max(weight.sum() * (a.shape[-1] if a.ndim == 3 else 1), 1e-8))
    return 10 * math.log10(1.0 / max(mse, 1e-12))
