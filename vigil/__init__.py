"""Vigil: governance and Zero Trust for AI systems, while they run."""

__version__ = "0.1.0"
