"""The square window of the photo that the photometric stages render, and the resampling between the two grids.

Rendering the whole photo would spend most rays on background; the stages
render a square around the face (`face_crop`) instead, at the quality's
working size, and the final render.png renders it at the photo's own pixel
density (`final_crop`). `Crop.K` turns the photo's intrinsics into the
window's, `Crop.cut` resamples a photo-grid image into the window and `paste`
puts a window image back, both bilinear through one helper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CROP_MARGIN = 1.5  # crop side = CROP_MARGIN × face landmark extent
FINAL_MAX_SIDE = 1024


def _resample(image: np.ndarray, xs: torch.Tensor, ys: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of (H, W[, C]) at the grid xs × ys (normalised [-1, 1] coordinates, zero outside),
    and the (len(ys), len(xs)) mask of grid points inside the image."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
    out = torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    inside = (grid[0].abs() <= 1).all(-1).numpy()
    return (out[0] if image.ndim == 2 else out.permute(1, 2, 0)).numpy(), inside


@dataclass
class Crop:
    """The square face region the photometric stages work in, and its camera."""

    x0: float
    y0: float
    side: float
    size: int  # pixels of the rendered crop

    def K(self, K_full: np.ndarray) -> np.ndarray:
        """The window's intrinsics from the photo's."""
        scale = self.size / self.side
        out = K_full.copy()
        out[0, 2] -= self.x0
        out[1, 2] -= self.y0
        out[:2] *= scale
        return out

    def cut(self, image: np.ndarray) -> np.ndarray:
        """Resample (H, W[, C]) into the crop's (size, size) grid, bilinear, zero outside."""
        h, w = image.shape[:2]
        centres = (torch.arange(self.size, dtype=torch.float32) + 0.5) * self.side / self.size
        return _resample(image, (self.x0 + centres) / w * 2 - 1, (self.y0 + centres) / h * 2 - 1)[0]


def paste(crop: Crop, image: np.ndarray, height: int, width: int, outside: np.ndarray) -> np.ndarray:
    """Put a crop-grid image back onto the photo grid (bilinear), keeping ``outside`` where the crop does not reach."""
    xs = ((torch.arange(width, dtype=torch.float32) + 0.5 - crop.x0) / crop.side) * 2 - 1
    ys = ((torch.arange(height, dtype=torch.float32) + 0.5 - crop.y0) / crop.side) * 2 - 1
    out, inside = _resample(image, xs, ys)
    return np.where(inside[..., None] if image.ndim == 3 else inside, out, outside)


def face_crop(points: np.ndarray, size: int) -> Crop:
    """The square around the landmarks `points` (N, 2), CROP_MARGIN times their extent, rendered at `size` px."""
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    side = float(CROP_MARGIN * max(hi - lo))
    return Crop(x0=float(centre[0] - side / 2), y0=float(centre[1] - side / 2), side=side, size=size)


def final_crop(points: np.ndarray) -> Crop:
    """The face crop rendered at (up to) the photo's own pixel density for render.png."""
    crop = face_crop(points, 8)
    crop.size = int(min(FINAL_MAX_SIDE, max(64, round(crop.side))))
    return crop
