"""Benchmark: closed-form SH basis (core.model.sh) against a Green-style recursive one, 9 bands, CPU float32.

    python bench/sh.py [--size 512] [--repeats 7] [--threads 1]

Prints and writes bench/results/sh.json: the median wall time of each after warm-up, the speed-up,
the largest difference between the two bases, and for context the cost of merely allocating and
filling a fresh (N, 81) float32 tensor (a floor both pay) and the shading-path cost of
core.model.sh.sh_eval against basis-then-matmul. One thread by default, so numbers taken on a shared
machine stay comparable (--threads 0 keeps torch's default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT.parent) not in sys.path:
    sys.path.insert(0, str(ROOT.parent))

from facestage.core.model.sh import sh_basis, sh_eval  # noqa: E402
from sh_reference import sh_basis_recursive  # noqa: E402

BANDS = 9


def median_ms(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time of each function, timed round-robin so shared-machine load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: round(1e3 * statistics.median(t), 3) for name, t in times.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="directions = size × size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = torch's default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dirs = torch.randn(args.size * args.size, 3, generator=torch.Generator().manual_seed(0))
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    coeffs = torch.randn(3, BANDS * BANDS, generator=torch.Generator().manual_seed(1))
    tracked = dirs.clone().requires_grad_()

    n = BANDS * BANDS
    ms = median_ms({
        "closed_form_ms": lambda: sh_basis(dirs, BANDS),
        "recursive_ms": lambda: sh_basis_recursive(dirs, BANDS),
        "alloc_floor_ms": lambda: torch.empty(dirs.shape[0], n).fill_(0),
        "closed_form_autograd_forward_ms": lambda: sh_basis(tracked, BANDS),
        "sh_eval_3_channels_ms": lambda: sh_eval(dirs, coeffs),
        "recursive_basis_matmul_3_channels_ms": lambda: sh_basis_recursive(dirs, BANDS) @ coeffs.T,
    }, args.repeats)
    result = {
        "n_dirs": dirs.shape[0],
        "bands": BANDS,
        "closed_form_ms": ms["closed_form_ms"],
        "recursive_ms": ms["recursive_ms"],
        "speedup": round(ms["recursive_ms"] / ms["closed_form_ms"], 2),
        "max_abs_diff": float((sh_basis(dirs, BANDS) - sh_basis_recursive(dirs, BANDS)).abs().max()),
        **{k: v for k, v in ms.items() if k not in ("closed_form_ms", "recursive_ms")},
        "dtype": "float32",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    out = ROOT / "bench" / "results" / "sh.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
