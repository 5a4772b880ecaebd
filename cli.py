"""Command line: `python -m facestage ...` and `blender -b --command facestage ...`.

`main(argv) -> int` is the single entry point for both, so tests call it
directly. A FaceStageError becomes its one sentence on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from .core.common.config import DEVICES, ENV_ROTATE, LIGHTING_PRESETS, QUALITIES, STAGES
from .core.common.errors import FaceStageError

log = logging.getLogger("facestage")


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto", help="compute device")


def _add_reconstruct_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quality", choices=QUALITIES, default="default", help="speed/quality preset")
    _add_device_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same result)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    parser.add_argument("--face-index", type=int, default=None, help="which face when the photo has several (0 = largest)")
    parser.add_argument("--stages", choices=STAGES, default="full",
                        help="stop after stage 0 (landmarks), stage 1 (lighting) or run all")
    parser.add_argument("--no-blend", action="store_true", help="do not write face.blend even when bpy is available")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestage", description="Reconstruct an editable, relightable 3D face from one photo.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("reconstruct", help="reconstruct one photo into an output folder")
    p.add_argument("photo")
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist unless --force)")
    _add_reconstruct_options(p)

    p = sub.add_parser("batch", help="reconstruct every photo of a folder")
    p.add_argument("input_dir")
    p.add_argument("-o", "--output", required=True, help="folder that receives one sub-folder per photo")
    p.add_argument("--jobs", type=int, default=1, help="photos processed in parallel")
    p.add_argument("--resume", action="store_true", help="skip photos whose output is complete")
    _add_reconstruct_options(p)

    p = sub.add_parser("relight", help="re-render a reconstruction under new lights")
    p.add_argument("result")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", help=f"lighting preset: {', '.join((*LIGHTING_PRESETS, ENV_ROTATE))}")
    group.add_argument("--lights", help="JSON file with light-stage parameters")
    group.add_argument("--rig", help="JSON rig of area/point/spot lights and a world (docs/skin.md)")
    group.add_argument("--rotate-env", type=float, metavar="DEG", help="rotate the SH environment about Z by DEG")
    group.add_argument("--list-presets", action="store_true")
    p.add_argument("--pitch", type=float, default=0.0, help="with --rotate-env: pitch in degrees")
    p.add_argument("-o", "--output", help="image to write (default RESULT/relit.png)")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    p = sub.add_parser("caricature", help="exaggerate the identity of a reconstruction")
    p.add_argument("result")
    p.add_argument("--factor", type=float, default=1.8)
    p.add_argument("--region", default="", help="per-region factors, e.g. nose=2.5,jaw=1.5")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    p = sub.add_parser("render", help="re-render a reconstruction, optionally as separate passes")
    p.add_argument("result")
    p.add_argument("--passes", action="store_true", help="write albedo/diffuse/specular/shadow/ambient layers")
    p.add_argument("-o", "--output", help="folder for the images (default RESULT)")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    sub.add_parser("doctor", help="print versions of the dependencies and the compute device")
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from .core.common.versions import report  # imports torch when it is installed

    for name, value in report().items():
        print(f"{name:12s} {value}")
    return 0


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """Import command implementations only when run: `--help` and `doctor` stay fast."""

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module, __package__), function)(args))

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "doctor": _doctor,
    "reconstruct": _lazy(".commands", "reconstruct"),
    "batch": _lazy(".commands", "batch"),
    "relight": _lazy(".commands", "relight"),
    "caricature": _lazy(".commands", "caricature"),
    "render": _lazy(".commands", "render"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code (0 ok, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except FaceStageError as error:
        print(f"facestage: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facestage: interrupted; nothing was written.", file=sys.stderr)
        return 130
