"""The mouth: teeth, cavity and tongue rigged to the jaw, their texture from the photo, and Cycles agreement."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from blender_helpers import fake_result, read_json_line, run_bpy  # noqa: E402
from test_eyes import SIZE, close_up, core_and_cycles, region  # noqa: E402

from facestage.core.common.metrics import psnr  # noqa: E402
from facestage.core.apps.rerender import render_crop, render_crop_scene  # noqa: E402
from facestage.core.fit.eyes import DELIGHT_OPTIONS  # noqa: E402
from facestage.core.fit.mouth import mouth_texture  # noqa: E402
from facestage.core.fit.teeth import photo_teeth  # noqa: E402
from facestage.core.io.image import linear_to_srgb  # noqa: E402
from facestage.core.io.result import save  # noqa: E402
from facestage.core.model.head import load_head_model  # noqa: E402
from facestage.core.model.head import parts as head_parts  # noqa: E402
from facestage.core.render import render  # noqa: E402
from facestage.core.render.crop import Crop  # noqa: E402

SMILE = {"jawOpen": 0.35, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "mouthUpperUpLeft": 0.5,
         "mouthUpperUpRight": 0.5, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3}


def open_mouth_result(model):  # type: ignore[no-untyped-def]
    """A fake result smiling with the teeth showing, seen from close in front of the mouth."""
    texture = head_parts.default_mouth_texture(model, 256)
    texture *= np.linspace(0.75, 1.0, 256)[None, :, None]  # a left-right gradient shows a mirrored layout
    teeth = head_parts.mouth_vertex_parts(model) == list(model.mouth_part_names).index("upper_teeth")
    target = model.mouth_vertices.numpy()[teeth].mean(0) + np.array([0.0, 0.0, -0.008])
    return close_up(target, SMILE, distance=0.3, focal=4.0, mouth_texture=texture.astype(np.float32),
                    teeth_shift=np.array([-0.002, 0.001]))


@pytest.mark.slow
@pytest.mark.blender
def test_core_render_matches_cycles_on_the_teeth_and_mouth(tmp_path, blender_env):
    pytest.importorskip("bpy")
    model = load_head_model()
    core, cycles, passes = core_and_cycles(open_mouth_result(model), tmp_path / "OUT", blender_env)
    mouth = region(passes, (2, 3), cycles)
    teeth = region(passes, (2,), cycles)
    assert teeth.sum() > 150 and mouth.sum() > 300  # the smile shows the teeth and the mouth behind them
    value = psnr(core, linear_to_srgb(cycles[..., :3]), mouth.astype(np.float32))
    print(f"mouth region: core vs Cycles PSNR {value:.2f} dB over {int(mouth.sum())} pixels")  # reported with -rP
    assert value >= 30.0, value


DRIVEN = """
import json, sys
from pathlib import Path
import bpy, numpy as np
from facestage.scene.build import build_scene

bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
build_scene(Path(sys.argv[1]), bpy.context)
face, mouth = bpy.data.objects["Face"], bpy.data.objects["Mouth"]

def evaluated(obj):
    bpy.context.view_layer.update()
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    world = np.array(obj.matrix_world)
    return (co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]).tolist()

facts = {"rest": evaluated(mouth), "materials": [s.material.name for s in mouth.material_slots],
         "keys": [k.name for k in mouth.data.shape_keys.key_blocks], "parent": mouth.parent.name,
         "eye_rotation": list(bpy.data.objects["Eye L"].rotation_euler), "face": evaluated(face),
         "face_keys": [k.name for k in face.data.shape_keys.key_blocks]}
