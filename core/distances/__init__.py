"""Distances between fingerprints: the maths, the distance registry, the source bank and the bootstrap."""
