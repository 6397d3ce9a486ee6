"""From findings to alerts: which findings notify someone, and how often."""

from alerting.gate import AlertGate, fingerprint_of

__all__ = ["AlertGate", "fingerprint_of"]
