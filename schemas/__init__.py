"""The event contract: pydantic models, the canonical signing form and the decoder.

Everything a producer must get right lives here; docs/events.md is its prose twin.
"""

from schemas.canonical import canonical_bytes
from schemas.decode import Decoded, Rejection, decode
from schemas.events import (
    AccessEvent,
    Event,
    FeedbackEvent,
    InferenceEvent,
    TrainingEvent,
)

__all__ = [
    "AccessEvent",
    "Decoded",
    "Event",
    "FeedbackEvent",
    "InferenceEvent",
    "Rejection",
    "TrainingEvent",
    "canonical_bytes",
    "decode",
]
