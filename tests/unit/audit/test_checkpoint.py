"""Checkpoints: signed, exported as JSON, and read back from untrusted copies safely."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit.checkpoint import Checkpoint, CheckpointFormatError
from audit.keys import Signer, TrustedKeys

SIGNER = Signer(Ed25519PrivateKey.generate())
KEYS = TrustedKeys([SIGNER.public_key])


def _checkpoint() -> Checkpoint:
    return Checkpoint.sign(SIGNER, "ai.inference:3", 4096, "ab" * 32, "rev-9")


def test_a_signed_checkpoint_survives_json_and_the_store_round_trip() -> None:
    checkpoint = _checkpoint()
    assert checkpoint.verify(KEYS)
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    assert Checkpoint.from_row(checkpoint.to_row()) == checkpoint
    naive = checkpoint.to_row()._replace(created_at=checkpoint.created_at.replace(tzinfo=None))
    assert Checkpoint.from_row(naive) == checkpoint  # as some clients return DateTime64


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 4095},
        {"chain_hash": "cd" * 32},
        {"stream": "ai.inference:2"},
        {"bundle_revision": "rev-10"},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    assert not replace(_checkpoint(), **change).verify(KEYS)  # type: ignore[arg-type]


def test_documents_of_the_wrong_shape_are_refused_clearly() -> None:
    document = _checkpoint().document()
    with pytest.raises(CheckpointFormatError, match="format"):
        Checkpoint.from_document({**document, "format": "other"})
    with pytest.raises(CheckpointFormatError, match="seq"):
        Checkpoint.from_document({**document, "seq": "12"})
    with pytest.raises(CheckpointFormatError, match="not JSON"):
        Checkpoint.from_json(b"{")
    missing = dict(document)
    del missing["signature"]
    with pytest.raises(CheckpointFormatError):
        Checkpoint.from_document(missing)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)


@given(document=_json)
def test_any_json_is_a_checkpoint_or_a_clear_refusal(document: object) -> None:
    with contextlib.suppress(CheckpointFormatError):
        Checkpoint.from_json(json.dumps(document))


@given(
    field=st.sampled_from(
        ["stream", "seq", "chain_hash", "created_at", "bundle_revision", "key_id", "signature"]
    ),
    value=_json,
)
def test_a_mangled_export_never_verifies_unless_unchanged(field: str, value: object) -> None:
    document = _checkpoint().document()
    mangled = {**document, field: value}
    try:
        parsed = Checkpoint.from_document(mangled)
    except CheckpointFormatError:
        return
    assert parsed.verify(KEYS) == (parsed == _checkpoint_like(document))


def _checkpoint_like(document: dict[str, object]) -> Checkpoint:
    return Checkpoint.from_document(document)