face.data.shape_keys.key_blocks["PhotoLips"].value = 0.0
facts["face_unshaped"], facts["unshaped"] = evaluated(face), evaluated(mouth)
face.data.shape_keys.key_blocks["PhotoLips"].value = 1.0
face.data.shape_keys.key_blocks["jawOpen"].value = 1.0
facts["open"] = evaluated(mouth)
print("FACTS" + json.dumps(facts))
"""


@pytest.mark.blender
def test_blender_mouth_is_the_core_mouth_and_opens_with_the_faces_jaw_key(tmp_path, blender_env):
    """The Mouth object evaluates to the core's mouth, with the tongue's place and the lips' shape (fit/lips.py
    shape_opening); the face's PhotoLips key takes the lips' shape off the face and, through its driver, the mouth's
    rim; the face's jawOpen key drops the lower teeth."""
    from facestage.core.apps.parts import part_vertices
    from facestage.core.io.result import load

    pytest.importorskip("bpy")
    model = load_head_model()
    result = fake_result()
    result.gaze = np.radians([[10.0, -5.0], [8.0, -5.0]])
    result.teeth_shift = np.array([-0.003, 0.002, 0.003])  # the arch widened too
    result.tongue_shift = np.array([0.012, 0.003, 0.006, 0.004])  # Blender's Basis carries the fitted tongue place too
    rotation, translation = np.asarray(result.rotation, np.float64), np.asarray(result.translation, np.float64)
    lips = np.zeros((len(result.vertices), 3))
    rim = head_parts.mouth_rim(model)[1]
    lips[rim, 2] = 0.003 * np.sign(model.vertices.numpy()[rim, 2] - model.vertices.numpy()[rim, 2].mean())  # parted
    result.lips_shape = lips
    result.vertices = (np.asarray(result.vertices, np.float64) + lips @ rotation.T).astype(np.float32)
    folder = save(result, tmp_path / "OUT")
    facts = read_json_line(run_bpy(DRIVEN, blender_env, str(folder)), "FACTS")
    loaded = load(folder)
    assert loaded.tongue_shift is not None and np.allclose(loaded.tongue_shift, result.tongue_shift)
    assert loaded.lips_shape is not None and np.abs(loaded.lips_shape - lips).max() < 1e-6
    _, mouth = part_vertices(loaded, model)
    assert np.abs(np.asarray(facts["rest"]) - (mouth @ rotation.T + translation)).max() < 1e-5
    assert np.abs(np.asarray(facts["face"]) - loaded.vertices).max() < 1e-5
    unshaped = loaded.vertices - lips @ rotation.T
    assert np.abs(np.asarray(facts["face_unshaped"]) - unshaped).max() < 1e-5
    _, plain = part_vertices(loaded, model, vertices=unshaped)
    assert np.abs(np.asarray(facts["unshaped"]) - (plain @ rotation.T + translation)).max() < 1e-5
    assert np.abs(plain - mouth).max() > 0.002  # the rim did move with the key
    assert facts["face_keys"][-1] == facts["keys"][-1] == "PhotoLips" and len(facts["keys"]) == 54
    assert facts["materials"] == ["FaceTeeth", "FaceMouth"] and facts["parent"] == "Face"
    assert np.allclose(facts["eye_rotation"], [np.radians(5.0), 0.0, np.radians(10.0)], atol=1e-5)
    lower = head_parts.mouth_vertex_parts(model) == list(model.mouth_part_names).index("lower_teeth")
    upper = head_parts.mouth_vertex_parts(model) == list(model.mouth_part_names).index("upper_teeth")
    moved = (np.asarray(facts["open"]) - np.asarray(facts["rest"])) @ rotation  # back in the head frame
    assert moved[lower, 2].mean() < -0.01  # the face's jawOpen key drops the lower teeth ...
    assert np.abs(moved[upper]).max() < 1e-3  # ... and leaves the upper ones


def _standing_out_mm(model, identity, expression, mouth) -> float:  # type: ignore[no-untyped-def]
    """How far the mouth vertex furthest in front of the skin stands out of it, seen from straight in front."""
    from facestage.core.render.raytrace import Bvh

    face = model.evaluate(identity, expression)
    eye = torch.tensor([0.0, -1.0, 0.0]) + face.mean(0)  # 1 m in front of the head (Blender: the face looks to −Y)
    rays = mouth - eye
    hits = Bvh(face, model.faces).intersect(eye, rays)
    triangles = face[model.faces.long()[hits.face.clamp(min=0)]]
    normals = torch.linalg.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    out = hits.hit & ((normals * rays).sum(1) < 0) & (hits.t > rays.norm(dim=1))  # skin is hit behind the vertex
    return 1000 * float((hits.t - rays.norm(dim=1))[out].max()) if bool(out.any()) else 0.0


