"""The lips keep their own colour: the vermilion mask, and the low-frequency colour the detail layer gives it."""

from __future__ import annotations

import numpy as np

from facestage.core.fit import detail
from facestage.core.fit.embedding import load_embedding
from facestage.core.fit.landmarks import INNER_LIPS, OUTER_LIPS
from facestage.core.model import uvmaps

SIZE = 256


def _uv_of(model, ids: tuple[int, ...]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return load_embedding().uv(model.uvs.numpy(), model.face_uvs.numpy(), ids)


def test_the_vermilion_lies_between_the_lip_contours_on_the_mesh(model) -> None:  # type: ignore[no-untyped-def]
    """Inside the head's UV islands, soft-edged, covering the lips between their contours and not the cheeks."""
    size = 1024  # the default map: the lips are a dozen texels thick
    lips = detail.vermilion(model, size)
    raster = uvmaps.rasterize_uv(model.uvs.numpy(), model.face_uvs.numpy(), size)
    assert 0.0 < (lips > 0.5).mean() < 0.01  # a small part of the map
    assert (lips[~raster.inside] > 0.5).mean() < 0.05  # on the mesh's UV islands
    assert lips.max() > 0.99 and 0.0 < ((lips > 0.01) & (lips < 0.99)).sum() < (lips > 0.01).sum()  # a soft edge

    def at(uv: np.ndarray) -> np.ndarray:
        return lips[np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1), np.clip((uv[:, 0] * size).astype(int), 0, size - 1)]

    between = (_uv_of(model, OUTER_LIPS) + _uv_of(model, INNER_LIPS)) / 2  # mid-lip points
    assert np.median(at(between)) > 0.5
    assert at(_uv_of(model, (50, 280, 6, 152))).max() == 0.0  # cheeks, nose bridge, chin


def test_the_lips_take_their_colour_from_the_photo_and_a_light_colour_cancels() -> None:
    """A de-lit photo whose lips are pinker than the fit's (log ratio +0.2 blue, −0.2 green over the vermilion)
    gives the lips that colour, bounded; a colour cast over the whole face (a light the fit got slightly wrong)
    gives nothing; texels outside the lips are untouched."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    lips = (((xs - 128) / 40.0) ** 2 + ((ys - 128) / 12.0) ** 2 < 1).astype(np.float32)
    valid = np.ones((SIZE, SIZE), np.float32)
    cast = np.array([0.05, 0.0, -0.05], np.float32)  # everywhere: the light's colour
    pink = np.array([0.0, -0.2, 0.2], np.float32)
    log_ratio = np.broadcast_to(cast, (SIZE, SIZE, 3)) + lips[..., None] * pink
    colour = detail.lip_colour(log_ratio, valid, lips)
    inside = colour[lips > 0.5].mean(0)
    expected = pink - pink.mean()
    assert np.allclose(inside, expected, atol=0.02), inside
    assert np.abs(colour[lips == 0]).max() == 0.0
    flat = detail.lip_colour(np.broadcast_to(cast, (SIZE, SIZE, 3)).copy(), valid, lips)
    assert np.abs(flat).max() < 1e-6  # the cast alone: no lip colour
    strong = detail.lip_colour(log_ratio * 5, valid, lips)
    assert np.abs(strong).max() <= detail.LIP_CHROMA_BOUND + 1e-6  # bounded
    unseen = detail.lip_colour(log_ratio, np.zeros_like(valid), lips)
    assert np.abs(unseen).max() == 0.0  # nothing seen: nothing taken


def test_the_lip_colour_tints_and_never_brightens() -> None:
    """lip_colour is zero-mean over the channels, and lips only darker or brighter than the fit's (a shading
    error, dark lipstick of the skin's hue) get no colour."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    lips = (((xs - 128) / 40.0) ** 2 + ((ys - 128) / 12.0) ** 2 < 1).astype(np.float32)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, (SIZE, SIZE, 3)).astype(np.float32)
    brighter = noise + lips[..., None] * np.float32(0.5)
    colour = detail.lip_colour(brighter, np.ones((SIZE, SIZE), np.float32), lips)
    assert np.abs(colour.sum(-1)).max() < 1e-5
    assert np.abs(colour).max() < 0.01, np.abs(colour).max()
