"""audit.config: the signing key, the exported checkpoints and the store live apart, and a key
or copies left at their former place inside the data directory are used, never replaced."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from audit.config import export_dir, published_key_path, signing_key_path
from audit.keys import AuditKeyError, load_or_create_signer, load_public_keys
from audit.store import load_signer
from vigil.settings import Settings


def test_by_default_key_copies_and_store_are_three_directories(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    signer = load_signer(settings)
    key = signing_key_path(settings)
    assert key == tmp_path / "data-keys" / "audit-signing.key"
    assert key.parent.stat().st_mode & 0o077 == 0
    assert published_key_path(settings) == tmp_path / "data-keys" / "audit-signing.pub"
    assert export_dir(settings) == tmp_path / "data-checkpoints"
    assert not (tmp_path / "data" / "audit-signing.key").exists()
    assert load_signer(settings).key_id == signer.key_id


def test_explicit_locations_win(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        keys_dir=tmp_path / "secrets",
        audit={"export_dir": tmp_path / "worm"},  # type: ignore[arg-type]
    )
    assert signing_key_path(settings) == tmp_path / "secrets" / "audit-signing.key"
    assert export_dir(settings) == tmp_path / "worm"
    named = Settings(data_dir=tmp_path / "data", audit={"signing_key_file": tmp_path / "k.pem"})  # type: ignore[arg-type]
    assert signing_key_path(named) == tmp_path / "k.pem"


def test_a_key_at_its_former_place_keeps_signing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    former = load_or_create_signer(data / "audit-signing.key")  # as an earlier version left it
    settings = Settings(data_dir=data)

    with caplog.at_level(logging.WARNING, logger="audit.config"):
        signer = load_signer(settings)

    assert signer.key_id == former.key_id
    assert not (tmp_path / "data-keys").exists()  # no second key was made
    assert published_key_path(settings) == data / "audit-signing.pub"
    assert "former place" in caplog.text
    assert str(tmp_path / "data-keys") in caplog.text  # says where to move it


def test_a_moved_key_with_its_old_copy_left_behind_is_used_from_the_new_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create_signer(data / "audit-signing.key")
    (tmp_path / "data-keys").mkdir()
    (tmp_path / "data-keys" / "audit-signing.key").write_bytes((data / "audit-signing.key").read_bytes())
    assert signing_key_path(Settings(data_dir=data)) == tmp_path / "data-keys" / "audit-signing.key"


def test_two_different_keys_stop_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create_signer(data / "audit-signing.key")
    load_or_create_signer(tmp_path / "data-keys" / "audit-signing.key")
    with pytest.raises(AuditKeyError, match="two audit signing keys"):
        load_signer(Settings(data_dir=data))


def test_copies_at_their_former_place_are_continued_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audit-checkpoints" / "stdin%3A0").mkdir(parents=True)
    (data / "audit-checkpoints" / "stdin%3A0" / "0000000040.json").write_text("{}")
    assert export_dir(Settings(data_dir=data)) == data / "audit-checkpoints"


def test_an_empty_former_export_directory_is_not_continued(tmp_path: Path) -> None:
    (tmp_path / "data" / "audit-checkpoints").mkdir(parents=True)
    assert export_dir(Settings(data_dir=tmp_path / "data")) == tmp_path / "data-checkpoints"


def test_copies_in_both_places_stop_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for directory in (data / "audit-checkpoints" / "s", tmp_path / "data-checkpoints" / "s"):
        directory.mkdir(parents=True)
        (directory / "1.json").write_text("{}")
    with pytest.raises(AuditKeyError, match="two places"):
        export_dir(Settings(data_dir=data))


def test_a_key_mounted_read_only_publishes_its_public_key_in_the_keys_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    first = load_or_create_signer(secrets / "audit-signing.key")
    (secrets / "audit-signing.pub").unlink()
    # A mounted secret's directory is a read-only file system, even for root.
    writable = os.access
    monkeypatch.setattr("audit.config.os.access", lambda p, mode: Path(p) != secrets and writable(p, mode))
    settings = Settings(
        data_dir=tmp_path / "data",
        keys_dir=tmp_path / "keys",
        audit={"signing_key_file": secrets / "audit-signing.key"},  # type: ignore[arg-type]
    )

    assert load_signer(settings).key_id == first.key_id

    assert published_key_path(settings) == tmp_path / "keys" / "audit-signing.pub"
    assert load_public_keys([published_key_path(settings)]).by_id.keys() == {first.key_id}
    assert not (secrets / "audit-signing.pub").exists()