def test_the_mouth_stays_behind_the_skin_of_a_strong_identity():
    """hm08's mouth deltas, summed over a strong identity, push the lower teeth out below the chin (synthetic
    sampler seed 140: 60 mm in front of the neck seen from the front; seed 2: the cavity 2.5 mm through the skin
    under the lip, which moved MediaPipe's lips by 14 px). Tucked, nothing stands out by 1 mm, and the mean head's
    mouth is the model's own."""
    from facestage.core.apps.parts import mouth_shape
    from ground_truth import sample_scene

    model = load_head_model()
    for seed in (2, 140):
        scene = sample_scene(model, seed)
        identity, expression = torch.as_tensor(scene.identity).float(), torch.as_tensor(scene.expression).float()
        assert _standing_out_mm(model, identity, expression, model.mouth_evaluate(identity, expression)) > 2.0
        assert _standing_out_mm(model, identity, expression, mouth_shape(model, identity, expression)) < 1.0
    zero = torch.zeros(model.identity_basis.shape[0]), torch.zeros(len(model.expression_names))
    assert torch.equal(mouth_shape(model, *zero), model.mouth_evaluate(*zero))


def _seen_texels(model, name: str, seed: int, size: int = 256, count: int = 600):  # type: ignore[no-untyped-def]
    """(mouth texel parts (S, S), rows, cols and UVs (count, 2) of `count` random texels of the mouth part `name`):
    a "crop" of pixels in one row, each seeing one texel."""
    part = head_parts.mouth_texel_parts(model, size)
    rows, cols = np.nonzero(part == list(model.mouth_part_names).index(name))
    pick = np.random.default_rng(seed).choice(len(rows), count, replace=False)
    rows, cols = rows[pick], cols[pick]
    return part, rows, cols, np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], -1).astype(np.float32)


def test_mouth_texture_takes_seen_teeth_de_lit_and_keeps_the_interior_dark():
    model = load_head_model()
    size = 256
    names = list(model.mouth_part_names)
    part, _, _, uv = _seen_texels(model, "upper_teeth", 1, size)
    n = len(uv)
    albedo = np.array([0.8, 0.76, 0.68], np.float32)
    shading = 0.5
    passes = {"material": torch.full((1, n), 2), "uv": torch.from_numpy(uv[None]),
              "diffuse": torch.full((1, n, 3), shading), "ambient": torch.zeros(1, n, 3),
              "specular": torch.zeros(1, n, 3)}
    photo = np.broadcast_to(albedo * shading, (3, n, 3)).copy()
    texture, seen = mouth_texture(photo, {k: v.expand(3, *v.shape[1:]).clone() for k, v in passes.items()},
                                  model, size)
    upper = part == names.index("upper_teeth")
    lower = part == names.index("lower_teeth")
    assert np.allclose(np.median(texture[upper], axis=0), albedo, atol=0.02)  # seen teeth: photo ÷ shading
    assert np.allclose(np.median(texture[lower], axis=0), albedo, atol=0.02)  # unseen teeth: the seen teeth's colour
    cavity = part == names.index("cavity")
    assert np.allclose(np.median(texture[cavity], axis=0), head_parts.CAVITY_ALBEDO, atol=1e-3)  # dark interior
    assert 0 < seen < 0.5


