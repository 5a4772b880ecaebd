"""The eyes: gaze from the iris landmarks, the eye texture from the photo, the coat, and Cycles agreement.

The Cycles test builds a result folder with the real scene builders (scene/build.py: Face, Eye L/R with
their gaze rotation and cornea coat, Mouth) and renders it in a bpy subprocess with direct light only;
the core renders the same result with its parts (core/apps/parts.py). Their eye pixels must agree.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from blender_helpers import fake_result, run_bpy  # noqa: E402
from test_render import facing_light, stage_with  # noqa: E402

from facestage.core.apps.parts import result_parts  # noqa: E402
from facestage.core.common.metrics import psnr  # noqa: E402
from facestage.core.fit.eyes import IRIS, eye_texture, fit_gaze  # noqa: E402
from facestage.core.io.image import linear_to_srgb  # noqa: E402
from facestage.core.io.result import load, save  # noqa: E402
from facestage.core.model import camera, lightstage  # noqa: E402
from facestage.core.model.head import load_head_model  # noqa: E402
from facestage.core.model.head import parts as head_parts  # noqa: E402
from facestage.core.render import Material, Part, RenderOptions, RenderScene, render  # noqa: E402

SIZE = 128
CYCLES_SAMPLES = 256
# Blender has no triangular light: Cycles gets the equal-area disk (scene/lights.py). The coat mirrors each light, so
# its catch-light is a triangle in the core and a disk in Cycles; small lights keep that to a few pixels.
LIGHT_AREA = 0.05

CYCLES = r"""
import sys
from pathlib import Path
import bpy
from facestage.scene.build import build_scene
from blender_helpers import render_to_npy

