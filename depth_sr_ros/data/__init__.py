"""Datasets, degradations and the bundled sample pair."""