def test_unseen_teeth_take_the_colour_of_the_pixels_that_show_teeth_not_of_the_lips_the_teeth_cover():
    """Placed teeth that cover the photo's lips or gum see red there: dreadlocks_man_smile's whole rows came back
    red, glasses_beard_man's pink. The texels a pixel saw keep what it saw; the unseen rest of the teeth take the
    median of the pixels photo_teeth marks."""
    model = load_head_model()
    size = 256
    names = list(model.mouth_part_names)
    part, rows, cols, uv = _seen_texels(model, "upper_teeth", 3, size)
    n = len(uv)
    tooth, lip, shading = np.array([0.8, 0.76, 0.68]), np.array([0.55, 0.22, 0.2]), 0.5
    is_tooth = np.arange(n) % 3 == 0  # a third of the tooth pixels show teeth, the rest lips
    passes = {"material": torch.full((3, n), 2), "uv": torch.from_numpy(np.broadcast_to(uv, (3, n, 2)).copy()),
              "diffuse": torch.full((3, n, 3), shading), "ambient": torch.zeros(3, n, 3),
              "specular": torch.zeros(3, n, 3)}
    photo = np.broadcast_to(np.where(is_tooth[:, None], tooth, lip) * shading, (3, n, 3)).astype(np.float32)
    lower = part == names.index("lower_teeth")
    shown = np.broadcast_to(is_tooth, (3, n)).copy()
    with_mask, _ = mouth_texture(photo, passes, model, size, shown_teeth=shown)
    without, _ = mouth_texture(photo, passes, model, size)
    assert np.allclose(np.median(with_mask[lower], axis=0), tooth, atol=0.02)
    assert np.allclose(np.median(without[lower], axis=0), lip, atol=0.02)  # every tooth pixel: the lips' red
    upper = np.median(with_mask[rows[~is_tooth], cols[~is_tooth]], axis=0)
    assert upper[0] / upper[1] > 1.4  # what a pixel saw stays where it saw it (the tooth: 1.05, a lip: 2.5)


def test_a_tongue_brighter_than_its_shading_allows_keeps_its_pink_in_the_texture():
    """open_smile_man: the fitted interior is shaded 0.39 where the photo's tongue is (0.75, 0.35, 0.32), so its
    de-lit samples are out of range; clipped per channel they became a whitish (0.95, 0.9, 0.8) and the mouth
    rendered grey-blue. Scaled as a whole they keep the tongue's hue."""
    model = load_head_model()
    size = 256
    _, rows, cols, uv = _seen_texels(model, "tongue", 2, size)
    n = len(uv)
    delit, shading = np.array([1.9, 0.9, 0.8], np.float32), 0.39
    passes = {"material": torch.full((3, n), 3), "uv": torch.from_numpy(np.broadcast_to(uv, (3, n, 2)).copy()),
              "diffuse": torch.full((3, n, 3), shading), "ambient": torch.zeros(3, n, 3),
              "specular": torch.zeros(3, n, 3)}
    texture, _ = mouth_texture(np.broadcast_to(delit * shading, (3, n, 3)).copy(), passes, model, size)
    colour = np.median(texture[rows, cols], axis=0)
    assert colour[0] > 0.8  # as bright as the range allows ...
    assert abs(colour[1] / colour[0] - 0.9 / 1.9) < 0.06 and abs(colour[2] / colour[0] - 0.8 / 1.9) < 0.06  # ... and pink


def test_de_lighting_inverts_the_final_render_inside_the_mouth():
    """fit_mouth's de-lighting render shades as render.png does: the world sampled with shadow rays. With the SH
    unoccluded (before), open_smile_man's cavity was de-lit under 9x the light render.png gives it, so its texture
    was 9x too dark and the open mouth rendered black. Here a final render of a known mouth, lit by a uniform
    world only, is de-lit back: the interior texels it shows come back at their albedo."""
    model = load_head_model()
    result = open_mouth_result(model)
    names = list(model.mouth_part_names)
    size = result.mouth_texture.shape[0]
    part = head_parts.mouth_texel_parts(model, size)
    result.mouth_texture[part == names.index("tongue")] = (0.45, 0.2, 0.18)
    result.mouth_texture[part == names.index("cavity")] = (0.35, 0.12, 0.1)
    result.stage = {k: np.zeros_like(v) if k == "i" else v for k, v in result.stage.items()}
    result.sh = np.zeros((3, 9))
    result.sh[:, 0] = 2.0  # a uniform grey world
    crop = Crop(0.0, 0.0, float(SIZE), SIZE)
    final = render_crop(result, crop, passes=True, background=np.zeros((SIZE, SIZE, 3), np.float32))
    photo, material = final.image.numpy(), final.passes["material"].numpy()
    shading = (final.passes["diffuse"] + final.passes["ambient"]).numpy().mean(-1)
    assert (material == 3).sum() > 300  # the interior is seen, and deep in the world's shadow
    assert np.median(shading[material == 3]) < 0.5 * np.median(shading[material == 0])
    passes = render(render_crop_scene(result, crop), DELIGHT_OPTIONS, torch.Generator().manual_seed(1)).passes
    texture, _ = mouth_texture(photo, passes, model, size)
    interior = (part == names.index("tongue")) | (part == names.index("cavity"))
    truth = result.mouth_texture
    changed = interior & (np.abs(texture - head_parts.default_mouth_texture(model, size)).max(-1) > 0.05)
    assert changed.sum() > 100  # texels the render shows, taken from it
    ratio = texture[changed, 0] / truth[changed, 0]
    print(f"de-lit interior / truth: median {np.median(ratio):.3f} over {int(changed.sum())} texels")
    assert abs(float(np.median(ratio)) - 1.0) < 0.15, np.median(ratio)


