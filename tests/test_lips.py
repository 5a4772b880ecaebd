"""The lips: the vermilion mask, the low-frequency colour the detail layer gives it, and lips that close where the
photo's do (fit/lips.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from facestage.core.fit import detail
from facestage.core.fit.embedding import load_embedding
from facestage.core.fit.landmarks import INNER_LIPS, OUTER_LIPS
from facestage.core.model import uvmaps

sys.path.insert(0, str(Path(__file__).parent))
from test_detail import SKIN, _plane_view  # noqa: E402  (the plane whose texel (i, j) is pixel (i, j))

SIZE = 256


def _oval_lips() -> np.ndarray:
    """(SIZE, SIZE) a vermilion mask for lip_colour: an 80 × 24 texel oval in the map's middle."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    return (((xs - 128) / 40.0) ** 2 + ((ys - 128) / 12.0) ** 2 < 1).astype(np.float32)


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
    lips = _oval_lips()
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
    strong = detail.lip_colour(log_ratio * 10, valid, lips)  # hue (0, −2, +2): beyond the bound
    assert np.abs(strong).max() == pytest.approx(detail.LIP_CHROMA_BOUND, abs=1e-6)  # clipped to it
    unseen = detail.lip_colour(log_ratio, np.zeros_like(valid), lips)
    assert np.abs(unseen).max() == 0.0  # nothing seen: nothing taken


def test_the_lips_keep_their_lightness_darker_bounded_and_brighter_only_as_far_as_sheen() -> None:
    """Lips darker than the skin round them in the de-lit photo (fringe_shorthair_yaw's red lips: −0.6 in log)
    come out that much darker, in every channel alike; darker than LIP_LIGHTNESS_BOUND stops there, and lips
    brighter than the skin round them (sheen the fit missed) brighten by at most its upper bound."""
    lips = _oval_lips()
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, (SIZE, SIZE, 3)).astype(np.float32)
    valid = np.ones((SIZE, SIZE), np.float32)
    darker, lighter = detail.LIP_LIGHTNESS_BOUND

    def inside(step: float) -> np.ndarray:
        return detail.lip_colour(noise + lips[..., None] * np.float32(step), valid, lips)[lips > 0.5].mean(0)

    assert np.allclose(inside(-0.5), -0.5, atol=0.01), inside(-0.5)
    assert np.allclose(inside(-1.5), -darker, atol=0.01), inside(-1.5)
    assert np.allclose(inside(0.5), lighter, atol=0.01), inside(0.5)
    # no step: nothing but the noise's local mean (the colour follows the photo where seen): measured 0.014
    assert np.abs(detail.lip_colour(noise, valid, lips)).max() < 0.02


def test_each_part_of_the_lips_keeps_its_own_colour_where_seen_and_the_unseen_part_takes_the_mean() -> None:
    """A deep red upper lip (log (0, −0.8, −0.6) against the skin) over a paler pink lower lip ((0, −0.3, −0.1)),
    as fringe_shorthair_yaw's: each half takes its own colour (one mean for both rendered the upper too light and
    the lower too red). The lower lip's rim, where the camera does not see it, takes the mean of the seen lips."""
    lips, valid = _oval_lips(), np.ones((SIZE, SIZE), np.float32)
    red, pink = np.array([0.0, -0.8, -0.6], np.float32), np.array([0.0, -0.3, -0.1], np.float32)
    upper = (np.arange(SIZE) < 128)[:, None, None]
    log_ratio = lips[..., None] * np.where(upper, red, pink)
    colour = detail.lip_colour(log_ratio, valid, lips)
    # measured: (0.00, −0.80, −0.60) and (0.00, −0.30, −0.10), 3 texels off the line between them
    assert np.allclose(colour[121, 128], red, atol=0.01) and np.allclose(colour[135, 128], pink, atol=0.01)
    valid[134:] = 0  # the lower lip's lower rim nobody sees: 4 σ from the seen lips, it is their mean
    hidden = detail.lip_colour(log_ratio, valid, lips)[139, 128]
    seen = (lips > 0.5) & (valid > 0)
    mean = (log_ratio[seen]).mean(0)
    assert np.allclose(hidden, mean, atol=0.05), (hidden, mean)


