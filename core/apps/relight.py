"""Relighting a finished reconstruction: named presets on the same 20-light stage, and a rotated environment.

A preset is just another setting of the fitted light stage (so the Blender
lights and the core render agree). It keeps the person. Its exposure is
matched so that the face receives as much light as under the fitted lighting
(`rendered_exposure`, or `face_luminance`: a per-vertex render of the face's
camera-facing vertices, shadows, specular and the world's occlusion included),
so the relit face keeps the photo's face luminance, unless the preset is meant
to be darker (split, rim), which its `exposure` says. Each portrait preset has
a fill as a photographer's would (a reflector or a second, larger light on the
shadow side): with a bare key at the photo's mean, the lit side reached 1.6-2×
display white on most portraits, whose own light is flat, and 25-35 % of the
face clipped to grey-white. What contrast remains may still push a bright
skin's lit side past white; the exposure then stops where the lit side's
diffuse reaches LIT_SIDE_MAX (or the photo's own bright end, if brighter), and
the note says how far below the photo's mean that leaves the face. Preset
lights are white, so the relit face keeps the reconstruction's skin tone.
Rotating the SH environment turns the ambient light without re-fitting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..common.config import ENV_ROTATE, LIGHTING_PRESETS
from ..common.errors import FaceStageError
from ..io.result import Result
from ..model import brdf, emitters, lightstage
from ..model.head import load_head_model, vertex_normals
from ..model.sh import Y00, bands_from_size, rotate_sh, sh_basis
from ..render import RenderOutput
from ..render.raytrace import Bvh
from .rerender import render_result


@dataclass(frozen=True)
class PresetLight:
    """One preset light: azimuth (0 = camera side, +90 = subject's left, +X) and elevation in degrees."""

    azimuth: float
    elevation: float
    intensity: float
    area: float = 0.3
    distance: float = 1.5


@dataclass(frozen=True)
class Preset:
    """A lighting preset: its lights, the ambient share, and the face exposure it aims at (1 = the photo's)."""

    lights: tuple[PresetLight, ...]
    ambient: float
    exposure: float = 1.0
    note: str = ""


# Azimuth 0 = in front of the face (−Y), +90 = the subject's left (+X), 180 = behind. Keys: config.LIGHTING_PRESETS.
PRESETS: dict[str, Preset] = {
    "three-point": Preset((PresetLight(-45, 30, 1.0), PresetLight(40, 10, 0.35, area=0.8), PresetLight(160, 35, 0.6, area=0.2)), 0.05),
    # key high to the subject's right, a large fill low on the other side (shadow side ≈ a third of the lit side)
    "rembrandt": Preset((PresetLight(-50, 45, 1.2, area=0.2), PresetLight(45, 5, 0.6, area=1.0)), 0.08),
    # key high in front, a reflector below the chin ("clamshell")
    "butterfly": Preset((PresetLight(0, 50, 1.1, area=0.3), PresetLight(0, -25, 0.35, area=1.0)), 0.08),
    "split": Preset((PresetLight(-90, 5, 1.2, area=0.2),), 0.03, exposure=0.6,
                    note="meant darker: half of the face in shadow (60 % of the photo's face exposure)"),
    "rim": Preset((PresetLight(140, 25, 1.0, area=0.2), PresetLight(-140, 25, 1.0, area=0.2)), 0.08, exposure=0.35,
                  note="meant darker: the face in shadow, its outline lit (35 % of the photo's face exposure)"),
    "soft-box": Preset((PresetLight(-30, 20, 1.0, area=1.0, distance=0.8), PresetLight(50, 0, 0.3, area=1.0)), 0.1),
}
assert tuple(PRESETS) == LIGHTING_PRESETS, "config.LIGHTING_PRESETS lists the presets defined here"
FACE_REGIONS = ("nose", "mouth", "eyes", "brows", "forehead", "cheeks", "jaw", "chin")


@dataclass
class FaceGeometry:
    """The posed face with its reflectance at the vertices, and where the camera is: what exposure matching needs
    (a Result or a built Blender scene has it)."""

    vertices: np.ndarray  # (V, 3) world, the head model's vertex order
    faces: np.ndarray  # (F, 3)
    eye: np.ndarray  # (3,) camera position
    albedo: np.ndarray  # (V,) diffuse luminance (linear)
    specular: np.ndarray  # (V,) Specular IOR Level
    roughness: np.ndarray  # (V,)

    @classmethod
    def of(cls, result: Result) -> FaceGeometry:
        maps = vertex_maps([result.diffuse, result.specular, result.roughness], result.faces, result.uvs, result.face_uvs,
                           len(result.vertices))
        return cls(np.asarray(result.vertices, np.float64), np.asarray(result.faces), np.asarray(result.world_from_camera)[:3, 3],
                   *maps)


def vertex_maps(maps: list[np.ndarray], faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, count: int
                ) -> list[np.ndarray]:
    """(V,) values of texture maps at the vertices (mean over each vertex's UV corners); a colour map gives its
    luminance."""
    corner_uv = np.asarray(uvs)[np.asarray(face_uvs).reshape(-1)]
    vertex = np.asarray(faces).reshape(-1)
    corners = np.maximum(np.bincount(vertex, minlength=count), 1)
    out = []
    for texture in maps:
        height, width = texture.shape[:2]
        col = np.clip((corner_uv[:, 0] * width).astype(int), 0, width - 1)
        row = np.clip(((1 - corner_uv[:, 1]) * height).astype(int), 0, height - 1)
        values = np.asarray(texture)[row, col]
        if values.ndim == 2:
            values = values[:, :3] @ np.array([0.2126, 0.7152, 0.0722])
        out.append(np.bincount(vertex, values, minlength=count) / corners)
    return out


AMBIENT_RAYS = 32  # cosine-weighted rays per vertex for the world's occlusion
BRIGHT_QUANTILE = 0.98  # the lit side's bright end: what the brightest 2 % of the face's diffuse reach
LIT_SIDE_MAX = 0.95  # linear: a preset's lit side (its diffuse's bright end, brightest channel) stays below white
NOTE_BELOW = 0.9  # the note speaks up when that cap leaves the face under 90 % of the exposure the preset aims at


class FaceLight(NamedTuple):
    """How bright the face looks under some lighting: its mean luminance (all light) and the bright end
    (BRIGHT_QUANTILE) of its diffuse part's brightest channel, the skin that clips first; specular highlights
    may clip, as in a photo."""

    mean: float
    bright: float


class PresetLighting(NamedTuple):
    """A preset's stage and SH, and what the user should know about its exposure ("" when it matches the photo)."""

    stage: dict  # type: ignore[type-arg]
    sh: np.ndarray
    note: str


def _weighted_quantile(values: torch.Tensor, weights: torch.Tensor, q: float) -> float:
    order = torch.argsort(values)
    cumulative = torch.cumsum(weights[order], 0)
    index = int(torch.searchsorted(cumulative, q * cumulative[-1]).clamp(max=len(values) - 1))
    return float(values[order][index])


def face_luminance(face: FaceGeometry, stage: dict, sh: np.ndarray) -> FaceLight:  # type: ignore[type-arg]
    """Luminance of the face as the camera sees it (a render in miniature), its mean and its diffuse's bright end
    (of the luminance: the geometry carries the albedo's luminance only): four points on each face-region
    triangle that faces the camera, weighted by the image area they cover (area × cos to the camera / distance²);
    each lit stage light 16 points on it (L·A/16·cos_l/r² each, Principled's diffuse and GGX specular, a shadow
    ray), plus the SH world along cosine-weighted shadow rays, seen diffusely and in the specular layer. A preset scaled to keep it keeps the face's
    exposure."""
    model = load_head_model()
    vertices = torch.as_tensor(face.vertices, dtype=torch.float32)
    faces = torch.as_tensor(np.asarray(face.faces), dtype=torch.long)
    names = list(model.region_names)
    region = torch.stack([model.region_weights[names.index(n)] for n in FACE_REGIONS if n in names]).amax(0) >= 0.5
    triangles = faces[region[faces].all(1)]
    # four points a triangle (its centroid and the centroids of its corner sub-triangles), smooth normals
    bary = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]])
    corners = vertices[triangles]  # (T, 3, 3)
    x = torch.einsum("pk,tkc->tpc", bary, corners).reshape(-1, 3)
    normals = vertex_normals(vertices, faces)
    n = torch.nn.functional.normalize(torch.einsum("pk,tkc->tpc", bary, normals[triangles]).reshape(-1, 3), dim=-1)
    area = 0.5 * torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).norm(dim=-1)
    eye = torch.as_tensor(face.eye, dtype=torch.float32)
    v = torch.nn.functional.normalize(eye - x, dim=-1)
    facing = (n * v).sum(-1)
    coverage = (area.repeat_interleave(4) / 4 * facing.clamp_min(0) / ((eye - x) ** 2).sum(-1)).double()
    geometric = torch.nn.functional.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]),
                                              dim=-1).repeat_interleave(4, 0)
    geometric = geometric * torch.sign((geometric * v).sum(-1, keepdim=True))
    bvh = Bvh(vertices, faces.int())
    seen = ~bvh.segments_occluded(x, geometric, eye.expand(x.shape[0], 1, 3).contiguous())[:, 0]
    keep = (facing > 0.05) & seen  # what the camera sees
    x, n, v, coverage, ng = x[keep], n[keep], v[keep], coverage[keep], geometric[keep]

    def at_points(values: np.ndarray) -> torch.Tensor:
        per_vertex = torch.as_tensor(np.asarray(values), dtype=torch.float64)
        return torch.einsum("pk,tk->tp", bary.double(), per_vertex[triangles]).reshape(-1)[keep][:, None]

    albedo, spec, rough = at_points(face.albedo), at_points(face.specular), at_points(face.roughness)
    weight = brdf.diffuse_weight((n * v).sum(-1, keepdim=True).double().clamp(brdf.COS_EPS, 1), spec, rough)
    light = lightstage.from_dict(stage, dtype=torch.float64)
    lit = np.flatnonzero(np.asarray(stage["i"]).sum(1) > 0)
    diffuse_radiance = torch.zeros(x.shape[0], dtype=torch.float64)
    specular_radiance = torch.zeros(x.shape[0], dtype=torch.float64)
    if lit.size:
        emit = emitters.select(lightstage.emitters(light), torch.as_tensor(lit))
        grid = (torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij"), -1).reshape(16, 2) + 0.5) / 4
        points = emitters.sample_points(emit, grid[None].expand(len(lit), -1, -1).double()).reshape(-1, 3).float()
        power = (emit.power.mean(-1) / 16).repeat_interleave(16)  # L·A / samples, per point
        offset = points[None] - x[:, None]
        r2 = (offset ** 2).sum(-1)
        direction = offset / r2.sqrt()[..., None]
        cos_l = (-(direction * emit.normal.repeat_interleave(16, 0).float()[None])).sum(-1).clamp_min(0)
        blocked = bvh.segments_occluded(x, ng, points[None].expand(x.shape[0], -1, -1).contiguous())
        incoming = (cos_l / r2 * (~blocked).float()).double() * power[None]  # (M, J·16) irradiance on a facing receiver
        diffuse, specular = brdf.shade(n[:, None].double(), v[:, None].double(), direction.double(), albedo[:, None],
                                       spec[:, None], rough[:, None])
        above = (direction * ng[:, None]).sum(-1) > 0  # the renderer's terminator: above both tangent planes
        cos_x = ((direction * n[:, None]).sum(-1).clamp_min(0) * above).double()
        diffuse_radiance = diffuse_radiance + (diffuse[..., 0] * cos_x * incoming).sum(-1)
        specular_radiance = specular_radiance + (specular[..., 0] * cos_x * incoming).sum(-1)
    generator = torch.Generator().manual_seed(0)
    xi = torch.rand(x.shape[0], AMBIENT_RAYS, 2, generator=generator)
    helper = torch.where(n[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]))
    t1 = torch.nn.functional.normalize(torch.linalg.cross(helper, n), dim=-1)
    t2 = torch.linalg.cross(n, t1)
    r, phi = xi[..., 0].sqrt(), 2 * math.pi * xi[..., 1]
    rays = (r * phi.cos())[..., None] * t1[:, None] + (r * phi.sin())[..., None] * t2[:, None] \
        + (1 - xi[..., :1]).clamp_min(0).sqrt() * n[:, None]
    above = ((rays * ng[:, None]).sum(-1) > 0).double()
    open_sky = (~bvh.segments_occluded(x, ng, x[:, None] + 10.0 * rays)).double() * above
    coeffs = torch.as_tensor(np.asarray(sh), dtype=torch.float64)
    sky = (sh_basis(rays.reshape(-1, 3).double(), bands_from_size(coeffs.shape[-1])) @ coeffs.T).clamp_min(0).mean(-1)
    ambient = (sky.reshape(open_sky.shape) * open_sky).mean(1)  # E/π: cosine-weighted rays, as the renderer samples
    diffuse_radiance = diffuse_radiance + (albedo * weight)[:, 0] * ambient
    specular_radiance = specular_radiance + (1 - weight)[:, 0] * ambient  # the layer's reflection of the world
    radiance = diffuse_radiance + specular_radiance
    return FaceLight(float((radiance * coverage).sum() / coverage.sum().clamp_min(1e-30)),
                     _weighted_quantile(diffuse_radiance, coverage, BRIGHT_QUANTILE))