def test_the_tongue_moves_alone_forward_up_raised_and_widened_and_stays_behind_the_lips():
    """mouth_shape's tongue_shift moves the tongue's vertices only, forward out of the face (−Y) and up (+Z), raises
    its top by `raise` over its base, each vertex in proportion to its height (the lowest stays, the highest rises by
    all of it), and moves its sides out by `widen`, each vertex in proportion to its distance from the midline; the
    furthest place place_tongue tries keeps the tongue behind the lips and inside the cavity."""
    from facestage.core.apps.parts import mouth_shape
    from facestage.core.fit.mouth import TONGUE_FORWARD_MM, TONGUE_RAISE_MM, TONGUE_UP_MM, TONGUE_WIDEN_MM

    model = load_head_model()
    identity, expression = torch.zeros(model.n_identity), torch.zeros(model.n_expressions)
    expression[model.expression_index("jawOpen")] = 0.4
    tongue = head_parts.mouth_vertex_parts(model) == list(model.mouth_part_names).index("tongue")
    rest = mouth_shape(model, identity, expression).numpy()
    moved = mouth_shape(model, identity, expression, tongue_shift=np.array([0.004, 0.002])).numpy()
    assert np.array_equal(moved[~tongue], rest[~tongue])
    step = moved[tongue] - rest[tongue]
    assert np.allclose(np.median(step, axis=0), [0.0, -0.004, 0.002], atol=1e-6)
    raised = mouth_shape(model, identity, expression, tongue_shift=np.array([0.0, 0.0, 0.01])).numpy()
    assert np.array_equal(raised[~tongue], rest[~tongue])
    height = rest[tongue, 2]
    lift = raised[tongue] - rest[tongue]
    assert np.allclose(lift[:, :2], 0.0, atol=1e-7)
    expected = 0.01 * (height - height.min()) / (height.max() - height.min())
    inside = np.abs(lift[:, 2] - expected) < 1e-6  # the tongue's few tucked vertices aside (tucked_mouth)
    assert inside.mean() > 0.95, inside.mean()
    assert lift[np.argmin(height), 2] == pytest.approx(0.0, abs=1e-7)
    assert lift[np.argmax(height), 2] == pytest.approx(0.01, abs=1e-6)
    widened = mouth_shape(model, identity, expression, tongue_shift=np.array([0.0, 0.0, 0.0, 0.005])).numpy()
    assert np.array_equal(widened[~tongue], rest[~tongue])
    side = widened[tongue] - rest[tongue]
    half = np.abs(rest[tongue, 0]).max()
    inside = np.abs(side[:, 0] - 0.005 * rest[tongue, 0] / half) < 1e-6
    assert inside.mean() > 0.95 and np.allclose(side[inside, 1:], 0.0, atol=1e-7), inside.mean()
    assert np.abs(widened[tongue, 0]).max() == pytest.approx(half + 0.005, abs=1e-6)
    # The search's furthest place, with the jaw closed (Blender's Basis keeps the shift): still behind the lips.
    furthest = np.array([max(TONGUE_FORWARD_MM), max(TONGUE_UP_MM), max(TONGUE_RAISE_MM), max(TONGUE_WIDEN_MM)]) / 1000
    closed = torch.zeros(model.n_expressions)
    far = mouth_shape(model, identity, closed, tongue_shift=furthest).numpy()
    lips = model.evaluate(identity, closed).numpy()[head_parts.mouth_rim(model)[0]]
    assert far[tongue, 1].min() > lips[:, 1].min() + 0.004
    cavity = head_parts.mouth_vertex_parts(model) == list(model.mouth_part_names).index("cavity")
    assert far[tongue, 2].max() < far[cavity, 2].max() - 0.005  # the raised top stays under the palate
    assert np.abs(far[tongue, 0]).max() < np.abs(far[cavity, 0]).max() - 0.003  # the widened sides inside the cheeks


