"""The photo's detail on the albedo (fit/detail.py): darker detail is pigment and stays; brighter is sheen, capped;
a fitted highlight the photo does not show is dimmed, not painted into the albedo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facestage.core.fit import detail
from facestage.core.model import uvmaps

SIZE = 256  # texels of the map and pixels of the photo: the plane below fills both, texel (i, j) = pixel (i, j)
SKIN = np.array([0.45, 0.28, 0.20], np.float32)


def _plane_view(photo: np.ndarray, skin: np.ndarray = SKIN, specular: np.ndarray | None = None
                ) -> tuple[detail.PhotoView, torch.Tensor, torch.Tensor, uvmaps.UvRaster]:
    """A square 0.2 m wide, 1 m in front of the camera (Blender axes: looking along −z), filling a SIZE² photo and
    its SIZE² UV map; the fit predicts uniform `skin` under unit shading, plus the fitted `specular` (SIZE, SIZE)
    (none by default)."""
    vertices = torch.tensor([[-0.1, -0.1, -1.0], [0.1, -0.1, -1.0], [0.1, 0.1, -1.0], [-0.1, 0.1, -1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])  # counter-clockwise seen from the camera: facing it
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], np.float32)
    raster = uvmaps.rasterize_uv(uvs, faces.numpy(), SIZE)
    focal = SIZE / 0.2
    K = np.array([[focal, 0, SIZE / 2], [0, focal, SIZE / 2], [0, 0, 1]], np.float32)
    ones = np.ones((SIZE, SIZE, 3), np.float32)
    highlight = 0 * ones if specular is None else np.repeat(specular[..., None], 3, -1)
    view = detail.PhotoView(image=photo, albedo=skin * ones, shading=ones, specular=highlight,
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
    found = detail.detail_layer(*_plane_view(photo))
    layer, weight = found.detail, found.weight
    cap = np.exp(detail.LIGHTER_BOUND)
    monkeypatch.setattr(detail, "LIGHTER_BOUND", detail.DARKER_BOUND)
    symmetric = detail.detail_layer(*_plane_view(photo)).detail
    assert weight[80, 80] > 0.99 and weight[170, 170] > 0.99
    dark, bright, before = layer[80, 80], layer[170, 170], symmetric[170, 170]
    # measured: dark (0.64, 0.64, 0.64); bright (1.30, 1.36, 1.39); before (1.54, 1.64, 1.71)
    assert dark.mean() < 0.7 and np.ptp(np.log(dark)) < 0.01
    assert np.allclose(symmetric[80, 80], dark)  # the darker side is as it was
    assert np.exp(np.log(bright).mean()) <= cap + 0.01 < np.exp(np.log(before).mean()) - 0.2
    assert np.ptp(np.log(bright)) < 0.65 * np.ptp(np.log(before))  # 0.30 / 0.49 of it
    assert np.abs(layer[40, 200] - 1).max() < 1e-3  # away from both: nothing


def test_a_highlight_the_photo_does_not_show_is_dimmed_instead_of_darkening_the_albedo() -> None:
    """Dark skin (as dreadlocks_man_smile's) under a fitted specular lobe 30 px wide that the photo does not show,
    brighter than the photo's green and blue, and a second lobe that the photo does show. Under the first, σ is the
    bound, 1 − DIFFUSE_SHARE of the photo's blue over the lobe, 0.75 · 0.015 / 0.04 at its centre, and the albedo keeps
    no blotch: photo − specular, floored, had darkened the lobe's rim to ×0.60 (down to the darker bound's ×0.37 on
    real photos: grey-blue blotches in render.png). The shown lobe keeps σ = 1, and the plain skin between is untouched."""
    dark = np.array([0.06, 0.02, 0.015], np.float32)
    wrong, shown = _spot((80, 80), radius=15.0), _spot((180, 180), radius=15.0)
    photo = dark + 0.04 * shown[..., None]
    found = detail.detail_layer(*_plane_view(photo, dark, 0.04 * (wrong + shown)))
    layer, weight, scale = found.detail, found.weight, found.specular_scale
    assert weight[80, 80] > 0.99 and weight[180, 180] > 0.99
    bound = (1 - detail.DIFFUSE_SHARE) * 0.015 / 0.04
    assert abs(scale[80, 80] - bound) < 1e-3 and scale[180, 180] == 1.0 and scale[20, 200] == 1.0
    rim = (slice(60, 101), slice(60, 101))  # the lobe and its rim, where the high-pass of a floored ratio is steepest
    assert layer[rim].min() > 0.85, layer[rim].min()  # measured 0.91; before 0.60
    assert np.abs(layer[160:201, 160:201] - 1).max() < 0.02
    specular = detail.apply_specular_scale(0.35 * np.ones((SIZE, SIZE), np.float32), found)
    assert abs(specular[80, 80] - 0.35 * bound) < 1e-3 and abs(specular[180, 180] - 0.35) < 1e-6


def test_a_lash_line_reaches_the_albedo_round_the_eyes_without_a_halo_and_a_shadow_edge_stays_local() -> None:
    """A dark line 4 texels wide (the skin × 0.15: lashes over light skin) on each half of a plane the fit predicts
    as plain skin. Elsewhere the high-pass (SIGMA_UV, 1 texel at this size) keeps only its finest part, ×0.89;
    inside the lids' mask (top half) the wider band (LID_SIGMA_UV, 3 texels) keeps all of it (above the lower bound,
    ×0.14), and the skin beside it stays the fit's: the background leaves the line out (with it in, the skin beside
    the line came out ×1.35, a bright halo). A shadow edge the fit missed in the mask is taken only near the edge."""
    photo = np.broadcast_to(SKIN, (SIZE, SIZE, 3)).copy()
    photo[60:64] *= 0.15
    photo[190:194] *= 0.15
    lids = np.zeros((SIZE, SIZE), np.float32)
    lids[:128] = 1
    plain = detail.detail_layer(*_plane_view(photo)).detail
    found = detail.detail_layer(*_plane_view(photo), lids=lids).detail
    # measured: lids 0.150, elsewhere 0.887 (with or without the mask), beside the line 1.000
    assert found[60:64, 100].mean() == pytest.approx(0.15, abs=0.01) and plain[61:63, 100].mean() > 0.85
    assert np.allclose(found[190:194], plain[190:194])  # outside the mask: as before
    assert np.abs(found[40:60, 100] - 1).max() < 0.01 and np.abs(found[64:90, 100] - 1).max() < 0.01
    shadow = np.broadcast_to(SKIN, (SIZE, SIZE, 3)).copy()
    shadow[:, 100:] *= np.exp(-0.5)
    edge = detail.detail_layer(*_plane_view(shadow), lids=lids).detail[60, :, 0]
    # measured: ×1.19 and ×0.78 either side of the edge, within 1 % of 1 from 8 texels on
    assert np.abs(edge[:92] - 1).max() < 0.01 and np.abs(edge[108:] - 1).max() < 0.01


def test_the_lids_mask_covers_the_eye_contours_and_not_the_brows_or_cheeks(model) -> None:  # type: ignore[no-untyped-def]
    """On the head's UV islands, round both eyes' contours (embedding), soft-edged, clear of the brows, cheeks
    and nose."""
    from facestage.core.fit.embedding import load_embedding
    from facestage.core.fit.landmarks import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

    size = 1024
    lids = detail.lid_margins(model, size)
    raster = uvmaps.rasterize_uv(model.uvs.numpy(), model.face_uvs.numpy(), size)
    assert 0.0 < (lids > 0.5).mean() < 0.02 and (lids[~raster.inside] > 0.5).mean() < 0.05

    def at(ids: tuple[int, ...]) -> np.ndarray:
        uv = load_embedding().uv(model.uvs.numpy(), model.face_uvs.numpy(), ids)
        return lids[np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1), np.clip((uv[:, 0] * size).astype(int), 0, size - 1)]

    assert at(LEFT_EYE).min() > 0.5 and at(RIGHT_EYE).min() > 0.5
    assert at(LEFT_BROW).max() < 0.05 and at(RIGHT_BROW).max() < 0.05
    assert at((50, 280, 6, 4)).max() == 0.0  # cheeks, nose bridge, nose tip


def test_the_photos_lips_take_the_lip_colour_where_the_fitted_vermilion_misses_them() -> None:
    """Pink lips (the skin × (1, 0.6, 0.8)) 40 texels tall on a plane the fit predicts as plain skin, with the
    model's vermilion over their top half only: a fuller lip than the fitted one (fringe_shorthair_yaw's lower lip
    kept the skin's beige below the fitted vermilion, a pale band in render.png). With the photo's lip polygon in
    the view, the bottom half takes the same colour as the top; without it, none, and the top half's colour is
    diluted by the pink counted as skin round it."""
    from facestage.core.fit.landmarks import INNER_LIPS, OUTER_LIPS

    photo = np.broadcast_to(SKIN, (SIZE, SIZE, 3)).copy()
    photo[100:140, 60:196] *= np.array([1.0, 0.6, 0.8], np.float32)
    fitted = np.zeros((SIZE, SIZE), np.float32)
    fitted[100:120, 60:196] = 1
    points = np.zeros((478, 2))
    outer = [(60, 100), (196, 100), (196, 140), (60, 140)]  # the lips' outline (pixels), then a slit inside it
    for k, i in enumerate(OUTER_LIPS):
        points[i] = outer[min(k * 4 // len(OUTER_LIPS), 3)]
    points[list(INNER_LIPS)] = (128, 120)
    mask = detail.photo_vermilion(points, SIZE, SIZE)
    assert mask[100:140, 60:196].mean() > 0.97 and mask[:98].max() == 0 and mask[142:].max() == 0
    view, *mesh = _plane_view(photo)
    without = detail.detail_layer(view, *mesh, lips=fitted).lips
    view.lips = mask
    found = detail.detail_layer(view, *mesh, lips=fitted).lips
    top, bottom = found[110, 128], found[130, 128]
    # measured: top = bottom (0.00, −0.51, −0.22), the photo's pink; without: top (0.00, −0.29, −0.13), bottom 0
    assert np.allclose(top, np.log([1.0, 0.6, 0.8]), atol=0.02) and np.allclose(bottom, top, atol=0.02)
    assert np.abs(without[130, 128]).max() == 0.0 and without[110, 128, 1] > top[1] + 0.15