def test_a_colour_greener_than_the_skin_round_the_lips_is_not_taken_for_theirs() -> None:
    """Lips are at least as red as the skin round them. A moustache over the vermilion and a beard in the ring
    (glasses_man_frontal: dark, and greener than the ring) measure no lip colour at all; as red as the ring, by a
    hair less than LIP_MIN_REDNESS, they still do."""
    lips, valid = _oval_lips(), np.ones((SIZE, SIZE), np.float32)
    moustache = np.array([-1.0, -0.6, -0.8], np.float32)  # red − green = −0.4
    assert np.abs(detail.lip_colour(lips[..., None] * moustache, valid, lips)).max() == 0.0
    edge = np.array([-0.5, -0.5 - detail.LIP_MIN_REDNESS - 0.01, -0.5], np.float32)  # just inside the margin
    taken = detail.lip_colour(lips[..., None] * edge, valid, lips)[lips > 0.5].mean(0)
    assert taken.mean() == pytest.approx(edge.mean(), abs=0.01)


def test_lipstick_keeps_its_hue_far_beyond_skins() -> None:
    """dark_woman_smile_up's magenta lipstick: the de-lit photo's lips against the ring were (+0.20, −2.02,
    +0.33) in log. The lips take its hue up to LIP_CHROMA_BOUND per channel and its lightness: green far below red
    and blue, red and blue above the ring's, not the pale salmon a hue bounded at 0.4 gave."""
    lips = _oval_lips()
    magenta = np.array([0.196, -2.016, 0.33], np.float32)
    colour = detail.lip_colour(lips[..., None] * magenta, np.ones((SIZE, SIZE), np.float32), lips)[lips > 0.5].mean(0)
    hue = magenta - magenta.mean()  # (+0.69, −1.52, +0.83): green clipped to −1.0
    expected = np.clip(hue, -detail.LIP_CHROMA_BOUND, detail.LIP_CHROMA_BOUND) + magenta.mean()
    assert np.allclose(colour, expected, atol=0.01), colour
    assert colour[1] < colour[0] - 1.0 and colour[1] < colour[2] - 1.0


class _FrontalRun:
    """What close_lips and open_lids read of a stages.Reconstruction: the head model's mean identity with `expression`, seen
    from 0.6 m in front of its mouth by a 1000-px camera with a 2000-px focal length (its mouth about 150 px wide)."""

    def __init__(self, expression: dict[str, float]) -> None:
        import torch

        from facestage.core.model.camera import look_at
        from facestage.core.model.head import load_head_model

        self.model = load_head_model()
        self.faces = self.model.faces.long()
        self.identity = torch.zeros(self.model.n_identity)
        self.expression = torch.zeros(self.model.n_expressions)
        for name, value in expression.items():
            self.expression[self.model.expression_index(name)] = value
        self.world_from_camera = torch.as_tensor(look_at(np.array([0.0, -0.6, -0.067]), np.array([0.0, 0.0, -0.067])),
                                                 dtype=torch.float32)
        self.K_full = np.array([[2000.0, 0.0, 500.0], [0.0, 2000.0, 500.0], [0.0, 0.0, 1.0]])
        self.corrective = torch.zeros(self.model.n_vertices, 3)

    def rotation(self):  # type: ignore[no-untyped-def]
        import torch

        return torch.eye(3)

    def translation(self):  # type: ignore[no-untyped-def]
        import torch

        return torch.zeros(3)

    def world_vertices(self):  # type: ignore[no-untyped-def]
        return self.model.evaluate(self.identity, self.expression.clamp(0, 1)) + self.corrective

    def tensor(self, array):  # type: ignore[no-untyped-def]
        import torch

        return torch.as_tensor(np.asarray(array, dtype=np.float32))

    def camera_K(self, crop):  # type: ignore[no-untyped-def]
        import torch

        return torch.as_tensor(crop.K(self.K_full), dtype=torch.float32)

    def landmarks(self) -> np.ndarray:
        """(478, 2) the embedded landmarks of the current head, projected: what a perfect detector would give."""
        import torch

        from facestage.core.model.camera import project

        embedding = load_embedding()
        with torch.no_grad():
            corners = self.world_vertices()[self.faces[torch.as_tensor(embedding.faces)]]
            points = (corners * torch.as_tensor(embedding.bary, dtype=torch.float32)[..., None]).sum(1)
            return project(points, torch.as_tensor(self.K_full, dtype=torch.float32), self.world_from_camera)[0].numpy()