folder, out, samples = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
build_scene(folder, bpy.context)
scene = bpy.context.scene
cycles = scene.cycles
cycles.device, cycles.samples, cycles.seed = "CPU", samples, 1
cycles.use_denoising = cycles.use_adaptive_sampling = False
cycles.max_bounces = 0  # direct light only, as the core renders with bounces=1
cycles.diffuse_bounces = cycles.glossy_bounces = cycles.transmission_bounces = cycles.volume_bounces = 0
cycles.pixel_filter_type, cycles.filter_width = "BOX", 1.0
scene.render.film_transparent = True
render_to_npy(scene, out + ".exr", out + ".npy")
"""


def close_up(target_model: np.ndarray, expression: dict[str, float], distance: float = 0.3, focal: float = 3.0,
             **fields: object):  # type: ignore[no-untyped-def]
    """A fake result (tests/blender_helpers.py) seen from `distance` in front of a model-space point, lit from the
    front, above and the side, with no environment light, and with the given expression and extra fields."""
    result = fake_result(size=(SIZE, SIZE))
    model = load_head_model()
    names = list(model.expression_names)
    weights = np.zeros(len(names))
    for name, value in expression.items():
        weights[names.index(name)] = value
    result.expression = weights
    shape = model.evaluate(torch.as_tensor(result.identity, dtype=torch.float32), torch.as_tensor(weights, dtype=torch.float32))
    rotation, translation = np.asarray(result.rotation), np.asarray(result.translation)
    result.vertices = (shape.double().numpy() @ rotation.T + translation).astype(np.float32)
    target = rotation @ target_model + translation
    eye = target + rotation @ np.array([0.05, -1.0, 0.12]) / np.linalg.norm([0.05, -1.0, 0.12]) * distance
    result.world_from_camera = camera.look_at(eye, target)
    result.K = camera.intrinsics(focal * SIZE, SIZE, SIZE)
    result.photo_srgb = np.zeros((SIZE, SIZE, 3), np.float32)
    result.render, result.mask = np.zeros((SIZE, SIZE, 3), np.float32), np.zeros((SIZE, SIZE), np.float32)
    result.sh = np.zeros((3, 9))
    probe = stage_with({0: (1.0, 1.0, 1.0)}, centre=tuple(target))
    front = rotation @ np.array([0.3, -1.0, 0.25])
    key = facing_light(probe, front)
    fill = facing_light(probe, rotation @ np.array([-0.8, -0.6, 0.1]), exclude=(key,))
    top = facing_light(probe, rotation @ np.array([0.0, -0.5, 1.0]), exclude=(key, fill))
    stage = stage_with({key: (2.2, 2.1, 2.0), fill: (0.7, 0.7, 0.8), top: (0.8, 0.75, 0.7)}, centre=tuple(target),
                       d=1.2, a=LIGHT_AREA)
    result.stage = {k: v.numpy().astype(np.float64) for k, v in lightstage.as_dict(stage).items()}
    result.lights = lightstage.blender_lights(stage)
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def core_and_cycles(result, folder: Path, blender_env) -> tuple[np.ndarray, np.ndarray, dict]:  # type: ignore[no-untyped-def]
    """(core sRGB image, Cycles RGBA (linear) image, core passes) of a result saved into folder."""
    save(result, folder, force=True)
    run_bpy(CYCLES, blender_env, str(folder), str(folder / "cycles"), str(CYCLES_SAMPLES), timeout=900)
    cycles = np.load(folder / "cycles.npy")
    loaded = load(folder)

    def tensor(array):  # type: ignore[no-untyped-def]
        return torch.as_tensor(np.asarray(array), dtype=torch.float32)

    scene = RenderScene(
        verts=tensor(loaded.vertices), faces=torch.as_tensor(loaded.faces).long(), uvs=tensor(loaded.uvs),
        face_uvs=torch.as_tensor(loaded.face_uvs).long(), diffuse=tensor(loaded.diffuse),
        specular=tensor(loaded.specular)[..., None], roughness=tensor(loaded.roughness)[..., None],
        K=tensor(loaded.K), world_from_camera=tensor(loaded.world_from_camera), width=SIZE, height=SIZE,
        stage=lightstage.from_dict(loaded.stage), parts=result_parts(loaded))
    out = render(scene, RenderOptions(spp=16, light_samples=16, edge_sampling=False, return_passes=True),
                 torch.Generator().manual_seed(0))
    return linear_to_srgb(out.image.numpy()), cycles, out.passes


def region(passes: dict, materials: tuple[int, ...], cycles: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """Pixels whose first hit is one of `materials` and whose 4-neighbours are too (no shared edges), covered in Cycles."""
    from scipy import ndimage

    mine = np.isin(passes["material"].numpy(), materials)
    return ndimage.binary_erosion(mine, iterations=1) & (cycles[..., 3] > 0.999)


@pytest.mark.slow
@pytest.mark.blender
def test_core_render_matches_cycles_in_the_eye_region(tmp_path, blender_env):
    pytest.importorskip("bpy")
    model = load_head_model()
    radius = float(head_parts.eye_radius(model, model.eye_vertices).mean())
    iris_deg = head_parts.iris_angle_deg(head_parts.IRIS_RADIUS_M, radius)
    texture = head_parts.default_eye_texture(256, iris_deg, iris=(0.04, 0.12, 0.17))
    texture[:, :, 0] *= np.linspace(0.7, 1.0, 256)[None, :]  # a left-right gradient shows a mirrored layout
    gaze = np.radians([[12.0, 6.0], [9.0, 6.0]])  # both eyes turned to the subject's left and up
    # The left eye's cornea (u > 0.5) keeps 40 % of its coat, as eyes_coat.png gives it where the photo showed less.
    coat = np.where(np.arange(256)[None, :] >= 128, 0.4, 1.0).repeat(256, 0).astype(np.float32)
    result = close_up(model.eye_centres.numpy().mean(0), {"eyeWideLeft": 0.3, "eyeWideRight": 0.3}, gaze=gaze,
                      eye_texture=texture, eye_coat=coat)
    core, cycles, passes = core_and_cycles(result, tmp_path / "OUT", blender_env)
    eyes = region(passes, (1,), cycles)
    assert eyes.sum() > 300  # both eyes, open, fill a good part of the frame
    cycles_srgb = linear_to_srgb(cycles[..., :3])
    iris = eyes & (core[..., 2] > core[..., 0] + 0.1)  # the blue iris is seen, not only sclera (~105 of ~380 pixels)
    assert iris.sum() > 60
    value = psnr(core, cycles_srgb, eyes.astype(np.float32))
    print(f"eye region: core vs Cycles PSNR {value:.2f} dB over {int(eyes.sum())} pixels")  # reported with -rP
    assert value >= 30.0, value
    # The catch-light of the coat: each eye's brightest pixel in Cycles is as bright in the core, and the left
    # eye's (40 % coat, on the image's right) is the dimmer one in both.
    peaks = []
    for half in (slice(0, SIZE // 2), slice(SIZE // 2, SIZE)):
        mine = np.zeros_like(eyes)
        mine[:, half] = eyes[:, half]
        brightest = np.unravel_index(np.argmax(np.where(mine, cycles_srgb.mean(-1), 0)), eyes.shape)
        assert abs(core[brightest].mean() - cycles_srgb[brightest].mean()) < 0.1
        peaks.append((core[brightest].mean(), cycles_srgb[brightest].mean()))
    assert peaks[1][0] < peaks[0][0] - 0.05 and peaks[1][1] < peaks[0][1] - 0.05, peaks


def test_gaze_fit_recovers_a_known_gaze_from_the_iris_landmarks():
    model = load_head_model()
    eyes = model.eye_evaluate()
    centres = model.eye_centres_of(eyes).double().numpy()
    radii = head_parts.eye_radius(model, eyes).double().numpy()
    rotation = camera.rotation_from_yaw_pitch_roll(15.0, -5.0, 3.0)
    translation = np.zeros(3)
    width = height = 800
    K = camera.intrinsics(camera.focal_from_35mm(85.0, width, height), width, height)
    world_from_camera = camera.look_at(np.array([0.0, -0.9, 0.0]), np.zeros(3))
    truth = np.radians([[-14.0, 9.0], [-11.0, 8.0]])  # both towards the subject's right, up, slightly converging
    iris = 0.0062
    points = np.zeros((478, 2))
    for k in range(2):
        depth = math.sqrt(radii[k] ** 2 - iris ** 2)
        local = np.array([[0, -depth, 0], [iris, -depth, 0], [0, -depth, iris], [-iris, -depth, 0], [0, -depth, -iris]])
        turned = local @ head_parts.gaze_rotation(torch.tensor(truth[k, 0]), torch.tensor(truth[k, 1])).numpy().T
        world = (turned + centres[k]) @ rotation.T + translation
        points[list(IRIS[k])] = camera.project(torch.as_tensor(world), torch.as_tensor(K),
                                               torch.as_tensor(world_from_camera))[0].numpy()
    fit = fit_gaze(points, K, world_from_camera, rotation, translation, centres, radii)
    assert np.abs(np.degrees(fit.gaze - truth)).max() < 1.0
    assert fit.iris_radius_m == pytest.approx(iris, rel=0.03)
    noisy = points + np.random.default_rng(0).normal(0, 0.3, points.shape)  # MediaPipe-sized jitter
    fit = fit_gaze(noisy, K, world_from_camera, rotation, translation, centres, radii)
    assert np.abs(np.degrees(fit.gaze - truth)).max() < 3.0


CROP = 64  # the synthetic eye crops below: CROP² pixels
IRIS_DEG = 23.0


def disc_crop(iris: tuple[float, float, float], specular: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor]]:
    """(uv, photo, passes) of a crop that sees the left eye's disc head-on (each pixel's UV walks across it),
    albedo `iris` within IRIS_DEG and a white sclera outside, shading 0.8, the modelled `specular` (none when None);
    the photo is albedo × shading, with no reflection."""
    u = np.linspace(0.75 - 0.09, 0.75 + 0.09, CROP)
    uv = np.stack(np.meshgrid(u, np.linspace(0.5 + 0.09, 0.5 - 0.09, CROP)), -1).astype(np.float32)
    angle = np.hypot(uv[..., 0] - 0.75, uv[..., 1] - 0.5) / head_parts.EYE_UV_FRONT * 90
    truth = np.where((angle < IRIS_DEG)[..., None], iris, [0.7, 0.68, 0.66]).astype(np.float32)
    shading = np.full((CROP, CROP, 3), 0.8, np.float32)
    specular = np.zeros((CROP, CROP, 3), np.float32) if specular is None else specular
    passes = {"material": torch.ones(CROP, CROP, dtype=torch.long), "uv": torch.from_numpy(uv),
              "diffuse": torch.from_numpy(shading), "ambient": torch.zeros(CROP, CROP, 3),
              "specular": torch.from_numpy(specular)}
    return uv, truth * shading, passes


def test_eye_texture_takes_the_photo_iris_de_lit_and_leaves_out_catch_lights():
    _, photo, passes = disc_crop((0.05, 0.15, 0.2))
    photo[30:33, 36:39] = 1.0  # a catch-light the fitted light does not explain
    texture, coat, seen = eye_texture(photo, passes, IRIS_DEG, size=512)
    assert coat.min() > 0.999  # nothing modelled to reflect: the coat stays whole
    _, t_angle, _ = head_parts.eye_texture_angles(512)
    left = np.arange(512)[None, :] >= 256
    in_iris = left & (t_angle < 0.8 * IRIS_DEG)
    assert np.allclose(np.median(texture[in_iris], axis=0), [0.05, 0.15, 0.2], atol=0.01)  # de-lit: ÷ shading
    assert texture[in_iris].max() < 0.3  # the catch-light is not painted into the iris
    sclera = left & (t_angle > 1.3 * IRIS_DEG) & (t_angle < 40)
    assert np.allclose(np.median(texture[sclera], axis=0), [0.7, 0.68, 0.66], atol=0.02)
    right_iris = ~left & (t_angle < 0.8 * IRIS_DEG)
    assert np.allclose(np.median(texture[right_iris], axis=0), [0.05, 0.15, 0.2], atol=0.02)  # the unseen eye borrows
    assert 0.4 < seen < 0.6  # the left eye's iris: half of both


def test_the_sclera_beside_the_iris_is_kept_where_the_lids_darken_its_rings():
    """The opening shows the eye's middle band; above and below it the eyeball's pixels see the lids' dark margins
    and lashes (albedo 0.03), 67-100 % of every ring past the iris. The white sclera beside the iris is brighter
    than 1.6 × those rings' median, but it is not a catch-light: those lie on the cornea (CORNEA_RADII). Measured:
    0.54 (the ring prior pulls it from 0.7); 0.03, the lids' colour, when the test dropped it."""
    _, photo, passes = disc_crop((0.05, 0.15, 0.2))
    photo[np.abs(np.arange(CROP) - CROP / 2 + 0.5) > 12] = 0.03 * 0.8
    texture, _, _ = eye_texture(photo, passes, IRIS_DEG, size=512)
    _, t_angle, _ = head_parts.eye_texture_angles(512)
    left = np.arange(512)[None, :] >= 256
    middle = np.abs(np.arange(512)[:, None] - 255.5) < 4
    beside = left & middle & (t_angle > 1.15 * IRIS_DEG) & (t_angle < 1.45 * IRIS_DEG)
    assert np.median(texture[beside], axis=0).min() > 0.45


