"""Layer 3 of core/: files in and out — photos, the result folder (the output contract) and report.png."""
