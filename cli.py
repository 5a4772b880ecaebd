"""Command line: `python -m facestage ...` and `blender -b --command facestage ...`.

`main(argv) -> int` is the single entry point for both, so tests call it
directly. A FaceStageError becomes its one sentence on stderr and exit code 2;
anything else is a bug and keeps its traceback. `-v` shows the details (INFO
logs, and the native libraries' own logging, which is silenced otherwise:
core/common/quiet.py); `--quiet` prints only the path written or the error.
-v and --quiet are accepted before or after the command name.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from .core.common.config import DEVICES, ENV_ROTATE, LIGHTING_PRESETS, QUALITIES, STAGES
from .core.common.errors import FaceStageError
from .core.common.quiet import set_verbose

log = logging.getLogger(__package__ or "facestage")


def _add_output_options(parser: argparse.ArgumentParser, on_command: bool) -> None:
    """-v / --quiet; on a command they default to "not given" so they do not undo the same option given before it."""
    default = argparse.SUPPRESS if on_command else False
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log details, including the native libraries' own messages")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="print only the path written (or the error)")


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
    _add_output_options(parser, on_command=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    output = argparse.ArgumentParser(add_help=False)
    _add_output_options(output, on_command=True)

    p = sub.add_parser("reconstruct", parents=[output], help="reconstruct one photo into an output folder")
    p.add_argument("photo")
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist unless --force)")
    _add_reconstruct_options(p)

    p = sub.add_parser("batch", parents=[output], help="reconstruct every photo of a folder")
    p.add_argument("input_dir")
    p.add_argument("-o", "--output", required=True, help="folder that receives one sub-folder per photo")
    p.add_argument("--jobs", type=int, default=1, help="photos processed in parallel")
    p.add_argument("--resume", action="store_true", help="skip photos whose output is complete")
    p.add_argument("--cluster", metavar="ADDRESS|auto|local", help="run each photo as a Ray task: on the cluster at "
                   "ADDRESS (its head, host:port), the one `ray start` runs on this machine (auto) or a new one here (local)")
    p.add_argument("--cpus-per-task", type=float, help="with --cluster: CPUs per photo (default: by --quality)")
    p.add_argument("--gpus-per-task", type=float, help="with --cluster: GPUs per photo, may be a fraction (default: by "
                   "--quality when --device is cuda, or auto on a cluster with GPUs)")
    _add_reconstruct_options(p)

    p = sub.add_parser("relight", parents=[output], help="re-render a reconstruction under new lights")
    p.add_argument("result")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", help=f"lighting preset: {', '.join((*LIGHTING_PRESETS, ENV_ROTATE))}")
    group.add_argument("--lights", help="JSON file with light-stage parameters")
    group.add_argument("--rotate-env", type=float, metavar="DEG", help="rotate the SH environment about Z by DEG")
    group.add_argument("--list-presets", action="store_true")
    p.add_argument("--pitch", type=float, default=0.0, help="with --rotate-env: pitch in degrees")
    p.add_argument("-o", "--output", help="image to write (default RESULT/relit.png)")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    p = sub.add_parser("caricature", parents=[output], help="exaggerate the identity of a reconstruction")
    p.add_argument("result")
    p.add_argument("--factor", type=float, default=1.8)
    p.add_argument("--region", default="", help="per-region factors, e.g. nose=2.5,jaw=1.5")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    p = sub.add_parser("render", parents=[output], help="re-render a reconstruction, optionally as separate passes")
    p.add_argument("result")
    p.add_argument("--passes", action="store_true", help="write albedo/diffuse/specular/shadow/ambient layers")
    p.add_argument("-o", "--output", help="folder for the images (default RESULT)")
    p.add_argument("--force", action="store_true")
    _add_device_option(p)

    sub.add_parser("doctor", parents=[output], help="print versions of the dependencies and the compute device")
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
    if args.verbose and args.quiet:
        print("facestage: use either -v or --quiet, not both.", file=sys.stderr)
        return 2
    set_verbose(args.verbose)
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    log.setLevel(level)  # basicConfig sets the root level once per process; each command sets the package's
    try:
        return COMMANDS[args.command](args)
    except FaceStageError as error:
        print(f"facestage: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facestage: interrupted; nothing was written.", file=sys.stderr)
        return 130
