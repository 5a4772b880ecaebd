"""CLI command implementations; thin wrappers over core with terminal progress."""

from __future__ import annotations

import argparse
import json

from .core.errors import FaceStageError


def reconstruct(args: argparse.Namespace) -> int:
    from .core.image import load_photo

    photo = load_photo(args.photo)
    print(json.dumps({"photo": str(photo.path), "size": [photo.width, photo.height], "warnings": photo.warnings}))
    return 0


def _not_yet(name: str) -> int:
    raise FaceStageError(f"The '{name}' command is not available in this build yet.")


def batch(args: argparse.Namespace) -> int:
    return _not_yet("batch")


def relight(args: argparse.Namespace) -> int:
    return _not_yet("relight")


def caricature(args: argparse.Namespace) -> int:
    return _not_yet("caricature")


def render(args: argparse.Namespace) -> int:
    return _not_yet("render")
