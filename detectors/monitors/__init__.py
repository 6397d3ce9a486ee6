"""Keyed monitors: which detectors watch which key, and what their signals say."""
