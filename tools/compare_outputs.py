"""Compare two result folders: is the second the same reconstruction as the first?

    python tools/compare_outputs.py BEFORE_DIR AFTER_DIR [--ignore timings]

scene.json must be identical except for the ignored top-level keys (timings by
default: wall-clock numbers differ run to run), every PNG must decode to the
same pixels, and face.obj must be byte-identical. face.blend is skipped (Blender
stamps it). Prints one line per file and exits 1 on any difference, so a
refactoring that claims "no change in behaviour" can be checked in one command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _json_differences(a: object, b: object, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for key in sorted(set(a) & set(b)):
            out += _json_differences(a[key], b[key], f"{where}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _json_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:60]} != {str(b)[:60]}"]


def compare(before: Path, after: Path, ignore: set[str]) -> list[str]:
    """Every difference between the two folders, as one line each (empty: the same result)."""
    problems: list[str] = []
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    for name in names:
        a, b = before / name, after / name
        if name == "face.blend":
            continue
        if not a.is_file() or not b.is_file():
            problems.append(f"{name}: missing in {'before' if not a.is_file() else 'after'}")
        elif name == "scene.json":
            docs = [{k: v for k, v in json.loads(p.read_text()).items() if k not in ignore} for p in (a, b)]
            problems += [f"scene.json{d}" for d in _json_differences(*docs)[:20]]
        elif name.endswith(".png"):
            pixels = [np.asarray(Image.open(p)) for p in (a, b)]
            if pixels[0].shape != pixels[1].shape or not np.array_equal(*pixels):
                diff = np.abs(pixels[0].astype(np.int64) - pixels[1].astype(np.int64)).max() \
                    if pixels[0].shape == pixels[1].shape else "shape"
                problems.append(f"{name}: pixels differ (max |Δ| {diff})")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name}: bytes differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", nargs="*", default=["timings"], help="top-level scene.json keys to ignore")
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after, set(args.ignore))
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
