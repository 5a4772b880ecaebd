"""The differentiable renderer that the analysis-by-synthesis fit inverts.

Ray tracing, because the fit must explain soft self-shadows (nose, eye sockets) cast by the
light stage's area lights, which rasterisers with shadow maps get wrong in ways the optimiser
would absorb into the albedo. The split between what is differentiable and what is not:

* visibility (which triangle a ray sees, whether a shadow ray is blocked) comes from the Warp BVH
  in render/raytrace.py and is not differentiated;
* everything else is torch autograd: the hit point is recomputed from the hit face and the ray
  (Möller–Trumbore), so barycentrics, positions, smooth normals, UVs and texture look-ups carry
  gradients to vertices, camera, textures; light samples are reparameterised points on the light
  triangles (model/lightstage.py), so gradients reach the stage parameters; SH through model/sh.py;
* the visibility discontinuities at silhouettes get their gradient from edge sampling
  (render/edges.py), attached to the image and alpha.

A pixel is the box-filtered integral of radiance over its square (what Cycles computes with a
1 px box filter), estimated with `spp` jittered (stratified when spp is a square) rays.

Direct light: every stage light is sampled on its triangle (`light_samples` stratified points per
shading point, weight L·A/S), one shadow ray each; segments that cannot carry light (below the
surface, behind the one-sided emitter) are culled before tracing. The per-sample geometry term and
GGX lobe run in one fused Warp kernel whose adjoint Warp generates (backend "warp", float32, the
default); backend "torch" evaluates model/brdf.py's shade in autograd instead (any dtype) and is the
reference the Warp kernel is tested against.

Passes and composition (exact, per pixel): with alpha the covered fraction of the pixel,
    surface = albedo · (diffuse + ambient) + specular
    image   = alpha · surface + (1 − alpha) · background
where albedo is the mean albedo over the pixel's covered samples, diffuse and ambient are
albedo-weighted means (Σ ρ·D / Σ ρ, as Cycles divides its light passes by the colour pass) and
specular is the mean over covered samples. `diffuse` is the direct (and, with bounces=2, one
indirect) diffuse shading without albedo, shadows included; `ambient` is the SH shading E/π
without albedo; `irradiance` is the direct irradiance from the stage (W/m², shadows included);
`shadow` is the stage irradiance that arrives divided by what would arrive without occlusion
(1 = unshadowed, also where no stage light reaches); `normal` the mean world shading normal;
`face_id` the face of each pixel's first sample (−1 = background), `material` its material (0 = the
head's skin, k = scene.parts[k − 1], −1 = background) and `uv` its texture coordinates.

Parts (eyes, teeth, mouth): `RenderScene.parts` adds meshes with their own UVs and `Material`. They
are concatenated with the head into one mesh (one BVH: every part casts and receives shadows, and
face ids run over the head's faces first, then each part's); each shading point reads the maps of
its face's material. A material may carry a Principled "Coat": a second single-scatter GGX lobe
(its own roughness and IOR, Fresnel of that IOR) over the base, which Cycles layers as
    f = c·f_coat + (1 − c·E_coat(n·v))·(f_base_specular + w_d·ρ/π),
E_coat = mix(F0_coat, 1, S(r_coat, n·v, F0_coat^¼)) the same directional-albedo table the base uses
(model/brdf.py diffuse_weight); the SH ambient term of coated points takes the same attenuation.
The core samples lights only (no BSDF sampling), so coats sharper than roughness ~0.1 get noisy
highlights; the eye material keeps its coat at 0.15 or rougher.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from ..common.errors import FaceStageError
from ..model import brdf, lightstage
from ..model import emitters as emitters_mod
from ..model import sh as sh_mod
from ..model.camera import pixel_rays, project
from ..model.head import vertex_normals
from ..model.uvmaps import sample_texture
from .edges import edge_gradient, edge_topology, sample_edges, silhouette_edges
from .raytrace import Bvh, launch, warp_runtime, wp_device
from .sampling import stratified, triangle_points, uniform

log = logging.getLogger(__name__)

PASSES = ("albedo", "diffuse", "ambient", "specular", "irradiance", "shadow", "normal", "face_id", "material", "uv")


@dataclass
class Material:
    """Reflectance maps in one UV layout (row 0 = top, v = 1): Principled BSDF's base, optionally coated.

    Any map may be 1×1 (a constant)."""

    diffuse: torch.Tensor  # (Ht, Wt, 3) linear albedo
    specular: torch.Tensor  # (Hs, Ws, 1) Principled "Specular IOR Level"
    roughness: torch.Tensor  # (Hr, Wr, 1) Blender roughness
    coat: float = 0.0  # Principled "Coat Weight"
    coat_roughness: float = 0.15
    coat_ior: float = 1.5
    coat_map: torch.Tensor | None = None  # (Hc, Wc, 1) × coat: where the photo shows less of the coat's reflection


@dataclass
class Part:
    """A mesh rendered with the head (an eye, teeth, the mouth cavity), world space, with its own material."""

    verts: torch.Tensor  # (V, 3)
    faces: torch.Tensor  # (F, 3) long, indices into verts
    uvs: torch.Tensor  # (T, 2)
    face_uvs: torch.Tensor  # (F, 3) indices into uvs
    material: Material
    ambient_occlusion: torch.Tensor | None = None  # (V,) like RenderScene.ambient_occlusion


@dataclass
class RenderScene:
    """Everything the renderer reads, in world space (metres, Z up), float32 tensors on one device."""

    verts: torch.Tensor  # (V, 3)
    faces: torch.Tensor  # (F, 3) long
    uvs: torch.Tensor  # (T, 2), v up
    face_uvs: torch.Tensor  # (F, 3) indices into uvs (face-varying)
    diffuse: torch.Tensor  # (Ht, Wt, 3) linear albedo, row 0 = top (v = 1)
    specular: torch.Tensor  # (Ht, Wt, 1) Principled "Specular IOR Level"
    roughness: torch.Tensor  # (Ht, Wt, 1) Blender roughness (α = r²)
    K: torch.Tensor  # (3, 3) pixel intrinsics
    world_from_camera: torch.Tensor  # (4, 4) Blender camera convention
    width: int
    height: int
    sh: torch.Tensor | None = None  # (3, n) environment radiance coefficients
    stage: lightstage.LightStage | None = None
    lights: emitters_mod.Emitters | None = None  # other lights (a relight rig), world frame, not optimised
    background: torch.Tensor | None = None  # (3,) or (H, W, 3) linear; None = black
    environment: torch.Tensor | None = None  # (He, We, 3) equirect world radiance (Blender's mapping), world frame
    ambient_occlusion: torch.Tensor | None = None  # (V,) per-vertex SH visibility in [0, 1]
    parts: list[Part] = field(default_factory=list)  # eyes, teeth, mouth: rendered with the head, one BVH


def scene_mesh(scene: RenderScene) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertices, faces) of everything the scene renders: the head, then each part (what a reused Bvh is built on)."""
    if not scene.parts:
        return scene.verts, scene.faces.long()
    verts = [scene.verts] + [p.verts.to(scene.verts) for p in scene.parts]
    offsets = torch.tensor([0] + [v.shape[0] for v in verts[:-1]]).cumsum(0).tolist()
    faces = [f.long().to(scene.verts.device) + o for f, o in zip([scene.faces] + [p.faces for p in scene.parts], offsets)]
    return torch.cat(verts), torch.cat(faces)


