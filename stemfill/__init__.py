"""stemfill: add a missing instrument stem to a song."""

__version__ = "0.1.0"
