"""Online detectors, one state per (model, feature), bounded in memory."""

from detectors.feature_drift import DriftSignal, FeatureDriftMonitor

__all__ = ["DriftSignal", "FeatureDriftMonitor"]