def test_a_reflection_the_photo_does_not_show_is_taken_off_the_coat_not_out_of_the_iris():
    # The fitted world mirrored in the cornea (a 0.04 veil) and a fitted catch-light (2.0) where the photo shows
    # a brown iris with neither. With the full coat the de-lit iris clips to the albedo floor in green and blue and
    # renders grey, (0.048, 0.044, 0.044), over a photo of (0.048, 0.028, 0.019); the coat must give way where the
    # photo cannot hold it.
    specular = np.full((CROP, CROP, 3), 0.04, np.float32)
    specular[26:30, 26:30] = 2.0  # inside the iris, left of and above its centre
    uv, photo, passes = disc_crop((0.06, 0.035, 0.024), specular)
    texture, coat, _ = eye_texture(photo, passes, IRIS_DEG, size=512)
    _, t_angle, _ = head_parts.eye_texture_angles(512)
    left = np.arange(512)[None, :] >= 256
    # The veil: σ = 0.75 · 0.0192 / 0.04 = 0.36 over the iris (analytic), the whole coat on the bright sclera.
    in_iris = left & (t_angle < 0.6 * IRIS_DEG)
    assert np.median(coat[in_iris]) == pytest.approx(0.36, abs=0.02)
    sclera = left & (t_angle > 1.3 * IRIS_DEG) & (t_angle < 40)
    assert np.median(coat[sclera]) > 0.99
    # The wrong catch-light keeps only the floor, 0.15, at its centre (pixel (27.5, 27.5) → its UV).
    centre = uv[27, 27] / 2 + uv[28, 28] / 2
    x, y = int(centre[0] * 512), int((1 - centre[1]) * 512)
    assert coat[y, x] < 0.2
    # Rendered back (texture · shading + coat · veil), the iris is the photo's, not the clipped grey.
    rendered = np.median(texture[in_iris], axis=0) * 0.8 + np.median(coat[in_iris]) * 0.04
    assert np.allclose(rendered, [0.048, 0.028, 0.0192], rtol=0.1), rendered
    assert coat[:, :256].min() > 0.999  # the unseen right eye keeps its coat


