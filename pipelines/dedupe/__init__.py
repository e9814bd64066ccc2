"""Duplicate detection: perceptual-hash banding, union-find clusters, text normalisation."""
