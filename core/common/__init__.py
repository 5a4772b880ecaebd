"""Layer 1 of core/: what every other layer needs and nothing of the face itself (no torch at import)."""