@dataclass
class _Mesh:
    """The head and its parts as one mesh, with the material of each face."""

    verts: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor
    face_uvs: torch.Tensor
    face_material: torch.Tensor | None  # (F,) index into materials; None = every face is the head's skin
    materials: list[Material]
    ambient_occlusion: torch.Tensor | None


def _mesh(scene: RenderScene) -> _Mesh:
    skin = Material(scene.diffuse, scene.specular, scene.roughness)
    verts, faces = scene_mesh(scene)
    if not scene.parts:
        return _Mesh(verts, faces, scene.uvs, scene.face_uvs.long(), None, [skin], scene.ambient_occlusion)
    device = verts.device
    uvs = [scene.uvs] + [p.uvs.to(scene.uvs) for p in scene.parts]
    uv_offsets = torch.tensor([0] + [u.shape[0] for u in uvs[:-1]]).cumsum(0).tolist()
    face_uvs = torch.cat([f.long().to(device) + o for f, o in
                          zip([scene.face_uvs] + [p.face_uvs for p in scene.parts], uv_offsets)])
    face_material = torch.cat([torch.full((f.shape[0],), k, dtype=torch.long, device=device)
                               for k, f in enumerate([scene.faces] + [p.faces for p in scene.parts])])
    occlusions = [scene.ambient_occlusion] + [p.ambient_occlusion for p in scene.parts]
    ao = None
    if any(o is not None for o in occlusions):
        ao = torch.cat([o.to(verts) if o is not None else verts.new_ones(v.shape[0])
                        for o, v in zip(occlusions, [scene.verts] + [p.verts for p in scene.parts])])
    return _Mesh(verts, faces, torch.cat(uvs), face_uvs, face_material, [skin] + [p.material for p in scene.parts], ao)


@dataclass
class RenderOptions:
    """How to sample. Defaults are the fit's: 1 spp, 1 shadow ray per light, edge sampling on (it runs
    only when grad mode is on and the vertices, K or world_from_camera require grad)."""

    spp: int = 1  # primary rays per pixel (stratified when a square)
    light_samples: int = 1  # shadow rays per light per shading point (stratified when a square)
    bounces: int = 1  # 1 = direct light; 2 = plus one diffuse bounce (stage + SH light at the 2nd hit)
    jitter: bool = True  # False: rays through pixel centres (aliased, no pixel integral)
    edge_sampling: bool = True  # silhouette gradients (Li et al. 2018)
    edge_samples: int = 0  # 0 = 4·(W + H)
    edge_eps_px: float = 1e-2  # offset of the two radiance rays across an edge, pixels
    shadow_eps: float = 1e-4  # shadow-ray offset off the surface, metres
    return_passes: bool = False
    # World light: 0 = the SH's closed-form irradiance (no occlusion, no reflection of the world); N > 0 = N
    # cosine-weighted and N GGX-lobe directions per shading point, each with a shadow ray, for the SH or the
    # environment image: what Cycles computes for a World, occlusion and glossy reflection included.
    environment_samples: int = 0
    backend: str = "warp"  # direct light: "warp" fused kernel (float32), "torch" (model/brdf.py, any dtype)


@dataclass
class RenderOutput:
    image: torch.Tensor  # (H, W, 3) linear radiance
    alpha: torch.Tensor  # (H, W) covered fraction
    passes: dict[str, torch.Tensor] = field(default_factory=dict)