def preset_direction(light: PresetLight) -> np.ndarray:
    """Unit vector from the head centre towards the light (world, Z up, head faces −Y)."""
    az, el = math.radians(light.azimuth), math.radians(light.elevation)
    return np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])


def preset_names() -> list[str]:
    """Every name `facestage relight --preset` accepts."""
    return [*LIGHTING_PRESETS, ENV_ROTATE]


def _place(j: int, direction: np.ndarray) -> np.ndarray:
    """Barycentric p on face j where the ray from the centre along direction meets the face plane (clamped to the face)."""
    verts, faces = lightstage.icosahedron(torch.float64)
    tri = verts[faces[j]].numpy()
    normal = tri.mean(0) / np.linalg.norm(tri.mean(0))
    hit = direction / max(float(direction @ normal), 1e-6)  # on the unit-inradius plane
    bary = np.linalg.lstsq(np.vstack([tri.T, np.ones(3)]), np.r_[hit, 1.0], rcond=None)[0]
    bary = np.clip(bary, 0.0, None)
    return bary / bary.sum()


Exposure = Callable[[dict, np.ndarray], FaceLight]  # type: ignore[type-arg]  # the face's luminance under (stage, sh)


def face_pixels(result: Result, out: RenderOutput) -> torch.Tensor:
    """(H, W) bool: the pixels of a render of `result` that show the skin of the face regions (FACE_REGIONS), fully
    covered. Face ids count the head's triangles first, then the eyes' and the mouth's, which are not skin."""
    model = load_head_model()
    names = list(model.region_names)
    region = torch.stack([model.region_weights[names.index(n)] for n in FACE_REGIONS if n in names]).amax(0) >= 0.5
    triangles = region[torch.as_tensor(np.asarray(result.faces), dtype=torch.long)].all(1)
    ids = out.passes["face_id"]
    head = (ids >= 0) & (ids < len(triangles))
    return head & triangles[ids.clamp(0, len(triangles) - 1)] & (out.alpha > 0.999)


