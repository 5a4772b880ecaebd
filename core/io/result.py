"""The output contract: one reconstruction as plain files, saved atomically and loaded with validation.

Everything downstream (the Blender scene builder, relighting, caricature,
batch resume) reads a result folder through `load`, so this module is where
the folder's shape is defined (DESIGN.md "Output contract") and where an
untrusted or damaged folder is refused with one sentence. Plain JSON and
PNG only: nothing here can execute code from a file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from PIL import Image

from ..common.config import N_LIGHTS
from ..common.errors import FaceStageError
from .exif import SOURCE_ESTIMATED, SOURCES
from .image import linear_to_srgb, load_png, save_png, srgb_to_linear, to_uint8

FORMAT = "facestage-result/1"
SCENE_JSON = "scene.json"
TONGUE_KEYS = ("forward", "up", "raise", "widen")  # scene.json mouth.tongue_shift_m: metres (fit/mouth.py place_tongue)
TEETH_KEYS = ("upper", "lower", "widen")  # scene.json mouth.teeth_shift_m: metres (fit/mouth.py place_teeth, settle_teeth)


@dataclass
class Result:
    """One reconstruction. Images are linear float32 unless named *_srgb; maps are in the head model's UV layout.

    The photo and the images composited into it (render, mask) are at the photo's own full resolution;
    photo_srgb is uint8 (a float array in [0, 1] is accepted too), so a 48 MP photo is 144 MB.
    """

    photo_srgb: np.ndarray  # (H, W, 3) the photo, upright, at full resolution: uint8 (or float in [0, 1])
    K: np.ndarray  # (3, 3) pixels
    world_from_camera: np.ndarray  # (4, 4) Blender camera convention
    identity: np.ndarray  # (K_id,)
    expression: np.ndarray  # (52,) ARKit order of the head model
    expression_names: list[str]
    rotation: np.ndarray  # (3, 3) head pose: world = R @ model + t
    translation: np.ndarray  # (3,)
    vertices: np.ndarray  # (V, 3) posed face mesh, world space, metres
    faces: np.ndarray  # (F, 3)
    uvs: np.ndarray  # (T, 2)
    face_uvs: np.ndarray  # (F, 3)
    source_vertex_ids: np.ndarray  # (V,) hm08 ids
    sh: np.ndarray  # (3, bands²) environment radiance
    stage: dict[str, np.ndarray]  # d (20,), a (20,), p (20, 3), i (20, 3), centre (3,)
    lights: list[dict[str, Any]]  # Blender-ready lights (core.model.lightstage.blender_lights)
    diffuse: np.ndarray  # (T, T, 3) linear albedo
    specular: np.ndarray  # (T, T) Specular IOR Level
    roughness: np.ndarray  # (T, T) Blender roughness
    render: np.ndarray  # (H, W, 3) linear re-render
    mask: np.ndarray  # (H, W) in [0, 1]
    model: str = "hm08-head"
    seed: int = 0
    quality: str = "default"
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    extra_images: dict[str, np.ndarray] = field(default_factory=dict)  # name -> sRGB image written as name.png
    render_crop: tuple[float, float, float, int] = (0.0, 0.0, 1.0, 1)  # x0, y0, side (photo px), size (render px)
    edits: dict[str, Any] = field(default_factory=dict)  # applications applied after the fit (e.g. caricature)
    focal_source: str = SOURCE_ESTIMATED  # where the camera's focal length prior came from (core/io/exif.py)
    exif_focal_mm: float | None = None  # the EXIF focal length (35 mm equivalent) when focal_source is not "estimated"
    photo_file: Path | None = None  # the photo.png this result was loaded from (Blender reads it natively)
    # (H, W) at the photo's full resolution, uint8 (0..255) or float in [0, 1]: what the photo keeps in front of the
    # rendered head (hair, glasses, hands over the face, and all that is not face); occlusion.png, 8-bit. None
    # (results made before it existed): the whole render is shown.
    occlusion: np.ndarray | None = None
    # Eyes and mouth (model/head/parts.py); None = the head model's defaults (results written before they existed).
    gaze: np.ndarray | None = None  # (2, 2) [left (+X), right] eye × (yaw, pitch), radians, head frame
    eye_texture: np.ndarray | None = None  # (S, S, 3) linear albedo of both eyeballs (eyes.png)
    eye_coat: np.ndarray | None = None  # (S, S) the corneas' coat weight in [0, 1], eyes.png layout (eyes_coat.png)
    mouth_texture: np.ndarray | None = None  # (S, S, 3) linear albedo of teeth, cavity, tongue (mouth.png)
    teeth_shift: np.ndarray | None = None  # (3,) upper, lower teeth moved up along the head's +Z, both rows widened; m
    tongue_shift: np.ndarray | None = None  # (4,) the tongue moved forward (head's −Y), up (+Z), raised, widened; m
    focal_uncertainty_pct: float | None = None  # 1 σ of the fitted focal length, relative (None: fixed by EXIF)
    # (V, 3) model-space offsets that take the lips' edges to the photo's opening (fit/lips.py shape_opening), already
    # in `vertices`; kept apart so that Blender can offer them as a shape key. None: no such offsets.
    lips_shape: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.photo_srgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.photo_srgb.shape[0])


def _list(array: np.ndarray) -> Any:
    return np.asarray(array, dtype=np.float64).round(7).tolist()


def scene_json(result: Result) -> dict[str, Any]:
    """The scene.json document (plain data) for a result."""
    from ..model.camera import blender_camera  # imports torch; scene/ imports this module at add-on registration

    return {
        "format": FORMAT,
        "camera": {
            "K": _list(result.K),
            "width": result.width,
            "height": result.height,
            "world_from_camera": _list(result.world_from_camera),
            "blender": blender_camera(result.K, result.width, result.height),
            "focal_mm": round(float(result.K[0, 0]) * 36.0 / max(result.width, result.height), 4),
            "focal_source": result.focal_source,
            "exif_focal_mm": None if result.exif_focal_mm is None else round(float(result.exif_focal_mm), 4),
            "focal_uncertainty_pct": None if result.focal_uncertainty_pct is None else round(float(result.focal_uncertainty_pct), 2),
        },
        "head": {
            "model": result.model,
            "identity": _list(result.identity),
            "expression": {name: round(float(w), 7) for name, w in zip(result.expression_names, result.expression)},
            "rotation": _list(result.rotation),
            "translation": _list(result.translation),
        },
        "light_stage": {"centre": _list(result.stage["centre"])},
        "lights": [_light_json(light, j, result.stage) for j, light in enumerate(result.lights)],
        "sh": {"bands": int(round(math.sqrt(result.sh.shape[1]))), "coeffs": _list(result.sh)},
        "render": {"crop": [float(v) for v in result.render_crop[:3]] + [int(result.render_crop[3])]},
        "edits": result.edits,
        "quality": result.quality,
        "seed": result.seed,
        "timings": {k: round(float(v), 3) for k, v in result.timings.items()},
        "versions": result.versions,
        "warnings": list(result.warnings),
        "metrics": {k: round(float(v), 4) for k, v in result.metrics.items()},
        "hm08_vertex_ids": [int(i) for i in result.source_vertex_ids],
        **({"eyes": _eyes_json(result.gaze)} if result.gaze is not None else {}),
        **({"mouth": _mouth_json(result)} if result.teeth_shift is not None else {}),
        **({"lips_shape_m": _lips_shape_json(result.lips_shape)} if result.lips_shape is not None else {}),
    }


def _lips_shape_json(offsets: np.ndarray) -> dict[str, Any]:
    """scene.json's "lips_shape_m": the vertices the lips' shape moved (ids into face.obj) and their offsets."""
    ids = np.nonzero(np.abs(np.asarray(offsets)).max(1) > 0)[0]
    return {"ids": [int(i) for i in ids], "offsets": _list(np.asarray(offsets)[ids])}


def _mouth_json(result: Result) -> dict[str, Any]:
    """scene.json's "mouth": where the teeth and the tongue were moved to meet the photo's (fit/mouth.py)."""
    teeth = np.asarray(result.teeth_shift, np.float64)
    teeth = np.concatenate([teeth, np.zeros(len(TEETH_KEYS) - len(teeth))])
    tongue = np.zeros(len(TONGUE_KEYS)) if result.tongue_shift is None else np.asarray(result.tongue_shift, np.float64)
    tongue = np.concatenate([tongue, np.zeros(len(TONGUE_KEYS) - len(tongue))])
    return {"teeth_shift_m": {key: round(float(value), 6) for key, value in zip(TEETH_KEYS, teeth)},
            "tongue_shift_m": {key: round(float(value), 6) for key, value in zip(TONGUE_KEYS, tongue)}}


def _eyes_json(gaze: np.ndarray) -> dict[str, Any]:
    """Gaze per eye: yaw (towards the subject's left, +X) and pitch (up) in degrees, and the unit direction."""
    out: dict[str, Any] = {}
    for name, (yaw, pitch) in zip(("left", "right"), np.asarray(gaze, np.float64)):
        direction = [math.cos(pitch) * math.sin(yaw), -math.cos(pitch) * math.cos(yaw), math.sin(pitch)]
        out[name] = {"yaw_deg": round(math.degrees(yaw), 4), "pitch_deg": round(math.degrees(pitch), 4),
                     "direction_head": [round(c, 7) for c in direction]}
    return {"gaze": out}


def _light_json(light: dict[str, Any], j: int, stage: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {k: (_list(v) if isinstance(v, np.ndarray | list | tuple) else v) for k, v in light.items()}
    out.update(d=float(stage["d"][j]), a=float(stage["a"][j]), p=_list(stage["p"][j]), i=_list(stage["i"][j]))
    return out


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, name: str = "Face") -> None:
    """Wavefront OBJ with face-varying UVs; vertex order is preserved (the head model's)."""
    lines = [f"# FaceStage head mesh, metres, Blender world (Z up)\no {name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(faces, face_uvs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of write_obj (triangles with v/vt only)."""
    verts, uvs, faces, face_uvs = [], [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            uvs.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            corners = [p.split("/") for p in parts[1:4]]
            faces.append([int(c[0]) - 1 for c in corners])
            face_uvs.append([int(c[1]) - 1 for c in corners])
    return (np.array(verts, np.float32), np.array(faces, np.int64), np.array(uvs, np.float32), np.array(face_uvs, np.int64))


def save(result: Result, out_dir: str | os.PathLike[str], force: bool = False,
         before_commit: Callable[[Path], None] | None = None) -> Path:
    """Write every file into a temporary sibling folder, then move it into place.

    A failure or cancel therefore never leaves a half-written OUT; an existing
    OUT is refused unless ``force``. ``before_commit(tmp_dir)`` may add files
    (e.g. face.blend) before the move.
    """
    out = Path(out_dir)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_files(result, tmp)
        if before_commit is not None:
            before_commit(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse an existing output (without --force) or an unwritable parent, before any work starts."""
    if out.exists() and not force:
        raise FaceStageError(f"Output folder {out} already exists; use --force to overwrite it.")
    if out.exists() and not out.is_dir():
        raise FaceStageError(f"Output {out} exists and is not a folder.")
    parent = out.parent if out.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise FaceStageError(f"Cannot write to output folder {out}: permission denied.")


def _write_files(result: Result, folder: Path) -> None:
    """The folder's files; the PNGs two at a time, since zlib releases the GIL: a 48 MP photo.png and render.png
    take 2.5 s each to compress, and the pool halves that on two cores."""
    write_obj(folder / "face.obj", result.vertices, result.faces, result.uvs, result.face_uvs)
    (folder / SCENE_JSON).write_text(json.dumps(scene_json(result), indent=1), encoding="utf-8")
    pngs: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        ("photo.png", result.photo_srgb, {}), ("render.png", result.render, {"encode_srgb": True}),
        ("diffuse.png", linear_to_srgb(result.diffuse), {}), ("specular.png", result.specular, {"bits": 16}),
        ("roughness.png", result.roughness, {"bits": 16}), ("mask.png", result.mask, {})]
    if result.occlusion is not None:
        pngs.append((OCCLUSION_PNG, result.occlusion, {}))  # 8-bit: 48 MB for a 48 MP photo, mostly one value
    if result.eye_texture is not None:
        pngs.append(("eyes.png", linear_to_srgb(result.eye_texture), {}))
    if result.eye_coat is not None:
        pngs.append((EYE_COAT_PNG, result.eye_coat, {}))
    if result.mouth_texture is not None:
        pngs.append(("mouth.png", linear_to_srgb(result.mouth_texture), {}))
    pngs += [(f"{name}.png", image, {}) for name, image in result.extra_images.items()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for written in [pool.submit(save_png, folder / name, pixels, **options) for name, pixels, options in pngs]:
            written.result()


OCCLUSION_PNG = "occlusion.png"  # optional: folders written before it existed load without it
EYE_COAT_PNG = "eyes_coat.png"  # optional, as above: without it the corneas keep their full coat
REQUIRED_FILES = ("scene.json", "face.obj", "photo.png", "diffuse.png", "specular.png", "roughness.png", "render.png", "mask.png")


def _array(doc: dict[str, Any], key: str, shape: tuple[int | None, ...], where: str) -> np.ndarray:
    try:
        array = np.asarray(doc[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise FaceStageError(f"{where} has a missing or malformed '{key}'.") from None
    if array.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, array.shape)):
        raise FaceStageError(f"{where} has '{key}' of shape {array.shape}, expected {shape}.")
    if not np.all(np.isfinite(array)):
        raise FaceStageError(f"{where} has non-finite numbers in '{key}'.")
    return array


def _crop(doc: dict[str, Any], where: str) -> tuple[float, float, float, int]:
    values = _array(doc.get("render", {}), "crop", (4,), where)
    if values[2] <= 0 or not 1 <= values[3] <= 8192:
        raise FaceStageError(f"{where} has an invalid render crop.")
    return float(values[0]), float(values[1]), float(values[2]), int(values[3])


def _occlusion(path: Path, height: int, width: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    occlusion = to_uint8(load_png(path, raw=True))  # kept as uint8: no float copy of a full-resolution mask
    occlusion = occlusion[..., 0] if occlusion.ndim == 3 else occlusion
    if occlusion.shape != (height, width):
        raise FaceStageError(f"{path} is {occlusion.shape[1]}x{occlusion.shape[0]}, scene.json says {width}x{height}.")
    return occlusion


def load(folder: str | os.PathLike[str]) -> Result:
    """Read and validate a result folder (schema, shapes, finite numbers)."""
    from ..model.head import load_head_model  # imports torch; scene/ imports this module at add-on registration

    folder = Path(folder)
    if not folder.is_dir():
        raise FaceStageError(f"Result folder {folder} does not exist.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FaceStageError(f"Result folder {folder} is incomplete: missing {', '.join(missing)}.")
    where = str(folder / SCENE_JSON)
    try:
        doc = json.loads((folder / SCENE_JSON).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FaceStageError(f"{where} is not valid JSON.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FaceStageError(f"{where} is not a FaceStage result (expected format {FORMAT!r}).")
    try:
        camera, head, sh_doc, lights = doc["camera"], doc["head"], doc["sh"], doc["lights"]
        width, height = int(camera["width"]), int(camera["height"])
        names = list(head["expression"].keys())
        expression = np.array([float(head["expression"][n]) for n in names])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise FaceStageError(f"{where} is missing required camera, head, sh or lights entries.") from None
    if not isinstance(lights, list) or len(lights) != N_LIGHTS:
        raise FaceStageError(f"{where} must list exactly {N_LIGHTS} lights.")
    model = load_head_model()
    n_id = model.identity_basis.shape[0]
    stage = {
        "d": np.array([_array(l, "d", (), where) for l in lights]),
        "a": np.array([_array(l, "a", (), where) for l in lights]),
        "p": np.stack([_array(l, "p", (3,), where) for l in lights]),
        "i": np.stack([_array(l, "i", (3,), where) for l in lights]),
        "centre": _array(doc.get("light_stage", {}), "centre", (3,), where),
    }
    verts, faces, uvs, face_uvs = read_obj(folder / "face.obj")
    if verts.shape[0] != model.vertices.shape[0] or not np.all(np.isfinite(verts)):
        raise FaceStageError(f"{folder / 'face.obj'} does not match the head model ({verts.shape[0]} vertices).")
    photo = _photo(folder / "photo.png")
    if photo.shape[:2] != (height, width):
        raise FaceStageError(f"{folder / 'photo.png'} is {photo.shape[1]}x{photo.shape[0]}, scene.json says {width}x{height}.")
    return Result(
        photo_srgb=photo,
        K=_array(camera, "K", (3, 3), where),
        world_from_camera=_array(camera, "world_from_camera", (4, 4), where),
        identity=_array(head, "identity", (n_id,), where),
        expression=expression,
        expression_names=names,
        rotation=_array(head, "rotation", (3, 3), where),
        translation=_array(head, "translation", (3,), where),
        vertices=verts, faces=faces, uvs=uvs, face_uvs=face_uvs,
        source_vertex_ids=np.asarray(doc.get("hm08_vertex_ids", []), dtype=np.int64),
        sh=_array(sh_doc, "coeffs", (3, None), where),
        stage=stage,
        lights=[{k: v for k, v in l.items() if k not in ("d", "a", "p", "i")} for l in lights],
        diffuse=srgb_to_linear(load_png(folder / "diffuse.png")[..., :3]),
        specular=load_png(folder / "specular.png"),
        roughness=load_png(folder / "roughness.png"),
        render=srgb_to_linear(_photo(folder / "render.png")),
        mask=load_png(folder / "mask.png"),
        occlusion=_occlusion(folder / OCCLUSION_PNG, height, width),
        render_crop=_crop(doc, where),
        edits=dict(doc.get("edits", {})) if isinstance(doc.get("edits", {}), dict) else {},
        model=str(head.get("model", "hm08-head")),
        seed=int(doc.get("seed", 0)),
        quality=str(doc.get("quality", "default")),
        timings=dict(doc.get("timings", {})),
        versions=dict(doc.get("versions", {})),
        warnings=list(doc.get("warnings", [])),
        metrics=dict(doc.get("metrics", {})),
        focal_source=_focal_source(camera, where),
        exif_focal_mm=_optional_float(camera.get("exif_focal_mm")),
        photo_file=folder / "photo.png",
        gaze=_gaze(doc, where),
        teeth_shift=_mouth_shift(doc, where, "teeth_shift_m", TEETH_KEYS, added=("widen",)),
        tongue_shift=_mouth_shift(doc, where, "tongue_shift_m", TONGUE_KEYS, required=False, added=("raise", "widen")),
        eye_texture=_optional_map(folder / "eyes.png"),
        eye_coat=_optional_weight(folder / EYE_COAT_PNG),
        mouth_texture=_optional_map(folder / "mouth.png"),
        focal_uncertainty_pct=_optional_float(camera.get("focal_uncertainty_pct")),
        lips_shape=_lips_shape(doc, where, len(verts)),
    )


def _lips_shape(doc: dict[str, Any], where: str, n_vertices: int) -> np.ndarray | None:
    """(V, 3) offsets from scene.json's optional "lips_shape_m" (None without one); a malformed one is refused."""
    entry = doc.get("lips_shape_m")
    if entry is None:
        return None
    try:
        ids = np.asarray(entry["ids"], dtype=np.int64).reshape(-1)
        offsets = np.asarray(entry["offsets"], dtype=np.float64).reshape(len(ids), 3)
    except (KeyError, TypeError, ValueError):
        raise FaceStageError(f"{where} has a malformed 'lips_shape_m' entry.") from None
    if len(ids) and (ids.min() < 0 or ids.max() >= n_vertices) or not np.all(np.isfinite(offsets)):
        raise FaceStageError(f"{where} has a malformed 'lips_shape_m' entry.")
    out = np.zeros((n_vertices, 3))
    out[ids] = offsets
    return out


def _photo(path: Path) -> np.ndarray:
    """An 8-bit image file as (H, W, 3) uint8, whatever its mode (no float copy of a full-resolution photo)."""
    with Image.open(path) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _focal_source(camera: dict[str, Any], where: str) -> str:
    source = camera.get("focal_source", SOURCE_ESTIMATED)
    if source not in SOURCES:
        raise FaceStageError(f"{where} has an unknown camera focal_source {source!r}.")
    return str(source)


def _optional_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _gaze(doc: dict[str, Any], where: str) -> np.ndarray | None:
    """(2, 2) radians from scene.json's optional "eyes" entry."""
    if "eyes" not in doc:
        return None
    try:
        gaze = doc["eyes"]["gaze"]
        return np.radians([[_array(gaze[eye], key, (), where) for key in ("yaw_deg", "pitch_deg")]
                           for eye in ("left", "right")])
    except (KeyError, TypeError):
        raise FaceStageError(f"{where} has a malformed 'eyes' entry.") from None


def _mouth_shift(doc: dict[str, Any], where: str, entry: str, keys: tuple[str, ...], required: bool = True,
                 added: tuple[str, ...] = ()) -> np.ndarray | None:
    """Metres by `keys` from scene.json's optional "mouth" entry `entry` (teeth_shift_m, tongue_shift_m). None
    without a "mouth"; an entry that is not `required` (written by later versions) may be missing too, and so may
    the keys `added` later (the tongue's "raise", the teeth's "widen"), which read as 0."""
    if "mouth" not in doc:
        return None
    mouth = doc["mouth"]
    if not required and (not isinstance(mouth, dict) or mouth.get(entry) is None):
        return None
    try:
        values = mouth[entry]
        return np.array([0.0 if key in added and key not in values else _array(values, key, (), where) for key in keys])
    except (KeyError, TypeError):
        raise FaceStageError(f"{where} has a malformed 'mouth' entry.") from None


def _optional_map(path: Path) -> np.ndarray | None:
    """A linear colour map from an optional sRGB PNG of the result folder."""
    return srgb_to_linear(load_png(path)[..., :3]) if path.is_file() else None


def _optional_weight(path: Path) -> np.ndarray | None:
    """(S, S) a grey weight map in [0, 1] from an optional PNG of the result folder (stored as is, not sRGB)."""
    if not path.is_file():
        return None
    pixels = load_png(path)
    return (pixels if pixels.ndim == 2 else pixels[..., 0]).astype(np.float32)


def lights_from_file(path: str, template: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stage parameters from a JSON file (a scene.json or {"lights": [{d, a, p, i}, ...]}), validated."""
    from ..model.lightstage import A_MIN  # imports torch; scene/ imports this module at add-on registration

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        lights = doc["lights"]
        stage = {"d": np.array([float(l["d"]) for l in lights]), "a": np.array([float(l["a"]) for l in lights]),
                 "p": np.array([[float(x) for x in l["p"]] for l in lights]), "i": np.array([[float(x) for x in l["i"]] for l in lights])}
    except FileNotFoundError:
        raise FaceStageError(f"Lights file {path} does not exist.") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise FaceStageError(f"Lights file {path} is not a light-stage JSON (20 lights with d, a, p, i).") from None
    if len(lights) != N_LIGHTS or stage["p"].shape != (N_LIGHTS, 3) or stage["i"].shape != (N_LIGHTS, 3):
        raise FaceStageError(f"Lights file {path} must list exactly {N_LIGHTS} lights with p and i of 3 values.")
    if not all(np.all(np.isfinite(v)) for v in stage.values()) or (stage["d"] <= 0).any() or (stage["a"] < 0).any() or (stage["i"] < 0).any():
        raise FaceStageError(f"Lights file {path} has negative or non-finite values.")
    stage["a"] = np.clip(stage["a"], A_MIN, 1.0)
    stage["p"] = np.clip(stage["p"], 0, None) / np.clip(stage["p"], 0, None).sum(1, keepdims=True).clip(1e-12)
    stage["centre"] = np.asarray(template["centre"])
    return stage