def test_the_teeth_widen_out_from_the_midline_and_nothing_else_moves():
    """shift_teeth's third value moves both rows' vertices out from the midline in proportion to their distance from
    it (the back teeth by all of it, the front ones by almost nothing), after moving each row up; the tongue and the
    cavity stay."""
    model = load_head_model()
    identity, expression = torch.zeros(model.n_identity), torch.zeros(model.n_expressions)
    rest = model.mouth_evaluate(identity, expression)
    moved = head_parts.shift_teeth(model, rest, np.array([-0.002, 0.001, 0.004])).numpy()
    rest = rest.numpy()
    part = head_parts.mouth_vertex_parts(model)
    names = list(model.mouth_part_names)
    upper, lower = part == names.index("upper_teeth"), part == names.index("lower_teeth")
    assert np.array_equal(moved[~(upper | lower)], rest[~(upper | lower)])
    step = moved - rest
    assert np.allclose(step[upper, 2], -0.002) and np.allclose(step[lower, 2], 0.001) and np.allclose(step[:, 1], 0.0)
    half = np.abs(rest[upper | lower, 0]).max()
    assert np.allclose(step[upper | lower, 0], 0.004 * rest[upper | lower, 0] / half, atol=1e-7)
    assert np.abs(step[upper | lower, 0]).max() == pytest.approx(0.004, abs=1e-7)


def test_interior_error_fits_the_interior_albedo_and_prefers_the_lit_place():
    """The tongue's place is scored with the interior at its best single albedo: a pink interior shaded 0.5 is
    explained exactly, and the same pixels shaded 0.03 (the model's deep tongue) cannot be at any albedo."""
    from facestage.core.fit.mouth import INTERIOR_MATERIAL_INDEX, interior_error

    size = 16
    pink = np.array([0.45, 0.2, 0.18], np.float32)
    photo = np.broadcast_to(pink * 0.5, (size, size, 3)).copy()
    region = np.ones((size, size), bool)

    def passes(shading: float) -> dict:  # type: ignore[type-arg]
        return {"material": torch.full((size, size), INTERIOR_MATERIAL_INDEX), "albedo": torch.zeros(size, size, 3),
                "diffuse": torch.full((size, size, 3), shading), "ambient": torch.zeros(size, size, 3),
                "specular": torch.zeros(size, size, 3)}

    assert interior_error(photo, passes(0.5), region) < 1e-8
    assert interior_error(photo, passes(0.03), region) > 0.05


