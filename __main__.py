"""`python -m facestage ...` — the same entry point Blender's `--command facestage` uses."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