# Inner-lip landmarks facing each other across the mouth (upper, lower), corners excluded.
LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))


def test_lips_the_photo_shows_closed_close_over_the_seam_the_model_leaves_at_rest():
    """The mean head parts its lips a little at rest: rendered, a closed mouth had a black line of teeth and cavity.
    With the photo's inner lip contour closed (each upper point on its lower partner), mouthClose rises until the
    rendered opening is within the tolerance, and no further than one step past the first value that does."""
    from facestage.core.fit.lips import CLOSE_STEP, GAP_TOLERANCE_PX, close_lips

    run = _FrontalRun({})
    points = run.landmarks()
    for upper, lower in LIP_PAIRS:
        points[[upper, lower]] = points[[upper, lower]].mean(0)
    closure = close_lips(run, points)
    assert closure.photo < 0.05 and closure.rendered_before > 0.5, closure  # a seam a person sees: over half a pixel
    assert closure.start == 0.0 and 0.0 < closure.value <= 0.3 and closure.rendered_after <= GAP_TOLERANCE_PX
    unit = run.model.expression_index("mouthClose")
    assert float(run.expression[unit]) == pytest.approx(closure.value)
    run.expression[unit] = closure.value - CLOSE_STEP  # the step before did not close them yet
    assert close_lips(run, points).rendered_before > GAP_TOLERANCE_PX


def test_an_open_mouth_is_left_as_open_as_the_photo_shows_it():
    from facestage.core.fit.lips import close_lips

    run = _FrontalRun({"jawOpen": 0.3})
    closure = close_lips(run, run.landmarks())
    assert closure.photo > 5.0, closure  # wide open
    # The inner-lip contour lies inside the rendered opening (18 against 26 px): measured by it, the mouth closed by
    # mouthClose 0.1 before open mouths were left alone.
    assert closure.value == 0.0 and float(run.expression[run.model.expression_index("mouthClose")]) == 0.0


