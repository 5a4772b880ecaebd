"""The photo's detail on the albedo (fit/detail.py): darker detail is pigment and stays; brighter is sheen, capped."""

from __future__ import annotations

import numpy as np
import torch

from facestage.core.fit import detail
from facestage.core.model import uvmaps

SIZE = 256  # texels of the map and pixels of the photo: the plane below fills both, texel (i, j) = pixel (i, j)
SKIN = np.array([0.45, 0.28, 0.20], np.float32)


def _plane_view(photo: np.ndarray) -> tuple[detail.PhotoView, torch.Tensor, torch.Tensor, uvmaps.UvRaster]:
    """A square 0.2 m wide, 1 m in front of the camera (Blender axes: looking along −z), filling a SIZE² photo and
    its SIZE² UV map; the fit predicts uniform SKIN under unit shading."""
    vertices = torch.tensor([[-0.1, -0.1, -1.0], [0.1, -0.1, -1.0], [0.1, 0.1, -1.0], [-0.1, 0.1, -1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])  # counter-clockwise seen from the camera: facing it
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], np.float32)
    raster = uvmaps.rasterize_uv(uvs, faces.numpy(), SIZE)
    focal = SIZE / 0.2
    K = np.array([[focal, 0, SIZE / 2], [0, focal, SIZE / 2], [0, 0, 1]], np.float32)
    ones = np.ones((SIZE, SIZE, 3), np.float32)
    view = detail.PhotoView(image=photo, albedo=SKIN * ones, shading=ones, specular=0 * ones,
                            trust=np.ones((SIZE, SIZE), np.float32), K=K, world_from_camera=np.eye(4, dtype=np.float32))
    return view, vertices, faces, raster


def _spot(centre: tuple[int, int], radius: float = 1.2) -> np.ndarray:
    """(SIZE, SIZE) weight of a small round spot, 1 at its centre: finer than the layer's high-pass scale."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    return np.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / (2 * radius ** 2)).astype(np.float32)


def test_darker_detail_is_kept_and_a_brighter_white_speckle_is_capped_and_greyed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A mole (the skin × 0.4) and a sheen speckle (the skin + 1.5 white, as a highlight on dark skin) on a plane
    the fit predicts as plain skin. The mole stays in the albedo at ×0.64 (its part finer than the high-pass; the
    darker bound is ×0.37), as before. The speckle, which the symmetric bound before kept at ×1.64 (log 0.49) and
    bluer than the skin, reaches at most ×e^0.3 = 1.35 with its colour shift cut to 0.30 / 0.49 of it."""
    mole, sheen = _spot((80, 80)), _spot((170, 170))
    photo = SKIN * (1 - 0.6 * mole[..., None]) + 1.5 * sheen[..., None]
    layer, weight = detail.detail_layer(*_plane_view(photo))
    cap = np.exp(detail.LIGHTER_BOUND)
    monkeypatch.setattr(detail, "LIGHTER_BOUND", detail.DARKER_BOUND)
    symmetric, _ = detail.detail_layer(*_plane_view(photo))
    assert weight[80, 80] > 0.99 and weight[170, 170] > 0.99
    dark, bright, before = layer[80, 80], layer[170, 170], symmetric[170, 170]
    # measured: dark (0.64, 0.64, 0.64); bright (1.30, 1.36, 1.39); before (1.54, 1.64, 1.71)
    assert dark.mean() < 0.7 and np.ptp(np.log(dark)) < 0.01
    assert np.allclose(symmetric[80, 80], dark)  # the darker side is as it was
    assert np.exp(np.log(bright).mean()) <= cap + 0.01 < np.exp(np.log(before).mean()) - 0.2
    assert np.ptp(np.log(bright)) < 0.65 * np.ptp(np.log(before))  # 0.30 / 0.49 of it
    assert np.abs(layer[40, 200] - 1).max() < 1e-3  # away from both: nothing