def test_coated_parts_shade_the_same_with_both_backends_and_carry_gradients():
    model = load_head_model()
    eyes = model.eye_evaluate().clone().requires_grad_(True)
    texture = torch.full((8, 8, 3), 0.5, requires_grad=True)
    material = Material(texture, torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.5), coat=1.0, coat_roughness=0.2)
    part = Part(eyes, model.eye_faces, model.eye_uvs, model.eye_face_uvs, material)
    stage = stage_with({facing_light(stage_with({0: (1, 1, 1)}), (0.3, -1.0, 0.4)): (3.0, 3.0, 3.0)})
    K = torch.as_tensor(camera.intrinsics(24 * 6.0, 24, 24), dtype=torch.float32)
    wfc = torch.as_tensor(camera.look_at(np.array([0.03, -0.6, 0.0]), np.array([0.03, 0.0, 0.0])), dtype=torch.float32)
    far = torch.tensor([[0.0, 5.0, 0.0], [0.01, 5.0, 0.0], [0.0, 5.0, 0.01]])  # the head itself out of the way
    images = []
    for backend in ("warp", "torch"):
        scene = RenderScene(far, torch.tensor([[0, 1, 2]]), torch.zeros(3, 2), torch.zeros(1, 3).long(),
                            torch.ones(1, 1, 3), torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.5), K, wfc, 24, 24,
                            stage=stage, parts=[part])
        out = render(scene, RenderOptions(spp=4, light_samples=4, backend=backend, edge_sampling=False),
                     torch.Generator().manual_seed(3))
        images.append(out.image)
    assert images[0].max() > 0.05
    assert torch.allclose(images[0], images[1], atol=2e-4)
    images[0].sum().backward()
    assert texture.grad is not None and texture.grad.abs().sum() > 0
    assert eyes.grad is not None and torch.isfinite(eyes.grad).all() and eyes.grad.abs().sum() > 0
    # With the coat off, the base is brighter away from the highlight (the coat takes its Fresnel share).
    bare = Material(texture.detach(), material.specular, material.roughness)
    scene.parts = [Part(eyes.detach(), model.eye_faces, model.eye_uvs, model.eye_face_uvs, bare)]
    without = render(scene, RenderOptions(spp=4, light_samples=4, edge_sampling=False), torch.Generator().manual_seed(3))
    assert without.image.sum() != pytest.approx(images[0].detach().sum().item(), rel=1e-3)


