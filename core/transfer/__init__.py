"""Measured transfer on the catalogue: what pretraining on one task does for fine-tuning on another.

``protocol``: the fixed budget; ``splits``: class-balanced train/test splits by image id and the legal pairs;
``network``: the backbone cut into a frozen trunk and a trainable head; ``experiment``: the resumable runs;
``results``: per-pair summaries shipped with the catalogue and the look-ups the product uses.
"""
