"""Online detectors: drift, anomalies, bias, access and supply chain, with state per key.

Public surface: the detector classes (river-style: hyperparameters as ``__init__``
arguments, state built in ``_reset()``), the registry that names them for
configuration, the configuration loader, and ``DetectStage``, the pipeline's
detect step. Importing the package registers every detector.
"""

from detectors.anomaly.robust_zscore import RobustZScore
from detectors.base import AnomalyDetector, Detector, DriftDetector
from detectors.drift.adwin import ADWINMeanShift
from detectors.drift.bernoulli_cusum import BernoulliCUSUM
from detectors.drift.chi_square_window import ChiSquareWindow
from detectors.drift.normal_scores_cusum import NormalScoresCUSUM
from detectors.drift.seasonal_bernoulli_cusum import SeasonalBernoulliCUSUM
from detectors.drift.seasonal_cusum import SeasonalCUSUM
from detectors.registry import REGISTRY, create, register

__all__ = [
    "REGISTRY",
    "ADWINMeanShift",
    "AnomalyDetector",
    "BernoulliCUSUM",
    "ChiSquareWindow",
    "Detector",
    "DriftDetector",
    "NormalScoresCUSUM",
    "RobustZScore",
    "SeasonalBernoulliCUSUM",
    "SeasonalCUSUM",
    "create",
    "register",
]
