"""Layer 2 of core/: the mathematical model of a face and its light — head shape, camera, light stage, skin, BRDF, SH, UVs."""
