"""Layer 5 of core/: applications on a finished reconstruction — re-render, relight, caricature, attribute passes."""
