"""Diagnostics of embeddings: the paper's criteria, spectra, plots."""
