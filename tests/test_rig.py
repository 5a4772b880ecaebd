"""Relight rigs: the file format and its errors, the frames, the light physics, and CLI ≡ Blender.

The equivalence test is the contract of `facestage relight --rig`: the core render of a rig and a Cycles
render of the built scene after the "Apply Light Rig" operator's scene/relight.apply_rig show the same
image. Both are Monte Carlo estimates (Cycles 96 spp without denoising, the core 4 spp × 4 light samples
and 16 + 16 world directions); on this 128² head their noise alone limits the PSNR to about 33–36 dB
(measured), so the test asks for ≥ 30 dB with a uniform world and ≥ 28 dB with an HDRI (a small bright
patch, the noisiest case), plus the mean colour within 3 %: a wrong convention (spot cone, point-light
1/4π, area-light π·A, HDRI rotation or frame) moves the mean by far more than 3 %.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from blender_helpers import fake_result, run_bpy  # noqa: E402

from facestage.core.common.errors import FaceStageError  # noqa: E402
from facestage.core.io.rig import load_rig, parse_rig, rig_json  # noqa: E402

LIGHTS = [
    {"type": "area", "shape": "RECTANGLE", "size": 0.4, "size_y": 0.2, "position": [0.5, 0.3, -0.1], "power_w": 6,
     "color": [1, 0.9, 0.8]},
    {"type": "point", "position": [-0.6, 0.1, 0.0], "power_w": 8, "color": [0.6, 0.7, 1.0]},
    {"type": "spot", "position": [0.0, 0.8, -0.3], "spot_size_deg": 30, "spot_blend": 0.3, "power_w": 15},
]


@pytest.mark.parametrize("doc, message", [
    ([], "JSON object"),
    ({"frame": "world", "lights": []}, "frame"),
    ({"frame": "camera", "lights": [{"type": "sun", "position": [0, 0, 1], "power_w": 1}]}, "type 'sun'"),
    ({"frame": "camera", "lights": [{"type": "point", "power_w": 1}]}, "position"),
    ({"frame": "camera", "lights": [{"type": "point", "position": [0, 1], "power_w": 1}]}, "list of 3"),
    ({"frame": "camera", "lights": [{"type": "point", "position": [0, 0, 1]}]}, "power_w"),
    ({"frame": "camera", "lights": [{"type": "point", "position": [0, 0, 1], "power_w": -2}]}, "power_w"),
    ({"frame": "camera", "lights": [{"type": "area", "shape": "TRIANGLE", "position": [0, 0, 1], "power_w": 1}]}, "shape"),
    ({"frame": "camera", "lights": [{"type": "spot", "position": [0, 0, 1], "power_w": 1, "spot_size_deg": 400}]}, "spot_size_deg"),
    ({"frame": "camera", "lights": [{"type": "area", "position": [0, 0, 1], "target": [0, 0, 1], "power_w": 1}]}, "zero length"),
    ({"frame": "camera", "lights": [], "world": {"type": "uniform", "color": [0, 0, 0]}}, "nothing would be lit"),
    ({"frame": "head", "lights": [], "world": {"type": "hdri", "path": "missing.hdr"}}, "does not exist"),
])
def test_bad_rigs_are_refused_with_one_sentence(doc, message, tmp_path):
    with pytest.raises(FaceStageError, match=message) as error:
        parse_rig(doc, tmp_path)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")


def test_rig_file_round_trips_and_reports_missing_or_broken_files(tmp_path):
    path = tmp_path / "rig.json"
    path.write_text(json.dumps({"frame": "head", "lights": LIGHTS, "world": {"type": "uniform", "color": [0.1, 0.1, 0.1]}}))
    rig = load_rig(path)
    assert [light.type for light in rig.lights] == ["area", "point", "spot"] and rig.name == "rig"
    assert parse_rig(rig_json(rig), tmp_path) == rig
    with pytest.raises(FaceStageError, match="does not exist"):
        load_rig(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{frame")
    with pytest.raises(FaceStageError, match="not valid JSON"):
        load_rig(tmp_path / "bad.json")


def test_frames_put_lights_where_a_blender_user_would():
    from facestage.core.apps.rig import place

    result = fake_result()
    doc = {"frame": "camera", "lights": [{"type": "area", "position": [0.0, 0.0, 0.0], "power_w": 1},
                                         {"type": "spot", "position": [0.0, 0.0, 0.0], "direction": [0, 0, -1], "power_w": 1}]}
    placed = place(parse_rig(doc), result)
    camera = result.world_from_camera
    assert np.allclose(placed.lights[0].position, camera[:3, 3])  # the camera's own position
    to_centre = result.stage["centre"] - camera[:3, 3]
    assert np.allclose(placed.lights[0].direction, to_centre / np.linalg.norm(to_centre))  # unaimed: at the head
    assert np.allclose(placed.lights[1].direction, -camera[:3, 2])  # camera −z: where the camera looks
    head = place(parse_rig({"frame": "head", "lights": [{"type": "point", "position": [0.0, -1.0, 0.0], "power_w": 1}]}),
                 result)
    assert np.allclose(head.lights[0].position, result.rotation @ [0.0, -1.0, 0.0] + result.translation)  # in front


def test_point_spot_and_area_lights_deliver_blenders_irradiance_on_a_plane():
    """A floor 1 m under each light: E = P/(4π) for a point light, its spot cone's smoothstep, and for a small area
    light E = P/π (L = P/(π·A), E ≈ L·A/d²)."""
    from facestage.core.apps.rig import emitters, place
    from facestage.core.model import emitters as em

    result = fake_result()
    result.translation = np.zeros(3)
    result.rotation = np.eye(3)
    placed = place(parse_rig({"frame": "head", "lights": [
        {"type": "point", "position": [0, 0, 1], "power_w": 4 * math.pi},
        {"type": "spot", "position": [0, 0, 1], "direction": [0, 0, -1], "spot_size_deg": 60, "spot_blend": 0.5,
         "power_w": 4 * math.pi},
        {"type": "area", "shape": "DISK", "size": 0.01, "position": [0, 0, 1], "direction": [0, 0, -1],
         "power_w": math.pi}]}), result)
    lights = emitters(placed, dtype=torch.float64)
    assert lights.omni.tolist() == [True, True, False]
    area = em.areas(lights)
    assert float(lights.power[2, 0]) == pytest.approx(1.0)  # L·A = P/π
    assert float(area[2]) == pytest.approx(math.pi * 0.005 ** 2)
    floor = torch.tensor([[0.0, 0.0, 0.0], [math.tan(math.radians(25)), 0.0, 0.0], [math.tan(math.radians(35)), 0.0, 0.0]],
                         dtype=torch.float64)
    weight = em.spot_factor(lights, floor, torch.tensor([1]))[:, 0]
    cos_edge, smooth = em.spot_parameters(60, 0.5)
    t = (math.cos(math.radians(25)) - cos_edge) * smooth
    assert weight.tolist() == pytest.approx([1.0, t * t * (3 - 2 * t), 0.0])
    assert float(lights.power[0, 0]) == pytest.approx(1.0)  # I = P/(4π)


BLENDER_RIG = """
import sys
from pathlib import Path
import bpy
from facestage.scene.build import build_scene
from facestage.scene.relight import apply_rig
from blender_helpers import render_to_npy
bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
build_scene(Path(sys.argv[1]), bpy.context)
scene = bpy.context.scene
apply_rig(scene, sys.argv[2])
cycles = scene.cycles
cycles.device, cycles.samples, cycles.seed = "CPU", 96, 0
cycles.use_denoising = cycles.use_adaptive_sampling = False
cycles.max_bounces = 0  # direct light from the lamps and the world, as the core computes it
cycles.pixel_filter_type, cycles.filter_width = "BOX", 1.0
scene.render.film_transparent = True
render_to_npy(scene, sys.argv[3], sys.argv[4])
"""


@pytest.mark.blender
@pytest.mark.parametrize("frame, world, min_psnr", [("camera", "uniform", 30.0), ("head", "hdri", 28.0)])
def test_cli_and_blender_render_the_same_rig(frame, world, min_psnr, tmp_path, blender_env):
    pytest.importorskip("bpy")
    import cv2

    from facestage.cli import main
    from facestage.core.io.image import linear_to_srgb, load_png
    from facestage.core.io.result import load, save

    result = fake_result(size=(128, 128), distance=0.55)
    result.render_crop = (0.0, 0.0, 128.0, 128)  # render the whole photo (the fake has no face crop)
    folder = save(result, tmp_path / "OUT", force=True)
    sky = np.full((32, 64, 3), 0.05, np.float32)
    sky[6:12, 40:50] = (3.0, 2.5, 2.0)  # a small bright window: a wrong rotation or frame moves its light
    cv2.imwrite(str(tmp_path / "sky.hdr"), np.ascontiguousarray(sky[..., ::-1]))
    doc = {"frame": frame, "lights": LIGHTS,
           "world": {"type": "uniform", "color": [0.05, 0.05, 0.06]} if world == "uniform"
           else {"type": "hdri", "path": "sky.hdr", "strength": 1.0, "rotation_deg": 30}}
    (tmp_path / "rig.json").write_text(json.dumps(doc))
    assert main(["relight", str(folder), "--rig", str(tmp_path / "rig.json"), "-o", str(tmp_path / "relit.png")]) == 0
    run_bpy(BLENDER_RIG, blender_env, str(folder), str(tmp_path / "rig.json"),
            str(tmp_path / "cycles.exr"), str(tmp_path / "cycles.npy"), timeout=900)
    cycles = np.load(tmp_path / "cycles.npy")
    core = load_png(tmp_path / "relit.png")[..., :3]
    from facestage.core.apps.rerender import SILHOUETTE_RAMP, render_result

    _, alpha, _ = render_result(load(folder))
    # A relit shot fades the face into the relit photo over SILHOUETTE_RAMP inside its outline; F12 does not
    ramp = ndimage.distance_transform_edt(alpha > 0.5) > SILHOUETTE_RAMP * result.render_crop[3] + 1
    mask = (alpha > 0.999) & (cycles[..., 3] > 0.999) & ramp
    assert mask.sum() > 2000
    blender = linear_to_srgb(np.clip(cycles[..., :3], 0, None))
    psnr = 10 * math.log10(1 / float(((core - blender)[mask] ** 2).mean()))
    from facestage.core.io.image import srgb_to_linear

    ratio = srgb_to_linear(core)[mask].mean(0) / cycles[..., :3][mask].mean(0)
    assert np.all(np.abs(ratio - 1) < 0.03), ratio
    assert psnr >= min_psnr, psnr
