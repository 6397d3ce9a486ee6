"""The signing key file: created private on first start, its public key published beside it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from audit.keys import AuditKeyError, TrustedKeys, load_or_create_signer, load_public_keys, public_key_path


def test_first_start_creates_a_private_key_and_publishes_its_public_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.key"
    signer = load_or_create_signer(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    published = public_key_path(path)
    assert published.name == "audit-signing.pub"
    assert b"PRIVATE" not in published.read_bytes()
    assert load_public_keys([published]).by_id.keys() == {signer.key_id}
    assert load_or_create_signer(path).key_id == signer.key_id  # the second start reuses it


def test_a_signature_verifies_only_under_the_key_it_names(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "a.key")
    other = load_or_create_signer(tmp_path / "b.key")
    keys = TrustedKeys([signer.public_key])
    signature = signer.sign(b"message")
    assert keys.verify(signer.key_id, b"message", signature)
    assert not keys.verify(signer.key_id, b"messagE", signature)
    assert not keys.verify(other.key_id, b"message", other.sign(b"message"))
    assert not keys.verify(signer.key_id, b"message", "not base64!")


def test_a_key_of_another_type_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ec.key"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    with pytest.raises(AuditKeyError, match="must be Ed25519"):
        load_or_create_signer(path)
    path.write_text("garbage")
    with pytest.raises(AuditKeyError, match="not a readable"):
        load_or_create_signer(path)


def test_the_signer_never_shows_its_private_key() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.keys import Signer

    signer = Signer(Ed25519PrivateKey.generate())
    assert repr(signer) == f"Signer(key_id={signer.key_id!r})"
