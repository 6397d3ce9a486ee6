"""Anomaly scorers over dicts of numeric features."""
