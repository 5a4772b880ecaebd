"""Sets of synthetic heads for learning and measuring the geometry: training views, held-out and tuning scenes.

Three kinds of set, drawn from disjoint seeds so that nothing measured for a report was ever learned from:

* training views (`training_views`): many heads, each seen in a few views, at moderate resolution and
  sample count. Identity from the prior at a random overall scale (0.2–0.9 standard deviations), mild to moderate expressions, yaw ±45°, pitch ±20°, roll ±10°, focal
  24–135 mm (35 mm equivalent), every skin type, one to three lights. The heads whose index is a multiple of
  `VALIDATION_EVERY` are the validation split, used only to calibrate the prior, never to learn the landmarks.
* held-out scenes (`heldout_scene`): the benchmark's heads (bench/geometry.py), at the resolution and
  samples of bench/accuracy.py, cycling through identity scales 0.35, 0.5 and 0.7 standard deviations.
* tuning scenes (`heldout_scene(..., kind="tuning")`): drawn exactly as the held-out scenes, from other seeds,
  for choosing the fit's settings (`bench/geometry.py --set tuning`) without looking at what is reported.

Why not the prior's full scale: the identity basis was built from MakeHuman's local modifiers drawn
independently over their whole range, so a head drawn at one standard deviation in every component is a
caricature (MediaPipe misplaces its points on it by 10–16 % of the eye distance), and the unfitted mean head
is 5–7 mm from it. The outside evaluation's heads were 2.4 mm from the mean head, which this prior reaches at
about 0.35 standard deviations; 0.35 is where beating the mean head is hardest, 0.7 where the faces are
unusual but still faces.

Rendering uses the project's own renderer by default (`render_core`: core/render with the scene's lights on the
light stage, seconds a view, no Blender), or tools/synthetic.py (Cycles, the bpy module; `--renderer cycles`).
Everything is cached under the temp folder, keyed on the generator's digest, so a changed renderer (eyes, teeth,
hair) re-renders and a re-run of the same generator reuses every image. MediaPipe's landmarks are cached beside
each image.

    python tools/head_sets.py --heldout 24 [--training-heads 240] [--renderer core|cycles]   (render into the cache)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ground_truth import MILD_EXPRESSIONS, HEAD_HEIGHT_M, Light, Scene, camera_for, is_rendered, random_lights
from synthetic import throwaway_blender_env

log = logging.getLogger(__name__)
TOOLS = Path(__file__).resolve().parent

SAMPLER_VERSION = 2  # bump when a sampler below changes what it draws
TRAINING_SEED = 20261201
HELDOUT_SEED = 70000
SCENE_SEEDS = {"heldout": HELDOUT_SEED, "tuning": 90000}  # benchmark-style sets: what is reported, what is tuned on
VALIDATION_EVERY = 5
TRAINING_SIZE, TRAINING_SAMPLES, TRAINING_MAP = 384, 8, 256
HELDOUT_SIZE, HELDOUT_SAMPLES, HELDOUT_MAP = 512, 16, 512
HELDOUT_SCALES = (0.35, 0.5, 0.7)
# Expressions beyond the mild set that a portrait commonly shows, at moderate strength.
PORTRAIT_EXPRESSIONS = (("mouthSmileLeft", "mouthSmileRight"), ("jawOpen",), ("eyeBlinkLeft", "eyeBlinkRight"),
                        ("browInnerUp",), ("mouthSmileLeft", "mouthSmileRight", "jawOpen"))


def _skin(rng: np.random.Generator) -> tuple[float, float]:
    """(melanin, haemoglobin) across Fitzpatrick types I–VI (melanin 0.05 … 2.4 on core/model/skin.py's scale)."""
    return float(rng.uniform(0.05, 2.4) if rng.random() < 0.6 else rng.uniform(0.05, 0.9)), float(rng.uniform(0.2, 0.8))


def _lights(rng: np.random.Generator) -> tuple[list[Light], list[float]]:
    lights = random_lights(rng, azimuth_deg=75.0, elevation_deg=(-10.0, 55.0), size_m=(0.05, 1.0))
    ambient = list(np.full(3, rng.uniform(0.03, 0.09)) * (1.0 + rng.uniform(-0.1, 0.1, size=3)))
    return lights, ambient


def _expression(rng: np.random.Generator, names: list[str], strong: bool) -> np.ndarray:
    expression = np.zeros(len(names))
    mild = [names.index(n) for n in MILD_EXPRESSIONS if n in names]
    for index in rng.choice(mild, size=int(rng.integers(0, 4)), replace=False):
        expression[index] = rng.uniform(0.0, 0.35)
    if strong:
        group = PORTRAIT_EXPRESSIONS[int(rng.integers(len(PORTRAIT_EXPRESSIONS)))]
        level = rng.uniform(0.2, 0.7)
        for name in group:
            if name in names:
                expression[names.index(name)] = level
    return expression


def _camera(rng: np.random.Generator, size: int, focal_range: tuple[float, float], fraction: tuple[float, float]
            ) -> tuple[float, np.ndarray, np.ndarray]:
    focal_mm = float(math.exp(rng.uniform(math.log(focal_range[0]), math.log(focal_range[1]))))
    distance = focal_mm / 36.0 * size * HEAD_HEIGHT_M / (rng.uniform(*fraction) * size)
    offset = tuple(float(v) for v in rng.uniform(-0.06, 0.06, size=2) * size)
    K, world_from_camera = camera_for(focal_mm, size, size, distance, offset)  # type: ignore[arg-type]
    return focal_mm, K, world_from_camera


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    from facestage.core.model.camera import rotation_from_yaw_pitch_roll

    return rotation_from_yaw_pitch_roll(yaw, pitch, roll)


@dataclass(frozen=True)
class View:
    """One training image: which head it shows (its maps are shared by the head's views) and the scene."""

    head: int
    view: int
    scene: Scene

    @property
    def validation(self) -> bool:
        return self.head % VALIDATION_EVERY == 0


def training_views(model: Any, heads: int, views_per_head: int = 2) -> list[View]:
    """The training set's scenes: deterministic from TRAINING_SEED, head by head (a longer set extends a shorter one)."""
    names = [str(n) for n in model.expression_names]
    n_id = int(model.identity_basis.shape[0])
    out = []
    for head in range(heads):
        rng = np.random.Generator(np.random.PCG64([TRAINING_SEED, head]))
        scale = rng.uniform(0.2, 0.9)
        identity = np.clip(scale * rng.standard_normal(n_id), -2.0, 2.0)
        melanin, haemoglobin = _skin(rng)
        for view in range(views_per_head):
            vr = np.random.Generator(np.random.PCG64([TRAINING_SEED, head, view + 1]))
            expression = _expression(vr, names, strong=vr.random() < 0.3)
            rotation = _rotation(vr.uniform(-45, 45), vr.uniform(-20, 20), vr.uniform(-10, 10))
            focal_mm, K, world_from_camera = _camera(vr, TRAINING_SIZE, (24.0, 135.0), (0.5, 0.75))
            lights, ambient = _lights(vr)
            scene = Scene(seed=TRAINING_SEED % 100000 + 1000 * head, width=TRAINING_SIZE, height=TRAINING_SIZE,
                          identity=list(identity), expression=list(expression), expression_names=names,
                          rotation=rotation.tolist(), translation=[0.0, 0.0, 0.0], focal_mm=focal_mm, K=K.tolist(),
                          world_from_camera=world_from_camera.tolist(), lights=lights, ambient=ambient,
                          melanin=melanin, haemoglobin=haemoglobin, samples=TRAINING_SAMPLES,
                          extra={"head": head, "view": view, "identity_scale": float(scale), "set": "training"})
            out.append(View(head, view, scene))
    return out


def heldout_scene(model: Any, index: int, kind: str = "heldout") -> Scene:
    """Benchmark scene `index` of set `kind` (SCENE_SEEDS), its identity at HELDOUT_SCALES[index % 3] deviations."""
    names = [str(n) for n in model.expression_names]
    n_id = int(model.identity_basis.shape[0])
    seed = SCENE_SEEDS[kind] + index
    rng = np.random.Generator(np.random.PCG64(seed))
    scale = HELDOUT_SCALES[index % 3]
    identity = np.clip(scale * rng.standard_normal(n_id), -2.0, 2.0)
    expression = _expression(rng, names, strong=index % 4 == 3)
    rotation = _rotation(rng.uniform(-35, 35), rng.uniform(-15, 15), rng.uniform(-8, 8))
    focal_mm, K, world_from_camera = _camera(rng, HELDOUT_SIZE, (28.0, 105.0), (0.45, 0.65))
    lights, ambient = _lights(rng)
    melanin = float(np.linspace(0.1, 2.2, 6)[index % 6])
    return Scene(seed=seed, width=HELDOUT_SIZE, height=HELDOUT_SIZE, identity=list(identity), expression=list(expression),
                 expression_names=names, rotation=rotation.tolist(), translation=[0.0, 0.0, 0.0], focal_mm=focal_mm,
                 K=K.tolist(), world_from_camera=world_from_camera.tolist(), lights=lights, ambient=ambient,
                 melanin=melanin, haemoglobin=float(rng.uniform(0.25, 0.7)), samples=HELDOUT_SAMPLES,
                 extra={"index": index, "identity_scale": scale, "set": kind})


# --------------------------------------------------------------------------- rendering and detection (cached)


EYE_TEXTURE = 128  # texels across the eye texture (its own half of the atlas)
# Sclera → iris → pupil against cos(angle to the gaze), as tools/synthetic.py's Cycles eye material.
EYE_RAMP = ((0.84, (0.72, 0.70, 0.66)), (0.865, (0.72, 0.70, 0.66)), (0.875, None), (0.975, None),
            (0.985, (0.01, 0.01, 0.01)))
CORE_SPP, CORE_LIGHT_SAMPLES = 4, 4


def _eye_atlas(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Eye UVs rescaled onto their own unit square, and each eye-texture texel's unit direction from its eye's
    centre (mean shape, model space): the sclera/iris/pupil pattern is a function of that direction."""
    if id(model) not in _EYE_ATLAS:
        _EYE_ATLAS.clear()
        _EYE_ATLAS[id(model)] = _build_eye_atlas(model)
    return _EYE_ATLAS[id(model)]


_EYE_ATLAS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _build_eye_atlas(model: Any) -> tuple[np.ndarray, np.ndarray]:
    from facestage.core.model.uvmaps import rasterize_uv

    uvs = np.asarray(model.eye_uvs, np.float64)
    lo, hi = uvs.min(0), uvs.max(0)
    local = 0.02 + 0.96 * (uvs - lo) / (hi - lo)
    eye_faces = np.asarray(model.eye_faces, np.int64)
    raster = rasterize_uv(local, np.asarray(model.eye_face_uvs, np.int64), EYE_TEXTURE)
    vertices = np.asarray(model.eye_vertices, np.float64)
    half = len(vertices) // 2
    centres = np.stack([vertices[:half].mean(0), vertices[half:].mean(0)])
    direction = vertices - centres[(np.arange(len(vertices)) >= half).astype(int)]
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    face = np.maximum(raster.face, 0)
    texel = (direction[eye_faces[face]] * raster.bary[..., None]).sum(-2)
    texel /= np.maximum(np.linalg.norm(texel, axis=-1, keepdims=True), 1e-9)
    return local, np.where(raster.inside[..., None], texel, 0.0)


def _eye_texture(model: Any, scene: Scene) -> np.ndarray:
    """(EYE_TEXTURE, EYE_TEXTURE, 3) linear eye albedo, the eyes looking straight ahead (−Y in the model)."""
    _, direction = _eye_atlas(model)
    rng = np.random.Generator(np.random.PCG64(scene.seed + 31))
    iris = [(0.09, 0.05, 0.02), (0.05, 0.09, 0.13), (0.12, 0.1, 0.04)][int(rng.integers(3))]
    cosine = -direction[..., 1]
    stops = np.array([s for s, _ in EYE_RAMP])
    colours = np.array([iris if c is None else c for _, c in EYE_RAMP])
    return np.stack([np.interp(cosine, stops, colours[:, c]) for c in range(3)], -1)


def _light_stage(scene: Scene) -> Any:
    """The scene's disk lights as a core light stage: each on the icosahedron face facing it, same distance,
    area and (approximately) the irradiance it delivers to the head (P / (π d²), as the lights were drawn)."""
    import torch

    from facestage.core.model import lightstage

    stage = lightstage.default_stage(np.zeros(3), d=1.5, a=lightstage.A_MIN)
    directions = lightstage.centroids(stage).numpy()
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    d, a, i = stage.d.numpy().copy(), stage.a.numpy().copy(), np.zeros((len(directions), 3), np.float32)
    for light in scene.lights:
        position = np.asarray(light.position, np.float64)
        distance = float(np.linalg.norm(position))
        j = int(np.argmax(directions @ (position / distance)))
        d[j] = max(distance, lightstage.D_MIN + 0.01)
        a[j] = np.clip(math.pi * (light.size / 2) ** 2 / (lightstage.face_area() * distance ** 2), lightstage.A_MIN, 1.0)
        i[j] += light.power_w / (math.pi * distance ** 2) * np.asarray(light.color, np.float32)
    return lightstage.LightStage(d=torch.as_tensor(d), a=torch.as_tensor(a), p=stage.p, i=torch.as_tensor(i),
                                 centre=stage.centre)


def render_core(scene: Scene, model: Any, maps: dict[str, np.ndarray], spp: int = CORE_SPP) -> np.ndarray:
    """(H, W, 3) sRGB image of a scene from the project's own renderer (core/render): head with its maps, eyes with
    a sclera/iris/pupil texture, the scene's lights on the light stage, its ambient as constant SH and background.
    Cheap (seconds at 384 px) and deterministic; what Cycles gives in tools/synthetic.py, up to its light model."""
    import torch

    from facestage.core.io.image import linear_to_srgb
    from facestage.core.model.sh import Y00
    from facestage.core.render import RenderOptions, RenderScene, render

    from ground_truth import eye_vertices, head_vertices, pose_points

    identity, expression = np.asarray(scene.identity), np.asarray(scene.expression)
    head = pose_points(head_vertices(model, identity, expression), scene)
    eyes = pose_points(eye_vertices(model, identity, expression), scene)
    eye_uvs, _ = _eye_atlas(model)
    uvs = np.asarray(model.uvs, np.float64)
    size = maps["diffuse"].shape[0]
    eye_maps = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR))
                for c in np.moveaxis(_eye_texture(model, scene), -1, 0)]
    diffuse = np.concatenate([maps["diffuse"], np.stack(eye_maps, -1)], 1)
    specular = np.concatenate([maps["specular"], np.full((size, size), 0.5, np.float32)], 1)
    roughness = np.concatenate([maps["roughness"], np.full((size, size), 0.15, np.float32)], 1)
    faces = np.concatenate([np.asarray(model.faces, np.int64), np.asarray(model.eye_faces, np.int64) + len(head)])
    face_uvs = np.concatenate([np.asarray(model.face_uvs, np.int64), np.asarray(model.eye_face_uvs, np.int64) + len(uvs)])
    all_uvs = np.concatenate([uvs * [0.5, 1.0], [0.5, 0.0] + eye_uvs * [0.5, 1.0]])
    ambient = np.asarray(scene.ambient, np.float32)
    sh = np.zeros((3, 9), np.float32)
    sh[:, 0] = ambient / Y00
    t = (lambda a: torch.as_tensor(np.ascontiguousarray(a, np.float32)))  # noqa: E731
    render_scene = RenderScene(
        verts=t(np.concatenate([head, eyes])), faces=torch.as_tensor(faces), uvs=t(all_uvs), face_uvs=torch.as_tensor(face_uvs),
        diffuse=t(diffuse), specular=t(specular)[..., None], roughness=t(roughness)[..., None], K=t(scene.K),
        world_from_camera=t(scene.world_from_camera), width=scene.width, height=scene.height, sh=t(sh),
        stage=_light_stage(scene), background=t(ambient))
    generator = torch.Generator().manual_seed(int(scene.seed))
    with torch.no_grad():
        out = render(render_scene, RenderOptions(spp=spp, light_samples=CORE_LIGHT_SAMPLES, edge_sampling=False), generator)
    return np.clip(linear_to_srgb(out.image.numpy()), 0.0, 1.0)


def core_digest() -> str:
    """Digest of what a core render depends on: this file, the ground truth and the renderer's sources."""
    digest = hashlib.sha256()
    for path in sorted([Path(__file__), TOOLS / "ground_truth.py", *(TOOLS.parent / "core" / "render").glob("*.py"),
                        *(TOOLS.parent / "core" / "model").glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]



RENDERERS = ("core", "cycles")


def cache_root(kind: str, renderer: str = "core") -> Path:
    """Temp folder of one set for the current generator (its renderer's sources and inputs) and sampler."""
    if renderer == "cycles":
        import synthetic

        digest = synthetic.generator_digest()
    else:
        digest = core_digest()
    return Path(tempfile.gettempdir()) / f"facestage-{kind}-{renderer}-{digest}-s{SAMPLER_VERSION}"


def render_views(views: list[View], root: Path | None = None, progress: bool = True, renderer: str = "core") -> list[Path]:
    """Render the views not yet cached (maps once per head); returns each view's folder."""
    from ground_truth import save_scene, skin_maps

    from facestage.core.io.image import save_png
    from facestage.core.model.head import load_head_model

    model = load_head_model()
    root = root or cache_root("training", renderer)
    folders = []
    maps: dict[str, np.ndarray] | None = None
    for done, item in enumerate(views):
        head_dir = root / f"head_{item.head:04d}"
        folder = head_dir / f"view_{item.view}"
        folders.append(folder)
        if is_rendered(folder, item.scene):
            continue
        if item.view == 0 or maps is None:
            maps = skin_maps(model, item.scene, size=TRAINING_MAP)
            save_scene(head_dir, item.scene, model, maps)
        folder.mkdir(parents=True, exist_ok=True)
        if renderer == "cycles":
            import synthetic

            synthetic.build(item.scene, model, head_dir)
            synthetic.render(folder / "image.png")
        else:
            save_png(folder / "image.png", render_core(item.scene, model, maps))
        (folder / "params.json").write_text(json.dumps(item.scene.to_json(), indent=1), encoding="utf-8")
        if progress and (done + 1) % 10 == 0:
            log.info("rendered %d/%d training views", done + 1, len(views))
    return folders


def render_heldout(count: int, root: Path | None = None, renderer: str = "core", kind: str = "heldout") -> list[Path]:
    """Folders (tools/ground_truth.py layout, load_scene reads them) of the first `count` scenes of set `kind`."""
    from ground_truth import save_scene, skin_maps

    from facestage.core.io.image import save_png
    from facestage.core.model.head import load_head_model

    model = load_head_model()
    root = root or cache_root(kind, renderer)
    folders = []
    for index in range(count):
        scene, folder = heldout_scene(model, index, kind), root / f"scene_{index:03d}"
        if not is_rendered(folder, scene):
            if renderer == "cycles":
                import synthetic

                synthetic.render_scene(folder, scene, model, map_size=HELDOUT_MAP)
            else:
                maps = skin_maps(model, scene, size=HELDOUT_MAP)
                save_scene(folder, scene, model, maps)
                save_png(folder / "image.png", render_core(scene, model, maps))
            log.info("rendered %s scene %d", kind, index)
        folders.append(folder)
    return folders


def detections(folder: Path) -> np.ndarray | None:
    """MediaPipe's 478 landmarks on folder/image.png (cached as landmarks.npy; None when no face is found)."""
    from facestage.core.common.errors import FaceStageError
    from facestage.core.common.versions import result_versions
    from facestage.core.fit.landmarks import detect
    from facestage.core.io.image import load_png

    cached = folder / "landmarks.npz"
    version = str(result_versions().get("mediapipe", "?"))
    if cached.is_file():
        with np.load(cached) as data:
            if str(data["version"]) == version:
                points = data["points"]
                return None if points.size == 0 else points.astype(np.float64)
    try:
        points = detect(load_png(folder / "image.png")[..., :3], source=str(folder)).points.astype(np.float64)
    except FaceStageError:
        points = np.zeros((0, 2))
    np.savez(cached, points=points, version=np.array(version))
    return None if points.size == 0 else points


def load_params(folder: Path) -> Scene:
    return Scene.from_json(json.loads((folder / "params.json").read_text(encoding="utf-8")))


def ensure_heldout(count: int, renderer: str = "core", python: str = sys.executable) -> list[Path]:
    """Folders of the first `count` held-out scenes (for tests): core renders in this process, Cycles ones in a
    bpy subprocess."""
    if renderer == "core":
        return render_heldout(count)
    root = cache_root("heldout", renderer)
    folders = [root / f"scene_{index:03d}" for index in range(count)]
    if not all((folder / "image.png").is_file() for folder in folders):
        with throwaway_blender_env() as env:
            subprocess.run([python, str(Path(__file__).resolve()), "--heldout", str(count), "--renderer", renderer],
                           check=True, env=env, stdout=subprocess.DEVNULL)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=int, default=0, help="render the first N held-out scenes")
    parser.add_argument("--training-heads", type=int, default=0, help="render the training views of the first N heads")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--renderer", choices=RENDERERS, default="core")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    render_heldout(args.heldout, renderer=args.renderer)
    if args.training_heads:
        from facestage.core.model.head import load_head_model

        render_views(training_views(load_head_model(), args.training_heads, args.views), renderer=args.renderer)
    return 0


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    if str(root.parent) not in sys.path:
        sys.path.insert(0, str(root.parent))
    sys.exit(main())
