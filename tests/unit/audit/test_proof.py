"""Proofs for one event: built from the ledger, checked with the public key alone."""

from __future__ import annotations

import copy

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.keys import Signer, TrustedKeys
from audit.ledger import Ledger
from audit.proof import ProofError, build_proof, check_proof
from tests.unit.audit.memory import MemoryStore, SourceView, batch

SIGNER = Signer(Ed25519PrivateKey.generate())
KEYS = TrustedKeys([SIGNER.public_key])


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    ledger = Ledger(store, SIGNER, checkpoint_entries=12)  # type: ignore[arg-type]
    store.store(ledger, batch("ai.training", 1, range(10), denied=[4], alerted=[4]))
    store.store(ledger, batch("ai.training", 1, range(10, 20)))
    return store


def test_a_proof_covers_the_decision_finding_and_alert_of_an_event(store: MemoryStore) -> None:
    document = build_proof(SourceView(store), KEYS, "ai.training-1-4")  # type: ignore[arg-type]
    checked = check_proof(orjson.loads(orjson.dumps(document)), KEYS)
    assert [(c.kind, c.seq) for c in checked] == [("decision", 5), ("finding", 6), ("alert", 7)]
    assert checked[0].record["decision"] == "deny"
    assert {c.checkpoint.seq for c in checked} == {12}
    assert "decision (deny) is entry 5 of ai.training:1" in str(checked[0])


def test_an_event_not_yet_under_a_checkpoint_has_no_proof_yet(store: MemoryStore) -> None:
    store.store(Ledger(store, SIGNER), batch("ai.training", 1, [20]))  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="not yet covered"):
        build_proof(SourceView(store), KEYS, "ai.training-1-20")  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="no entries"):
        build_proof(SourceView(store), KEYS, "never-seen")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda p: p["entry"].update(record=p["entry"]["record"].replace("deny", "allow")), "record hash"),
        (lambda p: p["entry"].update(appended_at="2020-01-01T00:00:00.000Z"), "does not lead"),
        (lambda p: p["path"][0].update(record_hash="0" * 64), "does not lead"),
        (lambda p: p["path"].pop(), "checkpoint is for"),
        (lambda p: p["checkpoint"].update(chain_hash="0" * 64), "signature"),
    ],
)
def test_a_tampered_proof_is_rejected(store: MemoryStore, tamper, message: str) -> None:  # type: ignore[no-untyped-def]
    document = build_proof(SourceView(store), KEYS, "ai.training-1-4")  # type: ignore[arg-type]
    forged = copy.deepcopy(document)
    tamper(forged["proofs"][0])
    with pytest.raises(ProofError, match=message):
        check_proof(forged, KEYS)


def test_a_proof_under_an_untrusted_key_is_rejected(store: MemoryStore) -> None:
    document = build_proof(SourceView(store), KEYS, "ai.training-1-4")  # type: ignore[arg-type]
    stranger = TrustedKeys([Signer(Ed25519PrivateKey.generate()).public_key])
    with pytest.raises(ProofError, match="signature"):
        check_proof(document, stranger)


def test_a_proof_for_another_event_is_rejected(store: MemoryStore) -> None:
    document = build_proof(SourceView(store), KEYS, "ai.training-1-4")  # type: ignore[arg-type]
    document["event_id"] = "ai.training-1-5"
    with pytest.raises(ProofError, match=r"not 'ai\.training-1-5'"):
        check_proof(document, KEYS)


@pytest.mark.parametrize("document", [None, [], {"format": "vigil.audit.v1"}, {"format": "x", "proofs": []}])
def test_malformed_proofs_are_refused_clearly(document: object) -> None:
    with pytest.raises(ProofError):
        check_proof(document, KEYS)