def compose(passes: dict[str, torch.Tensor], alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The image from its passes: alpha·(albedo·(diffuse + ambient) + specular) + (1 − alpha)·background."""
    surface = passes["albedo"] * (passes["diffuse"] + passes["ambient"]) + passes["specular"]
    a = alpha[..., None]
    return a * surface + (1 - a) * background


def _pixel_samples(height: int, width: int, spp: int, jitter: bool, generator: torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
    """Screen positions (H, W, spp, 2) of the primary samples."""
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    corner = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1)[:, :, None, :]
    if not jitter:
        return (corner + 0.5).expand(height, width, spp, 2)
    return corner + stratified((height, width), spp, generator, device)


@dataclass
class _Lights:
    """The lights that contribute (stage lights first, then the scene's other emitters)."""

    emitters: emitters_mod.Emitters  # J lights, world frame
    index: torch.Tensor  # (J,) which of all the scene's lights these are
    total: int  # lights in the scene (stage and others), dark ones included


def _scene_emitters(scene: RenderScene) -> emitters_mod.Emitters | None:
    """All the scene's lights as emitters: the stage's 20 (differentiable), then scene.lights."""
    parts = []
    if scene.stage is not None:
        parts.append(lightstage.emitters(scene.stage))
    if scene.lights is not None and len(scene.lights):
        parts.append(scene.lights)
    if not parts:
        return None
    dtype = parts[0].origin.dtype
    return emitters_mod.concat([p.to(parts[0].origin.device, dtype) for p in parts]) if len(parts) > 1 else parts[0]


def _stage_lights(scene: RenderScene, dtype: torch.dtype, device: torch.device) -> _Lights | None:
    """The lights to sample (in the scene's dtype and device): all of them while the stage's i is optimised,
    else only those with some power."""
    every = _scene_emitters(scene)
    if every is None:
        return None
    keep = torch.ones(len(every), dtype=torch.bool, device=every.power.device)
    if scene.stage is None or not torch.as_tensor(scene.stage.i).requires_grad:
        keep = every.power.detach().abs().sum(-1) > 0
    idx = torch.nonzero(keep).squeeze(1)
    if idx.numel() == 0:
        return None
    return _Lights(every.select(idx).to(device, dtype), idx.to(device), len(every))


def _light_points(lights: _Lights, m: int, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """Stratified uniform points (m, J·count, 3) on the lights, independent per shading point.

    Random numbers are drawn for every light of the scene, dark ones included, so a light's samples do
    not depend on which others are switched on (finite differences and gradients see the same estimate).
    """
    em = lights.emitters
    j = len(em)
    xi = stratified((m, lights.total), count, generator, em.origin.device)
    xi = xi[:, lights.index].to(em.origin.dtype) if j < lights.total else xi.to(em.origin.dtype)
    points = emitters_mod.sample_points(em, xi)  # (m, J, count, 3)
    return points.reshape(m, j * count, 3)


@dataclass
class _Context:
    scene: RenderScene
    options: RenderOptions
    bvh: Bvh
    mesh: _Mesh
    faces: torch.Tensor
    vertex_normals: torch.Tensor
    lights: _Lights | None
    sh_irradiance: torch.Tensor | None  # (3, n) irradiance coefficients
    background: torch.Tensor


@dataclass
class _Surface:
    """Shading points of the rays that hit (M of them)."""

    index: torch.Tensor  # (M,) ray index
    face: torch.Tensor  # (M,)
    x: torch.Tensor  # (M, 3)
    view: torch.Tensor  # (M, 3) unit, towards the ray origin
    ng: torch.Tensor  # (M, 3) geometric normal facing the ray
    ns: torch.Tensor  # (M, 3) smooth shading normal, same side
    bary: torch.Tensor  # (M, 3)


def _surface(ctx: _Context, origins: torch.Tensor, dirs: torch.Tensor, t_max: float = math.inf) -> _Surface:
    """Closest hits from the BVH; the hit point recomputed differentiably (Möller–Trumbore)."""
    hits = ctx.bvh.intersect(origins, dirs, t_max)
    index = torch.nonzero(hits.hit).squeeze(1)
    face = hits.face[index]
    tri = ctx.faces[face]
    verts = ctx.mesh.verts
    v0, v1, v2 = verts[tri[:, 0]], verts[tri[:, 1]], verts[tri[:, 2]]
    o = origins.expand(dirs.shape[0], 3)[index]
    d = dirs[index]
    e1, e2 = v1 - v0, v2 - v0
    p = torch.linalg.cross(d, e2)
    inv = 1.0 / (e1 * p).sum(-1, keepdim=True)
    s = o - v0
    q = torch.linalg.cross(s, e1)
    b1 = (s * p).sum(-1, keepdim=True) * inv
    b2 = (d * q).sum(-1, keepdim=True) * inv
    t = (e2 * q).sum(-1, keepdim=True) * inv
    x = o + t * d
    bary = torch.cat([1 - b1 - b2, b1, b2], dim=-1)
    vn = ctx.vertex_normals
    ns = bary[:, :1] * vn[tri[:, 0]] + bary[:, 1:2] * vn[tri[:, 1]] + bary[:, 2:] * vn[tri[:, 2]]
    ng = F.normalize(torch.linalg.cross(e1, e2), dim=-1)
    flip = torch.where((ng * d).sum(-1, keepdim=True) > 0, -1.0, 1.0).to(ng.dtype)
    return _Surface(index, face, x, -d, ng * flip, F.normalize(ns, dim=-1) * flip, bary)


@dataclass
class _Attributes:
    """What the shading points are made of."""

    albedo: torch.Tensor  # (M, 3)
    spec: torch.Tensor  # (M, 1) Specular IOR Level
    rough: torch.Tensor  # (M, 1)
    uv: torch.Tensor  # (M, 2)
    material: torch.Tensor | None = None  # (M,) material index; None = all skin
    coat: torch.Tensor | None = None  # (M, 1) coat weight; None = no coated point
    coat_spec: torch.Tensor | None = None  # (M, 1) the coat's IOR as a Specular IOR Level (F0 / 0.08)
    coat_rough: torch.Tensor | None = None  # (M, 1)


def _attributes(ctx: _Context, surf: _Surface) -> _Attributes:
    """Albedo, specular level, roughness and uv at the shading points, from each point's material."""
    mesh = ctx.mesh
    corners = mesh.face_uvs[surf.face]
    uvs = mesh.uvs
    uv = (surf.bary[:, :1] * uvs[corners[:, 0]] + surf.bary[:, 1:2] * uvs[corners[:, 1]]
          + surf.bary[:, 2:] * uvs[corners[:, 2]])
    if mesh.face_material is None:
        skin = mesh.materials[0]
        return _Attributes(sample_texture(skin.diffuse, uv), sample_texture(skin.specular, uv),
                           sample_texture(skin.roughness, uv), uv)
    material = mesh.face_material[surf.face]
    m = uv.shape[0]
    albedo, spec, rough = uv.new_zeros(m, 3), uv.new_zeros(m, 1), uv.new_zeros(m, 1)
    for k, mat in enumerate(mesh.materials):
        index = torch.nonzero(material == k).squeeze(1)
        if index.numel() == 0:
            continue
        at = uv[index]
        albedo = albedo.index_put((index,), sample_texture(mat.diffuse, at).to(uv.dtype))
        spec = spec.index_put((index,), sample_texture(mat.specular, at).to(uv.dtype))
        rough = rough.index_put((index,), sample_texture(mat.roughness, at).to(uv.dtype))
    attributes = _Attributes(albedo, spec, rough, uv, material)
    if any(mat.coat > 0 for mat in mesh.materials):
        def per_point(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=uv.dtype, device=uv.device)[material][:, None]

        coat = per_point([mat.coat for mat in mesh.materials])
        for k, mat in enumerate(mesh.materials):
            if mat.coat_map is None:
                continue
            index = torch.nonzero(material == k).squeeze(1)
            if index.numel():
                coat = coat.index_put((index,), coat[index] * sample_texture(mat.coat_map, uv[index]).to(uv.dtype))
        attributes.coat = coat
        attributes.coat_spec = per_point([((mat.coat_ior - 1) / (mat.coat_ior + 1)) ** 2 / 0.08 for mat in mesh.materials])
        attributes.coat_rough = per_point([mat.coat_roughness for mat in mesh.materials])
    return attributes


def _coated(surf: _Surface, attr: _Attributes) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(index of the coated points, their attenuation 1 − c·E_coat(n·v) (Mc, 1)) or None when none is coated."""
    if attr.coat is None:
        return None
    index = torch.nonzero(attr.coat[:, 0] > 0).squeeze(1)
    if index.numel() == 0:
        return None
    n_dot_v = (surf.ns[index] * surf.view[index]).sum(-1, keepdim=True).clamp(brdf.COS_EPS, 1.0)
    albedo = 1 - brdf.diffuse_weight(n_dot_v, attr.coat_spec[index], attr.coat_rough[index])  # type: ignore[index]
    return index, 1 - attr.coat[index] * albedo


def _subset(surf: _Surface, index: torch.Tensor) -> _Surface:
    return _Surface(surf.index[index], surf.face[index], surf.x[index], surf.view[index], surf.ng[index],
                    surf.ns[index], surf.bary[index])


@dataclass
class _Direct:
    diffuse: torch.Tensor  # (M, 3) Σ f_d(ρ=1)·E
    specular: torch.Tensor  # (M, 3)
    irradiance: torch.Tensor  # (M, 3) with shadows
    unshadowed: torch.Tensor  # (M,) Σ over channels of the irradiance without occlusion


@lru_cache(maxsize=1)
def _light_kernel() -> Any:
    """Fused per-(point, light sample) kernel: geometry term and specular lobe, differentiated by Warp's adjoint.

    The lobe must be model/brdf.py shade's, clamps included (tests/test_render.py compares both backends,
    values and gradients): f_s = D·G₂·F/(4 (n·l)(n·v)), GGX D with α = max(r², ALPHA_MIN),
    height-correlated Smith G₂, exact dielectric Fresnel at the IOR whose F0 is 0.08·s. Principled's
    diffuse weight depends on the view only, so it is applied per point in torch (brdf.diffuse_weight).
    """
    wp, _ = warp_runtime()
    alpha_min, cos_eps, f0_min = float(brdf.ALPHA_MIN), float(brdf.COS_EPS), float(brdf.F0_MIN)

    @wp.kernel
    def light_terms(x: wp.array(dtype=wp.vec3), ns: wp.array(dtype=wp.vec3), view: wp.array(dtype=wp.vec3),
                    spec: wp.array(dtype=wp.float32), rough: wp.array(dtype=wp.float32),
                    y: wp.array(dtype=wp.vec3), ng: wp.array(dtype=wp.vec3), nl: wp.array(dtype=wp.vec3),
                    vis: wp.array(dtype=wp.float32), pairs: wp.array(dtype=wp.int32), omni: wp.array(dtype=wp.int32),
                    per: wp.int32, expanded: wp.int32, offset: wp.int32, specular: wp.array(dtype=wp.float32),
                    irradiance: wp.array(dtype=wp.float32), unshadowed: wp.array(dtype=wp.float32)):
        i = pairs[wp.tid() + offset]
        m = i / per
        if expanded != 0:  # per-point arrays repeated per sample (deterministic CUDA adjoint)
            m = i
        d = y[i] - x[m]
        r2 = wp.max(wp.dot(d, d), 1.0e-12)
        l = d / wp.sqrt(r2)
        n = ns[m]
        v = view[m]
        cos_l = -wp.dot(l, nl[i % per])
        if omni[i % per] != 0:  # a point light: no cosine at the emitter
            cos_l = 1.0
        cos_x = wp.dot(l, n)
        lit = (cos_l > 0.0) and (cos_x > 0.0) and (wp.dot(l, ng[m]) > 0.0)
        g = wp.where(lit, wp.max(cos_x, 0.0) * wp.max(cos_l, 0.0) / r2, 0.0)
        gv = g * vis[i]
        nv = wp.dot(n, v)
        fs = float(0.0)
        if gv > 0.0 and nv > 0.0:  # unlit, shadowed or back-facing samples skip the lobe, forward and adjoint
            nl_c = wp.clamp(cos_x, cos_eps, 1.0)
            nv_c = wp.clamp(nv, cos_eps, 1.0)
            h = wp.normalize(v + l)
            nh = wp.clamp(wp.dot(n, h), 0.0, 1.0)
            vh = wp.clamp(wp.dot(v, h), cos_eps, 1.0)
            r = rough[m]
            alpha = wp.max(r * r, alpha_min)
            a2 = alpha * alpha
            t = nh * nh * (a2 - 1.0) + 1.0
            dist = a2 / (wp.pi * t * t)
            lam_l = 0.5 * (wp.sqrt(1.0 + a2 * (1.0 - nl_c * nl_c) / (nl_c * nl_c)) - 1.0)
            lam_v = 0.5 * (wp.sqrt(1.0 + a2 * (1.0 - nv_c * nv_c) / (nv_c * nv_c)) - 1.0)
            g2 = 1.0 / (1.0 + lam_l + lam_v)
            root = wp.sqrt(wp.clamp(0.08 * wp.max(spec[m], 0.0), f0_min, 1.0 - 1.0e-6))
            eta = (1.0 + root) / (1.0 - root)
            gg = wp.sqrt(eta * eta - 1.0 + vh * vh)
            fa = (gg - vh) / (gg + vh)
            fb = (vh * (gg + vh) - 1.0) / (vh * (gg - vh) + 1.0)
            fresnel = 0.5 * fa * fa * (1.0 + fb * fb)
            fs = dist * g2 * fresnel / (4.0 * nl_c * nv_c) * gv
        specular[i] = fs
        irradiance[i] = gv
        unshadowed[i] = g

    return light_terms


class _LightTerms(torch.autograd.Function):
    """(M, K) per-sample terms f_s·V·G, V·G and G (G = cos_x·cos_l/r²) from the Warp kernel, evaluated only
    at `pairs` (flat indices of the samples the shadow pass did not cull; zero elsewhere)."""

    @staticmethod
    def forward(ctx, x, ns, view, spec, rough, y, ng, nl, vis, pairs, omni):  # type: ignore[override]
        wp, _ = warp_runtime()
        m, k = y.shape[0], y.shape[1]
        inputs = [t.detach().to(torch.float32).contiguous() for t in (x, ns, view, spec, rough)]
        inputs.append(y.detach().to(torch.float32).reshape(m * k, 3).contiguous())
        consts = [t.detach().to(torch.float32).contiguous() for t in (ng, nl, vis.reshape(m * k))]
        consts.append(pairs.to(torch.int32).contiguous())
        consts.append(omni.to(torch.int32).contiguous())
        outs = [torch.zeros(m * k, dtype=torch.float32, device=x.device) for _ in range(3)]
        ctx.save_for_backward(*inputs, *consts)
        ctx.shape = (m, k)
        if pairs.numel():
            launch(_light_kernel(), pairs.numel(), _wp_args(wp, [*inputs, *consts]) + [k, 0], _wp_args(wp, outs),
                   wp_device(x))
        ctx.mark_non_differentiable(outs[2])
        return tuple(o.view(m, k) for o in outs)

    @staticmethod
    def backward(ctx, *grads):  # type: ignore[override]
        wp, _ = warp_runtime()
        saved = ctx.saved_tensors
        inputs, consts = list(saved[:6]), list(saved[6:])
        m, k = ctx.shape
        device = inputs[0].device
        # CUDA adds the K samples of a point into its gradient with atomics in no fixed order; repeating the
        # per-point arrays per sample gives each sample its own slot, summed afterwards in a fixed order.
        expand = device.type == "cuda"
        if expand:
            repeat = torch.arange(m, device=device).repeat_interleave(k)
            inputs[:5] = [t[repeat].contiguous() for t in inputs[:5]]
            consts[0] = consts[0][repeat].contiguous()
        adj_in = [torch.zeros_like(t) for t in inputs]
        adj_out = [(g if g is not None else torch.zeros(m, k, device=device)).to(torch.float32)
                   .reshape(m * k).contiguous() for g in grads]
        outs = [torch.zeros(m * k, dtype=torch.float32, device=device) for _ in range(3)]
        if consts[3].numel():
            launch(_light_kernel(), consts[3].numel(), _wp_args(wp, [*inputs, *consts]) + [k, int(expand)],
                   _wp_args(wp, outs), wp_device(inputs[0]),
                   adj_inputs=_wp_args(wp, adj_in) + [None, None, None, None, None, 0, 0],
                   adj_outputs=_wp_args(wp, adj_out), private=(0, 1, 2, 3, 4))
        if expand:
            adj_in[:5] = [a.view(m, k, *a.shape[1:]).sum(1) for a in adj_in[:5]]
        adj_in[5] = adj_in[5].view(m, k, 3)
        return (*adj_in, None, None, None, None, None)


def _wp_args(wp: Any, tensors: list[torch.Tensor]) -> list[Any]:
    """Zero-copy Warp views: (N, 3) tensors as vec3 arrays, (N,) as scalar arrays."""
    return [wp.from_torch(t, dtype=wp.vec3) if t.ndim == 2 and t.shape[1] == 3 else wp.from_torch(t)
            for t in tensors]


def _direct(ctx: _Context, surf: _Surface, attr: _Attributes, generator: torch.Generator | None,
            with_specular: bool = True) -> _Direct | None:
    """Direct light from the scene's lights at the shading points: Σ_j Σ_s f·V·cos_x·cos_l·(L·A/S)/r²
    (point lights: cos_l = 1 and L·A is their intensity, times the spot cone)."""
    lights = ctx.lights
    if lights is None:
        return None
    em = lights.emitters
    spec, rough = attr.spec, attr.rough
    m, count = surf.x.shape[0], ctx.options.light_samples
    y = _light_points(lights, m, count, generator)  # (M, K, 3), K = J·S
    n_light = em.normal.detach().repeat_interleave(count, 0)  # (K, 3)
    omni = em.omni.repeat_interleave(count, 0)  # (K,)
    if bool(omni.any()):  # one-sided emitters cull segments behind them; points shine everywhere
        codes = torch.empty(m, y.shape[1], dtype=torch.uint8, device=surf.x.device)
        area = torch.nonzero(~omni).squeeze(1)
        point = torch.nonzero(omni).squeeze(1)
        if area.numel():
            codes[:, area] = ctx.bvh.segments_occluded(surf.x, surf.ng, y[:, area], ctx.options.shadow_eps,
                                                       cull=(surf.ns, n_light[area]), codes=True)
        codes[:, point] = ctx.bvh.segments_occluded(surf.x, surf.ng, y[:, point], ctx.options.shadow_eps, codes=True)
    else:
        codes = ctx.bvh.segments_occluded(surf.x, surf.ng, y, ctx.options.shadow_eps, cull=(surf.ns, n_light),
                                          codes=True)  # 0 visible, 1 occluded, 2 culled (cannot carry light)
    power = em.power.repeat_interleave(count, 0) / count  # (K, 3)
    vis = (codes == 0).to(surf.x.dtype)
    if em.has_spots:
        column_light = torch.arange(len(em), device=surf.x.device).repeat_interleave(count)
        vis = vis * emitters_mod.spot_factor(em, surf.x.detach(), column_light).to(vis.dtype)
    if ctx.options.backend == "warp":
        pairs = torch.nonzero(codes.view(-1) != 2).squeeze(1)
        fs, seen, geometry = _LightTerms.apply(surf.x, surf.ns, surf.view, spec[:, 0], rough[:, 0], y, surf.ng,
                                               n_light, vis, pairs, omni)
        fs, seen = fs.to(power.dtype), seen.to(power.dtype)
        irradiance = seen @ power
        n_dot_v = (surf.ns * surf.view).sum(-1, keepdim=True)
        weight = brdf.diffuse_weight(n_dot_v.clamp(brdf.COS_EPS, 1.0), spec, rough) * (n_dot_v > 0)
        diffuse = weight / math.pi * irradiance
    else:
        fd, fs, seen, geometry = _light_terms_torch(surf, spec, rough, y, n_light, vis, omni)
        irradiance = seen @ power
        diffuse = fd @ power
    specular = fs @ power if with_specular else torch.zeros_like(surf.x)
    coated = _coated(surf, attr)
    if coated is not None:
        index, attenuation = coated
        factor = torch.ones_like(surf.x[:, :1]).index_put((index,), attenuation)
        diffuse, specular = diffuse * factor, specular * factor
        if with_specular:
            coat_spec, coat_rough = attr.coat_spec[index], attr.coat_rough[index]  # type: ignore[index]
            sub = _subset(surf, index)
            if ctx.options.backend == "warp":
                pairs = torch.nonzero(codes[index].view(-1) != 2).squeeze(1)
                fs_coat = _LightTerms.apply(sub.x, sub.ns, sub.view, coat_spec[:, 0], coat_rough[:, 0], y[index],
                                            sub.ng, n_light, vis[index], pairs, omni)[0].to(power.dtype)
            else:
                fs_coat = _light_terms_torch(sub, coat_spec, coat_rough, y[index], n_light, vis[index], omni)[1]
            coat = attr.coat[index] * (fs_coat @ power)  # type: ignore[index]
            specular = specular + torch.zeros_like(specular).index_put((index,), coat)
    with torch.no_grad():
        unshadowed = (geometry.to(power.dtype) @ power.detach()).sum(-1)
    return _Direct(diffuse, specular, irradiance, unshadowed)


def _light_terms_torch(surf: _Surface, spec: torch.Tensor, rough: torch.Tensor, y: torch.Tensor,
                       n_light: torch.Tensor, vis: torch.Tensor, omni: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(M, K) terms f_d·V·G, f_s·V·G, V·G and G with model/brdf.py shade in torch autograd (any dtype)."""
    to_light = y - surf.x[:, None]
    r2 = (to_light * to_light).sum(-1).clamp_min(1e-12)
    l = to_light * r2.rsqrt()[..., None]
    cos_l = torch.where(omni, torch.ones_like(r2), -(l * n_light).sum(-1))
    cos_x = (l * surf.ns[:, None]).sum(-1)
    lit = ((l * surf.ng[:, None]).sum(-1) > 0) & (cos_l > 0) & (cos_x > 0)
    geometry = torch.where(lit, cos_x * cos_l / r2, torch.zeros_like(r2))
    seen = geometry * vis
    ones = spec.new_ones(1, 1, 1).expand(*l.shape[:2], 1)
    fd, fs = brdf.shade(surf.ns[:, None], surf.view[:, None], l, ones, spec[:, None], rough[:, None])
    return fd[..., 0] * seen, fs[..., 0] * seen, seen, geometry.detach()


ENVIRONMENT_FAR = 100.0  # metres: shadow rays towards the world end this far away


def _environment_samples(ctx: _Context) -> int:
    scene = ctx.scene
    if scene.environment is None and scene.sh is None:
        return 0
    return ctx.options.environment_samples or (16 if scene.environment is not None else 0)


def _world_radiance(ctx: _Context, dirs: torch.Tensor) -> torch.Tensor:
    """World radiance (..., 3) along unit directions: the environment image (bilinear, wrapping in u) or the
    SH, clamped at 0 (a baked Blender world cannot emit negative light)."""
    scene = ctx.scene
    if scene.environment is not None:
        image = scene.environment.to(dirs.device, dirs.dtype)
        uv = sh_mod.equirect_uv(dirs.reshape(-1, 3))
        wrapped = torch.cat([image[:, -1:], image, image[:, :1]], dim=1).permute(2, 0, 1)[None]
        width = image.shape[1]
        x = (uv[:, 0] * width + 0.5) / (width + 2) * 2 - 1
        y = 1 - 2 * uv[:, 1]
        grid = torch.stack([x, y], -1)[None, None]
        values = F.grid_sample(wrapped, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
        return values.reshape(*dirs.shape[:-1], 3)
    coeffs = scene.sh.to(dirs.device, dirs.dtype)  # type: ignore[union-attr]
    basis = sh_mod.sh_basis(dirs.reshape(-1, 3), sh_mod.bands_from_size(coeffs.shape[-1]))
    return (basis @ coeffs.T).clamp_min(0).reshape(*dirs.shape[:-1], coeffs.shape[0])


def _world(ctx: _Context, surf: _Surface, spec: torch.Tensor, rough: torch.Tensor,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled world light (M, 3) twice: the diffuse ambient pass w(n·v)·E/π and the world's glossy reflection.

    Diffuse: N cosine-weighted directions about the shading normal, E/π = mean of L·V. Glossy: N directions
    reflected about GGX visible normals, weighted by F(v·h)·G₂/G₁(v) (the lobe's f·cos / pdf). V is a shadow
    ray towards the world; directions below the geometric surface see nothing.
    """
    n = _environment_samples(ctx)
    m = surf.x.shape[0]
    dtype = surf.x.dtype
    xi = stratified((m,), n, generator, surf.x.device).to(dtype)
    ns, view, ng = surf.ns, surf.view, surf.ng
    r, phi = xi[..., 0].sqrt(), 2 * math.pi * xi[..., 1]
    helper = torch.where(ns[:, :1].abs() < 0.9, ns.new_tensor([1.0, 0, 0]), ns.new_tensor([0, 1.0, 0]))
    t1 = F.normalize(torch.linalg.cross(helper, ns), dim=-1)
    t2 = torch.linalg.cross(ns, t1)
    z = (1 - xi[..., 0]).clamp_min(0).sqrt()
    cosine = ((r * phi.cos())[..., None] * t1[:, None] + (r * phi.sin())[..., None] * t2[:, None] + z[..., None] * ns[:, None])
    alpha = brdf.alpha_from_roughness(rough)  # (M, 1)
    xi_s = stratified((m,), n, generator, surf.x.device).to(dtype)
    half = brdf.sample_visible_normals(ns[:, None].expand(m, n, 3), view[:, None].expand(m, n, 3),
                                       alpha[:, None].expand(m, n, 1), xi_s)
    v_dot_h = (view[:, None] * half).sum(-1, keepdim=True)
    glossy = 2 * v_dot_h * half - view[:, None]
    environment = _environment_distribution(ctx)
    if environment is not None:  # an image world: half of the diffuse directions follow its brightness (MIS)
        cosine = torch.cat([cosine, environment.sample(m, n, generator)], dim=1)
    dirs = torch.cat([cosine, glossy], dim=1).detach()  # (M, 2N or 3N, 3)
    above = (dirs * ng[:, None]).sum(-1) > 0
    blocked = ctx.bvh.segments_occluded(surf.x, ng, surf.x.detach()[:, None] + ENVIRONMENT_FAR * dirs,
                                        ctx.options.shadow_eps)
    seen = (above & ~blocked).to(dtype)[..., None]
    light = _world_radiance(ctx, dirs) * seen  # (M, 2N, C)
    n_dot_v = (ns * view).sum(-1, keepdim=True)
    weight = brdf.diffuse_weight(n_dot_v.clamp(brdf.COS_EPS, 1.0), spec, rough)  # continuous, as in _shade
    diffuse_count = cosine.shape[1]
    if environment is None:
        ambient = weight * light[:, :n].mean(1)
    else:  # balance heuristic: Σ f/(N·(p_cos + p_env)) over both sets, f = L·V·cos⁺/π
        cos_l = (cosine * ns[:, None]).sum(-1).clamp_min(0)
        p_cos = cos_l / math.pi
        p_env = environment.pdf(cosine)
        ambient = weight * (light[:, :diffuse_count] * (p_cos / (p_cos + p_env).clamp_min(1e-20))[..., None]
                            ).sum(1) / n
    light = light[:, diffuse_count - n:]
    n_dot_l = (ns[:, None] * glossy).sum(-1, keepdim=True)
    f0 = brdf.f0_from_specular_level(spec.clamp_min(0.0))[:, None]
    lobe = (brdf.fresnel_principled(v_dot_h, f0) * brdf.smith_g2(n_dot_l.clamp(brdf.COS_EPS, 1), n_dot_v[:, None].clamp(brdf.COS_EPS, 1), alpha[:, None])
            / brdf.smith_g1(n_dot_v[:, None].clamp(brdf.COS_EPS, 1), alpha[:, None]))
    lobe = torch.where((n_dot_l > 0) & (n_dot_v[:, None] > 0), lobe, torch.zeros_like(lobe))
    specular = (lobe * light[:, n:]).mean(1)
    return ambient, specular


@dataclass
class _EnvironmentDistribution:
    """Directions drawn in proportion to an equirect image's luminance × solid angle, and their pdf (per sr)."""

    probability: torch.Tensor  # (H·W,) of each pixel
    height: int
    width: int

    def sample(self, m: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = self.probability.device
        if m * n == 0:  # a tile with no surface in it (torch.multinomial refuses to draw nothing)
            return torch.zeros((m, n, 3), dtype=self.probability.dtype, device=device)
        source = generator.device if generator is not None else torch.device("cpu")
        pixel = torch.multinomial(self.probability.to(source), m * n, replacement=True, generator=generator).to(device)
        jitter = uniform((m * n, 2), generator, device, self.probability.dtype)
        row, col = pixel // self.width, pixel % self.width
        u = (col + jitter[:, 0]) / self.width
        theta = (row + jitter[:, 1]) * (math.pi / self.height)  # from +Z (row 0 = top)
        phi = math.pi - 2 * math.pi * u
        dirs = torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], -1)
        return dirs.reshape(m, n, 3)

    def pdf(self, dirs: torch.Tensor) -> torch.Tensor:
        uv = sh_mod.equirect_uv(dirs)
        col = (uv[..., 0] * self.width).floor().long().clamp(0, self.width - 1)
        row = ((1 - uv[..., 1]) * self.height).floor().long().clamp(0, self.height - 1)
        sin = torch.sqrt((1 - dirs[..., 2] ** 2).clamp_min(1e-12))
        density = self.probability.to(dirs.dtype)[row * self.width + col]
        return density * (self.height * self.width) / (2 * math.pi ** 2 * sin)


def _environment_distribution(ctx: _Context) -> _EnvironmentDistribution | None:
    """The sampling distribution of the scene's environment image (None for an SH world), built once per render."""
    image = ctx.scene.environment
    if image is None:
        return None
    cached = getattr(ctx, "_environment", None)
    if cached is None:
        height, width = image.shape[:2]
        theta = (torch.arange(height, dtype=torch.float64) + 0.5) * (math.pi / height)
        luminance = (image.detach().double().cpu() @ torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)).clamp_min(0)
        weight = (luminance * theta.sin()[:, None]).reshape(-1)
        weight = weight + 1e-3 * weight.mean() + 1e-30  # every pixel stays reachable
        cached = _EnvironmentDistribution((weight / weight.sum()).to(image.device, torch.float32), height, width)
        ctx._environment = cached  # type: ignore[attr-defined]
    return cached


def _ambient(ctx: _Context, surf: _Surface, attr: _Attributes) -> torch.Tensor | None:
    """SH shading E(n)/π (M, 3), optionally scaled by the per-vertex ambient occlusion and, on coated
    materials, by what the coat lets through (None when the world is sampled instead: `_world`)."""
    if ctx.sh_irradiance is None or _environment_samples(ctx) > 0:
        return None
    coeffs = ctx.sh_irradiance
    e = (sh_mod.sh_basis(surf.ns, sh_mod.bands_from_size(coeffs.shape[-1])) @ coeffs.T).clamp_min(0) / math.pi
    ao = ctx.mesh.ambient_occlusion
    if ao is not None:
        tri = ctx.faces[surf.face]
        e = e * (surf.bary * ao.detach()[tri]).sum(-1, keepdim=True)
    coated = _coated(surf, attr)
    if coated is not None:
        index, attenuation = coated
        e = e * torch.ones_like(e[:, :1]).index_put((index,), attenuation)
    return e


def _cosine_directions(ns: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Cosine-weighted unit directions about ns (M, 3)."""
    xi = uniform((ns.shape[0], 2), generator, ns.device).to(ns.dtype)
    r, phi = xi[:, 0].sqrt(), 2 * math.pi * xi[:, 1]
    helper = torch.where(ns[:, :1].abs() < 0.9, ns.new_tensor([1.0, 0, 0]), ns.new_tensor([0, 1.0, 0]))
    t1 = F.normalize(torch.linalg.cross(helper, ns), dim=-1)
    t2 = torch.linalg.cross(ns, t1)
    z = (1 - xi[:, :1]).clamp_min(0).sqrt()
    return (r * phi.cos())[:, None] * t1 + (r * phi.sin())[:, None] * t2 + z * ns


@dataclass
class _Shaded:
    """Per-ray shading of N rays: hit mask and, for the M hits shaded (`surf.index`), the pass values."""

    hit: torch.Tensor  # (N,) bool
    surf: _Surface
    attr: _Attributes
    albedo: torch.Tensor  # (M, 3)
    diffuse: torch.Tensor  # (M, 3) without albedo
    ambient: torch.Tensor  # (M, 3) without albedo
    specular: torch.Tensor  # (M, 3)
    irradiance: torch.Tensor  # (M, 3)
    unshadowed: torch.Tensor  # (M,)

    @property
    def radiance(self) -> torch.Tensor:
        return self.albedo * (self.diffuse + self.ambient) + self.specular


def _shade(ctx: _Context, origins: torch.Tensor, dirs: torch.Tensor, generator: torch.Generator | None,
           keep: torch.Tensor | None = None) -> _Shaded:
    """Every ray's closest hit, and the shading of those hits whose ray is in `keep` (N,) bool (all by default)."""
    surf = _surface(ctx, origins, dirs)
    hit = torch.zeros(dirs.shape[0], dtype=torch.bool, device=dirs.device)
    hit[surf.index] = True
    if keep is not None:
        surf = _subset(surf, torch.nonzero(keep[surf.index]).squeeze(1))
    attr = _attributes(ctx, surf)
    zeros = torch.zeros_like(surf.x)
    direct = _direct(ctx, surf, attr, generator)
    if direct is None:
        diffuse, specular, irradiance = zeros, zeros, zeros
        unshadowed = zeros[:, 0]
    else:
        diffuse, specular, irradiance, unshadowed = (direct.diffuse, direct.specular, direct.irradiance,
                                                     direct.unshadowed)
    ambient = _ambient(ctx, surf, attr)
    if ambient is None:
        ambient = zeros
    else:  # Principled's diffuse weight applies to the world's light as to the lamps'; no cut where the smooth
        # normal turns from the viewer: that step would sit inside the surface, where edge sampling cannot see it
        n_dot_v = (surf.ns * surf.view).sum(-1, keepdim=True)
        ambient = ambient * brdf.diffuse_weight(n_dot_v.clamp(brdf.COS_EPS, 1.0), attr.spec, attr.rough)
    if _environment_samples(ctx) > 0:
        world_diffuse, world_specular = _world(ctx, surf, attr.spec, attr.rough, generator)
        coated = _coated(surf, attr)
        if coated is not None:  # what the coat lets through, plus the coat's own reflection of the world
            index, attenuation = coated
            factor = torch.ones_like(world_diffuse[:, :1]).index_put((index,), attenuation)
            world_diffuse, world_specular = world_diffuse * factor, world_specular * factor
            _, coat_world = _world(ctx, _subset(surf, index), attr.coat_spec[index],  # type: ignore[index]
                                   attr.coat_rough[index], generator)  # type: ignore[index]
            coat = attr.coat[index] * coat_world  # type: ignore[index]
            world_specular = world_specular + torch.zeros_like(world_specular).index_put((index,), coat)
        ambient = ambient + world_diffuse
        specular = specular + world_specular
    if ctx.options.bounces >= 2:
        diffuse = diffuse + _bounce(ctx, surf, attr, generator)
    return _Shaded(hit, surf, attr, attr.albedo, diffuse, ambient, specular, irradiance, unshadowed)


def _bounce(ctx: _Context, surf: _Surface, attr: _Attributes, generator: torch.Generator | None) -> torch.Tensor:
    """One diffuse bounce (M, 3), without the albedo at the first hit: w(n·v)·L_y, L_y = ρ_y·(D_y + A_y) the
    diffuse radiance of the surface seen along a cosine-sampled direction (the estimator of
    ∫ w·ρ/π·L·cos dω with pdf cos/π), w Principled's diffuse weight at the first hit. Rays that
    escape add nothing: the SH ambient term already integrates the environment."""
    dirs = _cosine_directions(surf.ns, generator)
    start = surf.x + ctx.options.shadow_eps * surf.ng
    second = _surface(ctx, start, dirs)
    attr_y = _attributes(ctx, second)
    albedo = attr_y.albedo
    direct = _direct(ctx, second, attr_y, generator, with_specular=False)
    light = albedo * (direct.diffuse if direct is not None else torch.zeros_like(albedo))
    ambient = _ambient(ctx, second, attr_y)
    if ambient is not None:
        light = light + albedo * ambient
    # a direction below the geometric surface (smooth normals allow it) would see the surface's own back
    above = ((dirs[second.index] * surf.ng[second.index]).sum(-1, keepdim=True) > 0).to(light.dtype)
    n_dot_v = (surf.ns * surf.view).sum(-1, keepdim=True)
    weight = brdf.diffuse_weight(n_dot_v.clamp(brdf.COS_EPS, 1.0), attr.spec, attr.rough) * (n_dot_v > 0)
    coated = _coated(surf, attr)
    if coated is not None:
        weight = weight * torch.ones_like(weight).index_put((coated[0],), coated[1])
    return torch.zeros_like(surf.x).index_add(0, second.index, light * above) * weight


def _background(scene: RenderScene, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Background radiance (H, W, 3)."""
    if scene.background is None:
        return torch.zeros(scene.height, scene.width, 3, device=device, dtype=dtype)
    bg = scene.background.to(device=device, dtype=dtype)
    if bg.shape == (3,):
        return bg.expand(scene.height, scene.width, 3)
    if bg.shape != (scene.height, scene.width, 3):
        raise FaceStageError(f"The background must be 3 values or an image of {scene.width}x{scene.height}.")
    return bg


def _check(scene: RenderScene, options: RenderOptions) -> None:
    if scene.verts.ndim != 2 or scene.verts.shape[-1] != 3:
        raise FaceStageError("The render needs vertices shaped (V, 3).")
    if options.spp < 1 or options.light_samples < 1:
        raise FaceStageError("The render needs at least one sample per pixel and per light.")
    if options.bounces not in (1, 2):
        raise FaceStageError("The render supports 1 or 2 bounces.")
    if options.backend not in ("warp", "torch"):
        raise FaceStageError(f"Unknown render backend {options.backend!r}; use 'warp' or 'torch'.")
    if options.backend == "warp" and scene.verts.dtype != torch.float32:
        raise FaceStageError("The 'warp' render backend needs float32 vertices; use backend='torch' for others.")


def render(scene: RenderScene, options: RenderOptions | None = None, generator: torch.Generator | None = None,
           bvh: Bvh | None = None, pixel_mask: torch.Tensor | None = None) -> RenderOutput:
    """Render `scene`; differentiable in vertices, camera, textures, SH and light-stage parameters.

    `generator` drives every random choice (pixel jitter, light samples, bounce directions, edge
    samples), so a seeded generator gives a deterministic render. Pass a `bvh` built on
    `scene_mesh(scene)` to reuse it across iterations (it is refitted to the scene's vertices here).
    `pixel_mask` (H, W) bool: shade only these pixels; the others keep their alpha (and the edge
    gradient) but have no radiance. A fit whose loss reads a mask of the crop (the skin: under two
    fifths of the head's pixels) pays for nothing else.
    """
    options = options or RenderOptions()
    _check(scene, options)
    if pixel_mask is not None and options.return_passes:
        raise FaceStageError("A render with a pixel mask has no passes; render the passes of the whole image.")
    device, dtype = scene.verts.device, scene.verts.dtype
    height, width, spp = scene.height, scene.width, options.spp
    mesh = _mesh(scene)
    faces = mesh.faces
    if bvh is None:
        bvh = Bvh(mesh.verts, faces)
    else:
        bvh.refit(mesh.verts)
    ctx = _Context(scene, options, bvh, mesh, faces, vertex_normals(mesh.verts, faces),
                   _stage_lights(scene, dtype, device),
                   sh_mod.irradiance_coeffs(scene.sh.to(device, dtype)) if scene.sh is not None else None,
                   _background(scene, device, dtype))

    pixels = _pixel_samples(height, width, spp, options.jitter, generator, device)
    origin, dirs = pixel_rays(scene.K, scene.world_from_camera, pixels.reshape(-1, 2).to(dtype))
    keep = None if pixel_mask is None else pixel_mask.to(device=device, dtype=torch.bool)[..., None].expand(
        height, width, spp).reshape(-1)
    shaded = _shade(ctx, origin, dirs, generator, keep)
    n = dirs.shape[0]
    log.debug("render %dx%d, %d rays, %d hits, %d lights × %d samples", width, height, n,
              shaded.surf.index.numel(), 0 if ctx.lights is None else ctx.lights.index.numel(), options.light_samples)
    index = shaded.surf.index
    radiance = torch.zeros(n, 3, device=device, dtype=dtype).index_put((index,), shaded.radiance)
    hit = shaded.hit.to(dtype)
    bg = ctx.background[:, :, None, :].expand(height, width, spp, 3).reshape(n, 3)
    rgba = torch.cat([radiance + (1 - hit)[:, None] * bg, hit[:, None]], dim=-1)
    rgba = rgba.view(height, width, spp, 4).mean(2)

    if options.edge_sampling and torch.is_grad_enabled() and _geometry_requires_grad(scene):
        rgba = _edge_term(ctx, rgba, generator)

    passes = _passes(ctx, shaded, n) if options.return_passes else {}
    return RenderOutput(rgba[..., :3], rgba[..., 3], passes)


def _geometry_requires_grad(scene: RenderScene) -> bool:
    return (scene.verts.requires_grad or scene.K.requires_grad or scene.world_from_camera.requires_grad
            or any(p.verts.requires_grad for p in scene.parts))


def _edge_term(ctx: _Context, rgba: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Attach the silhouette gradient (render/edges.py) to the RGBA image."""
    scene, options = ctx.scene, ctx.options
    topo = edge_topology(ctx.faces)
    eye = scene.world_from_camera[:3, 3]
    edges = topo.edges[silhouette_edges(ctx.mesh.verts, ctx.faces, topo, eye)]
    screen, depth = project(ctx.mesh.verts, scene.K, scene.world_from_camera)
    count = options.edge_samples or 4 * (scene.width + scene.height)
    samples = sample_edges(screen, depth.detach(), edges, count, generator)

    def radiance(points: torch.Tensor) -> torch.Tensor:
        origin, dirs = pixel_rays(scene.K.detach(), scene.world_from_camera.detach(), points)
        shaded = _shade(ctx, origin, dirs, generator)
        hit = shaded.hit.to(points.dtype)
        x = points[:, 0].floor().long().clamp(0, scene.width - 1)
        y = points[:, 1].floor().long().clamp(0, scene.height - 1)
        out = torch.cat([ctx.background[y, x] * (1 - hit)[:, None], hit[:, None]], dim=-1)
        out[shaded.surf.index, :3] += shaded.radiance
        return out

    return edge_gradient(rgba, samples, radiance, options.edge_eps_px)


def _passes(ctx: _Context, shaded: _Shaded, n: int) -> dict[str, torch.Tensor]:
    """Per-pixel passes (see the module docstring for the composition rule); not differentiated."""
    scene, spp = ctx.scene, ctx.options.spp
    height, width = scene.height, scene.width
    with torch.no_grad():
        index = shaded.surf.index
        device, dtype = shaded.albedo.device, shaded.albedo.dtype

        def per_pixel(values: torch.Tensor) -> torch.Tensor:
            full = torch.zeros(n, values.shape[-1], device=device, dtype=dtype).index_put((index,), values.detach())
            return full.view(height, width, spp, -1).sum(2)

        albedo = shaded.albedo.detach()
        covered = per_pixel(torch.ones_like(albedo[:, :1]))
        albedo_sum = per_pixel(albedo)

        def ratio(num: torch.Tensor, den: torch.Tensor, empty: float = 0.0) -> torch.Tensor:
            return torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, empty))

        unshadowed = per_pixel(shaded.unshadowed[:, None])
        seen = per_pixel(shaded.irradiance.sum(-1, keepdim=True))
        face = torch.full((n,), -1, device=device, dtype=torch.long).index_put((index,), shaded.surf.face)
        material = shaded.attr.material if shaded.attr.material is not None else torch.zeros_like(index)
        material = torch.full((n,), -1, device=device, dtype=torch.long).index_put((index,), material)
        uv = torch.zeros(n, 2, device=device, dtype=dtype).index_put((index,), shaded.attr.uv.detach().to(dtype))
        return {
            "albedo": ratio(albedo_sum, covered),
            "diffuse": ratio(per_pixel(albedo * shaded.diffuse), albedo_sum),
            "ambient": ratio(per_pixel(albedo * shaded.ambient), albedo_sum),
            "specular": ratio(per_pixel(shaded.specular), covered),
            "irradiance": ratio(per_pixel(shaded.irradiance), covered),
            "shadow": ratio(seen, unshadowed, 1.0)[..., 0],
            "normal": F.normalize(per_pixel(shaded.surf.ns), dim=-1),
            "face_id": face.view(height, width, spp)[:, :, 0],
            "material": material.view(height, width, spp)[:, :, 0],
            "uv": uv.view(height, width, spp, 2)[:, :, 0],
        }
