"""Layer 6 of core/: from a photo to a result — landmarks, masks, the landmark solver, the photometric stages, the pipeline."""
