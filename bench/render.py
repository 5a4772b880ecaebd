"""Benchmark: forward + backward of the differentiable renderer on the head, as one fit iteration runs it.

    python bench/render.py [--sizes 256 512] [--repeats 5] [--threads 1 2] [--device auto]

The head model (all its triangles), 20 stage lights all switched on, 9 SH coefficients, 512² texture
maps, every parameter requiring grad (vertices, so edge sampling runs), 1 spp primary, 1 shadow ray per
light, a portrait framing (the head fills about half the frame). Times are medians after warm-up of
render + L2 loss + backward. BVH throughput is measured separately on the same scene: closest hits of
the primary rays, any-hit shadow rays from the hit points to every light. CPU always; CUDA when torch
sees a GPU (else "not measured"). CPU numbers are taken with each torch thread count in --threads,
with the load average recorded alongside (this is often a shared machine).

OMP_WAIT_POLICY gets facestage's default (see facestage/__init__.py) because facestage is
imported before torch. Prints and writes bench/results/render.json.
"""

from __future__ import annotations

import os

import facestage  # noqa: F401  (before torch: it sets torch's threading environment)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT.parent) not in sys.path:
    sys.path.insert(0, str(ROOT.parent))

from facestage.core.model import camera  # noqa: E402
from facestage.core.model import lightstage  # noqa: E402
from facestage.core.model.head import load_head_model  # noqa: E402
from facestage.core.render.raytrace import Bvh  # noqa: E402
from facestage.core.model.camera import pixel_rays  # noqa: E402
from facestage.core.render import RenderOptions, RenderScene, render  # noqa: E402

TARGETS_S = {"cpu_256_fwd_bwd": 0.5, "cuda_512_fwd_bwd": 0.020}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_s(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 2) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def make_scene(size: int, device: torch.device) -> tuple[RenderScene, dict[str, torch.Tensor]]:
    model = load_head_model(device=device)
    g = torch.Generator().manual_seed(0)
    tex = 512
    y, x = torch.meshgrid(torch.linspace(0, 1, tex), torch.linspace(0, 1, tex), indexing="ij")
    wave = 0.5 + 0.5 * torch.sin(9 * x + 4 * y) * torch.cos(7 * y)
    params = {
        "verts": model.vertices.clone(),
        "diffuse": torch.stack([0.45 + 0.25 * wave, 0.3 + 0.15 * wave, 0.25 + 0.1 * x], -1),
        "specular": (0.3 + 0.4 * y)[..., None],
        "roughness": (0.35 + 0.35 * x)[..., None],
        "sh": torch.cat([torch.tensor([[0.8], [0.75], [0.7]]), 0.1 * torch.randn(3, 8, generator=g)], 1),
        "i": 0.05 + 0.3 * torch.rand(20, 3, generator=g),
        "d": torch.full((20,), 1.2),
        "a": torch.full((20,), 0.2),
        "p": torch.full((20, 3), 1 / 3),
    }
    params = {k: v.to(device).requires_grad_() for k, v in params.items()}
    stage = lightstage.LightStage(d=params["d"], a=params["a"], p=params["p"], i=params["i"],
                                  centre=torch.zeros(3, device=device))
    K = torch.as_tensor(camera.intrinsics(1.9 * size, size, size), dtype=torch.float32, device=device)
    wfc = torch.as_tensor(camera.look_at(np.array([0.1, -0.6, 0.05]), np.zeros(3)), dtype=torch.float32,
                          device=device)
    scene = RenderScene(params["verts"], model.faces, model.uvs, model.face_uvs, params["diffuse"],
                        params["specular"], params["roughness"], K, wfc, size, size, sh=params["sh"], stage=stage,
                        background=torch.full((3,), 0.2, device=device))
    return scene, params


def bench_render(size: int, device: torch.device, repeats: int) -> dict[str, Any]:
    scene, params = make_scene(size, device)
    bvh = Bvh(scene.verts, scene.faces)
    options = RenderOptions(spp=1, light_samples=1, edge_sampling=True)
    target = torch.full((size, size, 3), 0.3, device=device)
    generator = torch.Generator().manual_seed(1)
    state: dict[str, Any] = {}

    def forward() -> None:
        state["out"] = render(scene, options, generator, bvh=bvh)
        state["loss"] = (state["out"].image - target).square().mean()

    def forward_backward() -> None:
        for p in params.values():
            p.grad = None
        forward()
        state["loss"].backward()

    total, runs = median_s(forward_backward, repeats, device)
    with torch.no_grad():
        fwd_nograd, _ = median_s(forward, repeats, device)
    fwd, _ = median_s(forward, repeats, device)
    coverage = float(state["out"].alpha.detach().mean())
    return {"size": size, "fwd_bwd_s": round(total, 4), "fwd_bwd_runs_s": [round(t, 4) for t in runs],
            "fwd_s": round(fwd, 4), "fwd_no_grad_s": round(fwd_nograd, 4),
            "bwd_s_approx": round(total - fwd, 4), "head_coverage": round(coverage, 3),
            "shading_points": int(coverage * size * size)}