def test_result_round_trips_gaze_teeth_and_part_textures(tmp_path):
    result = fake_result()
    result.gaze = np.radians([[5.0, -3.0], [4.0, -2.5]])
    result.teeth_shift = np.array([-0.002, 0.001, 0.003])
    result.tongue_shift = np.array([0.008, 0.003, 0.012, 0.004])
    result.eye_texture = np.full((16, 16, 3), 0.3, np.float32)
    result.mouth_texture = np.full((16, 16, 3), 0.6, np.float32)
    loaded = load(save(result, tmp_path / "OUT"))
    assert np.allclose(loaded.gaze, result.gaze, atol=1e-6)
    assert np.allclose(loaded.teeth_shift, result.teeth_shift, atol=1e-7)
    assert np.allclose(loaded.tongue_shift, result.tongue_shift, atol=1e-7)
    assert np.allclose(loaded.eye_texture, 0.3, atol=3e-3) and np.allclose(loaded.mouth_texture, 0.6, atol=3e-3)
    assert (tmp_path / "OUT" / "eyes.png").is_file() and (tmp_path / "OUT" / "mouth.png").is_file()


def test_a_result_written_before_the_tongue_was_raised_loads_with_it_unraised(tmp_path):
    """scene.json files written before the tongue's "raise" and "widen" and the teeth's "widen" existed carry
    forward and up, upper and lower only: they load with the tongue unraised and unwidened and the teeth's arch as
    the model's, and a malformed raise is a clear error."""
    import json

    from facestage.core.common.errors import FaceStageError

    result = fake_result()
    result.teeth_shift = np.array([-0.002, 0.001])
    result.tongue_shift = np.array([0.008, 0.003, 0.012])
    folder = save(result, tmp_path / "OUT")
    doc = json.loads((folder / "scene.json").read_text())
    assert doc["mouth"]["tongue_shift_m"] == {"forward": 0.008, "up": 0.003, "raise": 0.012, "widen": 0.0}
    assert doc["mouth"]["teeth_shift_m"] == {"upper": -0.002, "lower": 0.001, "widen": 0.0}
    del doc["mouth"]["tongue_shift_m"]["raise"], doc["mouth"]["tongue_shift_m"]["widen"]
    del doc["mouth"]["teeth_shift_m"]["widen"]
    (folder / "scene.json").write_text(json.dumps(doc))
    assert np.allclose(load(folder).tongue_shift, [0.008, 0.003, 0.0, 0.0])
    assert np.allclose(load(folder).teeth_shift, [-0.002, 0.001, 0.0])
    doc["mouth"]["tongue_shift_m"]["raise"] = "high"
    (folder / "scene.json").write_text(json.dumps(doc))
    with pytest.raises(FaceStageError, match="raise"):
        load(folder)


