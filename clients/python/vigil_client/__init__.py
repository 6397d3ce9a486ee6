"""Sign events in Vigil's canonical form, publish them to Kafka, ask for decisions.

Signing needs the standard library only (HMAC-SHA256); Ed25519 needs the ``ed25519``
extra (``cryptography``) and publishing the ``kafka`` extra (``confluent-kafka``).
"""

from vigil_client.canonical import CanonicalFormError, canonical_bytes, encode, format_float, parse
from vigil_client.cloudevents import to_cloudevent
from vigil_client.decisions import (
    Decision,
    DecisionClient,
    DecisionUnavailableError,
    DeniedError,
    GuardMiddleware,
    Question,
    guard,
    question,
)
from vigil_client.publisher import Delivered, DeliveryReport, Failed, Publisher
from vigil_client.routing import message_key, topic_for
from vigil_client.signing import Ed25519Signer, HmacSigner, Signer, decode_secret, sign

__all__ = [
    "CanonicalFormError",
    "Decision",
    "DecisionClient",
    "DecisionUnavailableError",
    "Delivered",
    "DeliveryReport",
    "DeniedError",
    "Ed25519Signer",
    "Failed",
    "GuardMiddleware",
    "HmacSigner",
    "Publisher",
    "Question",
    "Signer",
    "canonical_bytes",
    "decode_secret",
    "encode",
    "format_float",
    "guard",
    "message_key",
    "parse",
    "question",
    "sign",
    "to_cloudevent",
    "topic_for",
]