def bench_bvh(device: torch.device, repeats: int, size: int = 512) -> dict[str, Any]:
    scene, _ = make_scene(size, device)
    with torch.no_grad():
        bvh = Bvh(scene.verts, scene.faces)
        rows, cols = torch.meshgrid(torch.arange(size, device=device), torch.arange(size, device=device),
                                    indexing="ij")
        pixels = torch.stack([cols, rows], -1).reshape(-1, 2).float() + 0.5
        origin, dirs = pixel_rays(scene.K, scene.world_from_camera, pixels)
        primary, _ = median_s(lambda: bvh.intersect(origin, dirs), repeats, device)
        hits = bvh.intersect(origin, dirs)
        points = origin + hits.t[hits.hit, None] * dirs[hits.hit]
        tri = scene.verts[scene.faces[hits.face[hits.hit]]]
        normals = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1)
        normals = torch.where(((normals * dirs[hits.hit]).sum(-1, keepdim=True) > 0), -normals, normals)
        targets = lightstage.centroids(scene.stage).detach()[None].expand(points.shape[0], 20, 3).contiguous()
        emitters = lightstage.normals(scene.stage).detach()
        shadow, _ = median_s(lambda: bvh.segments_occluded(points, normals, targets), repeats, device)
        culled, _ = median_s(lambda: bvh.segments_occluded(points, normals, targets, cull=(normals, emitters)),
                             repeats, device)
        codes = bvh.segments_occluded(points, normals, targets, cull=(normals, emitters), codes=True)
        flat_o = (points[:, None] + 1e-4 * normals[:, None]).expand(-1, 20, 3).reshape(-1, 3).contiguous()
        flat_d = (targets - points[:, None]).reshape(-1, 3)
        t_max = flat_d.norm(dim=-1) - 1e-4
        occluded, _ = median_s(lambda: bvh.occluded(flat_o, flat_d, t_max), repeats, device)
    n_primary, n_shadow = dirs.shape[0], flat_d.shape[0]
    return {"primary_rays": n_primary, "intersect_rays_per_s": round(n_primary / primary),
            "shadow_rays": n_shadow, "segments_occluded_rays_per_s": round(n_shadow / shadow),
            "segments_occluded_culled_rays_per_s": round(n_shadow / culled),
            "occluded_rays_per_s": round(n_shadow / occluded),
            "shadow_fractions": {"visible": round(float((codes == 0).float().mean()), 3),
                                 "occluded": round(float((codes == 1).float().mean()), 3),
                                 "culled": round(float((codes == 2).float().mean()), 3)},
            "note": "segments_occluded: start offset to the target's side, any-hit; *_culled: as the renderer "
                    "calls it, segments that cannot carry light (below the surface, behind the emitter) skipped "
                    "(counted in the rate); occluded: plain any-hit rays from origins offset along the normal"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, torch.get_num_threads()}),
                        help="torch CPU thread counts to measure with")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CPU always, CUDA as well when available")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render.json")
    args = parser.parse_args(argv)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    model = load_head_model()
    result: dict[str, Any] = {
        "benchmark": "render forward+backward, head, 20 lights, 1 spp, 1 shadow ray/light, edge sampling on",
        "triangles": int(model.faces.shape[0]), "vertices": int(model.vertices.shape[0]),
        "note": "the head npz has 6388 triangles (the brief's ~20k was an estimate)",
        "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "targets_s": TARGETS_S, "cpu": {}, "cuda": "not measured (no CUDA device visible to torch)",
    }
    default_threads = torch.get_num_threads()
    for device in devices:
        for threads in (args.threads if device.type == "cpu" else [default_threads]):
            torch.set_num_threads(threads)
            entry: dict[str, Any] = {"torch_threads": threads,
                                     "load_average_before": [round(x, 2) for x in os.getloadavg()],
                                     "render": [bench_render(size, device, args.repeats) for size in args.sizes],
                                     "bvh": bench_bvh(device, args.repeats)}
            entry["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            if device.type == "cuda":
                entry["device_name"] = torch.cuda.get_device_name(device)
                result["cuda"] = entry
            else:
                result["cpu"][f"threads_{threads}"] = entry
    torch.set_num_threads(default_threads)
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
