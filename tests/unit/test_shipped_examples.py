"""What ships in deploy/ keeps working whenever it is used, not only in the month it was written."""

from __future__ import annotations

import secrets
from pathlib import Path

from identity.keyring import load_keyring
from tests.clock import wall_now

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_every_key_of_the_example_key_file_is_valid_now(tmp_path: Path) -> None:
    text = (DEPLOY / "keys.example.yaml").read_text(encoding="utf-8")
    while "CHANGE-ME" in text:
        text = text.replace("CHANGE-ME", secrets.token_hex(32), 1)
    path = tmp_path / "keys.yaml"
    path.write_text(text, encoding="utf-8")
    keyring = load_keyring(path)
    now = wall_now()
    lapsed = [key_id for key_id, entry in keyring.entries.items() if not entry.valid_at(now)]
    assert keyring.entries
    assert lapsed == []