def _outline_point(mask: np.ndarray, centre: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Crop pixel coordinates of the last pixel of `mask` met walking from `centre` in steps of `step`: where a
    detector tracing the mask's outline would put a point."""
    reach = 0
    while True:
        x, y = (centre + (reach + 1) * step).astype(int)
        if not (0 <= x < mask.shape[1] and 0 <= y < mask.shape[0] and mask[y, x]):
            return centre + 0.5 + reach * step
        reach += 1


def _traced_inner_lips(run, points: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`points` with the 20 inner-lip landmarks moved onto the outline of the opening `run` renders through its
    lips: from the opening's centroid out to its last pixel, 20 directions evenly spread in angle on the opening
    stretched to a circle (what MediaPipe traces on a photo: the edge where lip meets teeth or tongue)."""
    from facestage.core.fit.lips import MouthOpening

    opening = MouthOpening(run, points, density=2.0, max_size=400)
    mask, crop = opening.mask(), opening.crop
    rows, cols = np.nonzero(mask)
    centre, half = np.array([cols.mean(), rows.mean()]), np.array([np.ptp(cols), np.ptp(rows)]) / 2 + 1
    out = points.copy()
    for j, landmark in enumerate(INNER_LIPS):  # the contour runs from one corner along the lower lip and back
        angle = math.pi - 2 * math.pi * j / len(INNER_LIPS)
        step = 0.25 * half * np.array([math.cos(angle), math.sin(angle)]) / half.max()
        out[landmark] = _outline_point(mask, centre, step) * (crop.side / crop.size) + [crop.x0, crop.y0]
    return out


def test_an_open_mouth_opens_to_the_inner_lip_contour_the_photo_shows():
    """The embedded inner-lip points are not on the opening's silhouette, which MediaPipe traces on a photo:
    fitted through them, open smiles rendered 0.64-0.86 of their contour's area. With the contour traced on a head
    whose upper lip is raised and lower lip lowered, open_lips, started from lips at rest, finds both."""
    from facestage.core.fit.lips import OPENING_UNITS, open_lips

    truth = {"mouthUpperUpLeft": 0.6, "mouthUpperUpRight": 0.6, "mouthLowerDownLeft": 0.4, "mouthLowerDownRight": 0.4}
    run = _FrontalRun({"jawOpen": 0.3, **truth})
    points = _traced_inner_lips(run, run.landmarks())
    for name in OPENING_UNITS:
        run.expression[run.model.expression_index(name)] = 0.0
    opening = open_lips(run, points)
    assert opening.before < 0.8 and opening.after > 0.9, opening
    for name, value in truth.items():
        assert abs(opening.values[name] - value) <= 0.15, (name, opening.values)
        assert float(run.expression[run.model.expression_index(name)]) == pytest.approx(opening.values[name])
    assert float(run.expression[run.model.expression_index("jawOpen")]) == pytest.approx(0.3)  # the jaw stays


def test_an_opening_the_units_cannot_shape_is_met_by_moving_the_lips_edges_alone():
    """A smile's opening is a crescent the model's opening units only approximate. With the contour traced on a head
    whose lips a funnel rounds (not one of open_lips' units), and the fit left at the plain opening, shape_opening
    moves the lips' edges until the rendered opening matches the contour (IoU over 0.9, from under 0.75), no vertex
    further than SHAPE_MAX_M; it moves nothing far from the mouth, and the mouth's rim still seals to the lips."""
    import torch

    from facestage.core.fit.lips import SHAPE_MAX_M, shape_opening
    from facestage.core.fit.teeth import run_mouth_vertices
    from facestage.core.model.head import parts as head_parts

    run = _FrontalRun({"jawOpen": 0.3, "mouthFunnel": 0.4})
    points = _traced_inner_lips(run, run.landmarks())
    run.expression[run.model.expression_index("mouthFunnel")] = 0.0
    shaping = shape_opening(run, points)
    assert shaping.before < 0.75 and shaping.after > 0.9, shaping
    assert 0.001 < shaping.largest_move_m < SHAPE_MAX_M + 1e-6, shaping
    moved = run.corrective.norm(dim=1)
    rest = run.model.evaluate(run.identity, run.expression.clamp(0, 1))
    centre = rest[torch.as_tensor(head_parts.mouth_rim(run.model)[1])].mean(0)
    far = (rest - centre).norm(dim=1) > 0.05  # beyond 5 cm of the mouth: nose tip, eyes, chin's underside, the rest
    assert float(moved[far].max()) == 0.0 and int((moved > 1e-4).sum()) > 20
    rim_mouth, rim_face = head_parts.mouth_rim(run.model)
    sealed = run_mouth_vertices(run)[torch.as_tensor(rim_mouth)] - run.world_vertices()[torch.as_tensor(rim_face)]
    assert float(sealed.abs().max()) < 1e-5


def test_the_lips_colour_reaches_the_whole_vermilion_seen_or_not() -> None:
    """A plane photo (tests/test_detail.py) with pink lips, of which the camera's trusted pixels show only the left
    half. The lips' colour is one measurement of the whole vermilion, so the hidden half takes it as the seen half
    does; before, only seen texels took it, and fringe_shorthair_yaw's turned-away upper lip and the inner rim of
    her lower lip stayed skin-beige. Skin outside the lips, seen or not, is untouched."""
    lips = _oval_lips()
    pink = np.array([0.0, -0.3, 0.1], np.float32)
    photo = SKIN * np.exp(lips[..., None] * pink)
    view, vertices, faces, raster = _plane_view(photo)
    view.trust[:, SIZE // 2:] = 0.0  # texel (i, j) is pixel (i, j): the right half is never seen
    layer = detail.detail_layer(view, vertices, faces, raster, lips=lips)
    albedo = detail.apply_detail(np.broadcast_to(SKIN, (SIZE, SIZE, 3)).astype(np.float32), layer)
    ratio = np.log(albedo / SKIN)
    seen, hidden = ratio[128, 100], ratio[128, 156]  # the oval's left and right halves
    assert layer.weight[128, 100] > 0.99 and layer.weight[128, 156] == 0.0
    assert np.allclose(seen, pink, atol=0.03), seen  # hue and lightness as measured, within the bounds
    assert np.allclose(hidden, seen, atol=1e-4), hidden
    halo = max(8, int(np.ceil(5 * detail.SIGMA_UV * SIZE)))  # the high-pass's halo round the lips' edge: 5 σ
    away = ~ndimage.binary_dilation(lips > 0, iterations=halo)  # past it (seen half)
    assert np.abs(ratio[away]).max() < 1e-4  # skin: seen and hidden alike untouched
