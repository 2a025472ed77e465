"""Seismic data: the synthetic generator, the challenge's folder layout, and the challenge's score."""