def rendered_exposure(result: Result, size: int = 96) -> Exposure:
    """Face luminance of a result under other lighting, from a small core render of its face crop: the mean, and
    the bright end of the diffuse's brightest channel, over the pixels of the face regions (the exact measure;
    `face_luminance` is its mesh-only stand-in)."""
    small = dataclasses.replace(result, render_crop=(*result.render_crop[:3], size))

    def exposure(stage: dict, sh: np.ndarray) -> FaceLight:  # type: ignore[type-arg]
        _, _, out = render_result(small, stage=stage, sh=sh, passes=True)
        face = face_pixels(small, out)
        if not bool(face.any()):
            return FaceLight(0.0, 0.0)
        luminance = out.image[face] @ torch.tensor([0.2126, 0.7152, 0.0722])
        diffuse = (out.passes["albedo"] * (out.passes["diffuse"] + out.passes["ambient"]))[face]
        return FaceLight(float(luminance.mean()), float(diffuse.amax(-1).quantile(BRIGHT_QUANTILE)))

    return exposure


def preset_lighting(stage: dict, sh: np.ndarray, name: str, face: FaceGeometry | None = None,  # type: ignore[type-arg]
                    exposure: Exposure | None = None) -> PresetLighting:
    """A named preset on the same 20-light stage.

    Its exposure is matched to the fitted lighting's on the face (times the preset's `exposure`), measured by
    `exposure` (e.g. rendered_exposure(result)) or, with only the face's geometry, by face_luminance; with
    neither (or with no face pixel in view), to the reconstruction's total light at the head's centre. The
    lit side's diffuse may not pass LIT_SIDE_MAX (or the fitted lighting's bright end, where the photo's own is
    brighter): where that holds the face under NOTE_BELOW of the aimed exposure, the note says how far.
    """
    if exposure is None and face is not None:
        def exposure(lights: dict, world: np.ndarray) -> FaceLight:  # type: ignore[type-arg]
            return face_luminance(face, lights, world)
    if name not in PRESETS:
        raise FaceStageError(f"Unknown lighting preset {name!r}; choose one of {', '.join(preset_names())}.")
    preset = PRESETS[name]
    lights, ambient = preset.lights, preset.ambient
    total = float(np.asarray(stage["i"]).mean(1).sum() + math.pi * Y00 * np.asarray(sh)[:, 0].mean())
    outward = -lightstage.normals(lightstage.from_dict(stage, dtype=torch.float64)).numpy()
    new = {k: np.array(v, dtype=np.float64, copy=True) for k, v in stage.items()}
    new["i"][:] = 0.0
    weight = sum(l.intensity for l in lights)
    for light in lights:
        direction = preset_direction(light)
        j = int(np.argmax(outward @ direction))
        new["d"][j], new["a"][j] = light.distance, max(light.area, lightstage.A_MIN)
        new["p"][j] = _place(j, direction)
        new["i"][j] = (1.0 - ambient) * total * light.intensity / weight
    new_sh = np.zeros_like(np.asarray(sh, np.float64))
    new_sh[:, 0] = ambient * total / (math.pi * Y00)
    note = preset.note
    if exposure is not None:
        fitted, relit = exposure(stage, sh), exposure(new, new_sh)
        if min(fitted.mean, relit.mean, relit.bright) > 0.0:  # no face pixel in view: keep the total
            scale = preset.exposure * fitted.mean / relit.mean
            ceiling = max(LIT_SIDE_MAX, fitted.bright)
            if scale * relit.bright > ceiling:  # the lit side would clip to white
                scale = ceiling / relit.bright
                share = scale * relit.mean / fitted.mean
                if share < NOTE_BELOW * preset.exposure:
                    note = (f"exposed so that the lit side does not clip to white: the face at {share:.0%} of the "
                            "photo's exposure")
            new["i"] *= scale
            new_sh *= scale
    return PresetLighting(new, new_sh, note)


def rotate_environment(sh: np.ndarray, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """SH turned by yaw (about Z) then pitch (about X), without re-fitting."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    rz = torch.tensor([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]], dtype=torch.float64)
    return rotate_sh(torch.as_tensor(np.asarray(sh, np.float64)), rx @ rz).numpy()
