"""Features: the backbone registry, preprocessing, sampling, inference engines and feature extraction."""