def test_the_lips_shape_is_saved_sparse_and_a_malformed_one_is_refused(tmp_path):
    """scene.json keeps the lips' shape as the moved vertices' ids and offsets; it loads back whole (zeros
    elsewhere), a result without one loads without one, and an id past the mesh is a clear error."""
    import json

    from facestage.core.common.errors import FaceStageError

    result = fake_result()
    assert load(save(result, tmp_path / "PLAIN")).lips_shape is None
    lips = np.zeros((len(result.vertices), 3))
    lips[[3, 7]] = [[0.001, -0.002, 0.0005], [0.0, 0.0, -0.003]]
    result.lips_shape = lips
    folder = save(result, tmp_path / "OUT")
    doc = json.loads((folder / "scene.json").read_text())
    assert doc["lips_shape_m"]["ids"] == [3, 7]
    assert np.abs(load(folder).lips_shape - lips).max() < 1e-7
    doc["lips_shape_m"]["ids"] = [3, len(lips)]
    (folder / "scene.json").write_text(json.dumps(doc))
    with pytest.raises(FaceStageError, match="lips_shape_m"):
        load(folder)


def _eyeball_contours(run, points: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`points` with each eye's 16 contour landmarks moved onto the outline of the eyeball `run` renders through its
    lids: rays from the opening's centroid, 16 directions, out to its last pixel (what a detector tracing the lid
    margins would give)."""
    from facestage.core.fit.eyes import eye_crop
    from facestage.core.fit.lids import EYES
    from facestage.core.fit.teeth import crop_rays
    from facestage.core.render.raytrace import Bvh
    from test_lips import _outline_point

    model = run.model
    crop = eye_crop(points, density=2.0, max_size=400)
    eyes = head_parts.turned_eyes(model, model.eye_evaluate(run.identity), torch.zeros(2, 2))
    head = run.world_vertices()
    bvh = Bvh(torch.cat([head, eyes]), torch.cat([run.faces, model.eye_faces.long() + model.n_vertices]))
    hits = bvh.intersect(*crop_rays(run, crop))
    face = hits.face.clamp_min(0).long() - run.faces.shape[0]
    right = (model.eye_faces.long()[face.clamp_min(0), 0] >= eyes.shape[0] // 2)
    out = points.copy()
    for k, eye in enumerate(EYES):
        mask = (hits.hit & (face >= 0) & (right == bool(k))).numpy().reshape(crop.size, crop.size)
        rows, cols = np.nonzero(mask)
        centre = np.array([cols.mean(), rows.mean()])
        for j, landmark in enumerate(eye[3]):
            step = 0.5 * np.array([math.cos(2 * math.pi * j / 16), math.sin(2 * math.pi * j / 16)])
            out[landmark] = _outline_point(mask, centre, step) * (crop.side / crop.size) + [crop.x0, crop.y0]
    return out


def test_lids_open_to_the_eye_contour_the_photo_shows():
    """The embedded eye-contour points lie on the lid skin outside its margin, so the landmark fit left the
    rendered eyes narrow (65-75 % of the contour's area on two photos). With contours traced on a head whose left
    eye is wide open and right eye half shut, open_lids, started from open lids at rest, finds each eye's lids."""
    from test_lips import _FrontalRun

    from facestage.core.fit.lids import EyeOpenings, open_lids

    truth = {"eyeWideLeft": 0.5, "eyeBlinkRight": 0.3}
    run = _FrontalRun(truth)
    points = _eyeball_contours(run, run.landmarks())
    run.expression.zero_()
    before = EyeOpenings(run, points).overlaps()
    fitted = open_lids(run, points)
    value = {name: float(run.expression[run.model.expression_index(name)])
             for name in ("eyeWideLeft", "eyeBlinkLeft", "eyeWideRight", "eyeBlinkRight")}
    print(value, before, fitted)
    # From rest, 0.76 and 0.45; at the truth, 0.93 and 0.79 (16 traced points cut the half-shut eye's corners).
    assert (fitted > before + 0.15).all(), (before, fitted)
    assert abs(value["eyeWideLeft"] - 0.5) <= 0.1 and value["eyeBlinkLeft"] == 0.0
    assert abs(value["eyeBlinkRight"] - 0.3) <= 0.1 and value["eyeWideRight"] == 0.0