def test_the_teeth_settle_where_the_textured_mouth_renders_closest_to_the_photo():
    """settle_teeth's search: a photo of a smile whose upper teeth sit 4 mm below the model's and whose arch is 4 mm
    wider, placed 3 mm too high (as place_teeth leaves the upper row when the photo's pink gum tops of the teeth are
    not found as teeth) on the model's arch, is rendered closest by the mouth textured from the photo with the teeth
    where they are; placed right, they stay."""
    from facestage.core.apps.rerender import render_crop
    from facestage.core.apps.parts import result_parts
    from facestage.core.fit.mouth import settle, textured_error

    model = load_head_model()
    truth = np.array([-0.004, 0.0, 0.004])
    result = open_mouth_result(model)
    result.teeth_shift = truth
    crop = Crop(0.0, 0.0, float(SIZE), SIZE)
    black = np.zeros((SIZE, SIZE, 3), np.float32)
    photo = render_crop(result, crop, background=black).image.numpy()
    scene = render_crop_scene(result, crop, background=black)
    everything = np.array([(0, 0), (SIZE, 0), (SIZE, SIZE), (0, SIZE)], float)
    shown = photo_teeth(linear_to_srgb(np.clip(photo, 0, 1)), everything)
    region = np.ones((SIZE, SIZE), bool)

    def error(shift: np.ndarray) -> float:
        def parts(texture):  # type: ignore[no-untyped-def]
            return result_parts(dataclasses.replace(result, teeth_shift=shift, mouth_texture=texture))
        return textured_error(scene, photo, shown, region, model, parts, torch.Generator().manual_seed(0))

    placed = np.array([-0.001, 0.0])
    print(f"textured error: right {error(truth):.5f}, too high {error(placed):.5f}, "
          f"arch too narrow {error(truth * [1, 1, 0]):.5f}")
    settled = settle(error, placed)
    assert settled[0] == pytest.approx(truth[0], abs=5e-4) and settled[1] == 0.0, settled
    assert abs(settled[2] - truth[2]) <= 0.002 + 1e-9 and settled[2] > 0, settled
    assert np.allclose(settle(error, truth), truth)


def test_a_lit_tongue_is_red_and_bright_and_teeth_or_shadow_are_not():
    """place_tongue moves the tongue only towards a lit interior: open_smile_man's tongue (pink, saturation ~0.4),
    not teeth photo_teeth leaves out (glasses_beard_man: the tongue came forward over his teeth) nor shadow."""
    from facestage.core.fit.mouth import lit_interior

    size = 40
    lips = np.array([[6.0, 12.0], [34.0, 12.0], [34.0, 30.0], [6.0, 30.0]])
    photo = np.full((size, size, 3), (0.80, 0.62, 0.52), np.float32)  # skin
    photo[12:18, 6:34] = (0.92, 0.90, 0.86)  # upper teeth
    photo[18:24, 6:34] = (0.85, 0.50, 0.48)  # lit tongue
    photo[24:30, 6:34] = (0.15, 0.05, 0.05)  # dark cavity
    lit = lit_interior(photo, lips)
    assert lit[19:23, 8:32].all() and not lit[13:17, 8:32].any() and not lit[25:29, 8:32].any()
    photo[18:24, 6:34] = (0.80, 0.76, 0.70)  # greyer, warmer teeth that photo_teeth's band leaves out
    assert not lit_interior(photo, lips)[13:29, 8:32].any()


def test_photo_teeth_are_the_bright_unsaturated_pixels_between_the_lips():
    size = 64
    crop = np.full((size, size, 3), [0.75, 0.55, 0.45], np.float32)  # skin
    crop[24:40, 12:52] = [0.7, 0.3, 0.3]  # lips
    crop[28:36, 16:48] = [0.08, 0.03, 0.03]  # dark mouth
    crop[28:32, 20:44] = [0.85, 0.83, 0.78]  # upper teeth
    lips = np.array([[16, 28], [48, 28], [48, 36], [16, 36]], np.float64)
    teeth = photo_teeth(crop, lips)
    assert teeth[29:31, 21:43].all() and teeth.sum() <= 4 * 24 + 10
    assert not teeth[33:36].any()  # the dark interior and the lips are not teeth
    crop[33:36, 20:44] = [0.9, 0.57, 0.53]  # a lit tongue, as light as the teeth (open_smile_man: saturation 0.41)
    teeth = photo_teeth(crop, lips)
    assert teeth[29:31, 21:43].all() and not teeth[33:36].any()
    crop[28:32, 20:44] = [0.85, 0.7, 0.55]  # the teeth under a warm cast (saturation 0.35) are still teeth
    crop[33:36, 20:44] = [0.08, 0.03, 0.03]
    assert photo_teeth(crop, lips)[29:31, 21:43].all()
