"""identity: who sent an event (verify) and the key file that says so (keyring)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from identity import KeyEntry, Keyring, KeyringError, Verdict, load_keyring, sign_document, verify
from schemas.decode import Decoded, decode
from tests.factories import (
    FORGER_SECRET,
    KEYS,
    access_doc,
    encode,
    feedback_doc,
    forged,
    inference_doc,
    key_entries,
    make_keyring,
    signed,
    training_doc,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(when: datetime) -> str:
    return when.isoformat()


def check(document: dict[str, Any], keyring: Keyring) -> Verdict:
    outcome = decode(encode(document))
    assert isinstance(outcome, Decoded), outcome
    return verify(outcome.event, outcome.canonical, keyring)


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return make_keyring(tmp_path)


# --- verify ------------------------------------------------------------------------


@pytest.mark.parametrize("builder", [inference_doc, feedback_doc, training_doc, access_doc])
def test_properly_signed_event_verifies(keyring: Keyring, builder: Any) -> None:
    document = builder()
    verdict = check(signed(document), keyring)
    assert verdict == Verdict(True, "ok", KEYS[document["source"]].key_id)


@pytest.mark.parametrize("notation", ["hex", "base64", "plain"])
def test_every_secret_notation_verifies(keyring: Keyring, notation: str) -> None:
    source = next(s for s, key in KEYS.items() if key.notation == notation)
    document = access_doc(source=source)
    assert check(signed(document), keyring).verified


def test_key_may_sign_for_each_of_its_sources(keyring: Keyring) -> None:
    assert KEYS["checkout-api"].sources == ("checkout-api", "checkout-batch")
    for source in KEYS["checkout-api"].sources:
        document = inference_doc(source=source)
        assert check(signed(document, KEYS["checkout-api"]), keyring).reason == "ok"


def test_unsigned(keyring: Keyring) -> None:
    assert check(feedback_doc(), keyring) == Verdict(False, "unsigned")


def test_unknown_key(keyring: Keyring) -> None:
    document = sign_document(feedback_doc(), "retired-2019", KEYS["labeling"].secret)
    assert check(document, keyring) == Verdict(False, "unknown_key", "retired-2019")


def test_key_not_for_source(keyring: Keyring) -> None:
    # a valid signature by the labeling key, but claiming to come from checkout
    document = signed(inference_doc(source="checkout-api"), KEYS["labeling"])
    assert check(document, keyring) == Verdict(False, "key_not_for_source", KEYS["labeling"].key_id)


def test_forged_secret_is_bad_signature(keyring: Keyring) -> None:
    verdict = check(forged(inference_doc()), keyring)
    assert verdict == Verdict(False, "bad_signature", KEYS["checkout-api"].key_id)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["features"].__setitem__("amount", d["features"]["amount"] + 0.01),
        lambda d: d["features"].__setitem__("card_present", not d["features"]["card_present"]),
        lambda d: d["principal"]["roles"].append("admin"),
        lambda d: d["prediction"].__setitem__("score", 0.99),
        lambda d: d.__setitem__("model_id", "credit-v2"),
        lambda d: d["segment"].__setitem__("region", "us"),
        lambda d: d.__setitem__("tokens", {"prompt": 1, "completion": 1}),
    ],
    ids=["feature-value", "feature-bool", "roles", "score", "model", "segment", "added-member"],
)
def test_tampering_after_signing_is_bad_signature(keyring: Keyring, tamper: Any) -> None:
    document = signed(inference_doc())
    assert check(document, keyring).verified
    tampered = copy.deepcopy(document)
    tamper(tampered)
    assert check(tampered, keyring) == Verdict(False, "bad_signature", KEYS["checkout-api"].key_id)


def test_a_verified_event_carries_exactly_the_signed_values(keyring: Keyring) -> None:
    """The producer signed 1e30; a relay rewrites it to a 100-bit integer literal. Either
    the result fails verification or Vigil sees exactly the signed value, never another."""
    document = signed(inference_doc(features={"amount": 1e30}))
    raw = encode(document)
    assert b'"amount":1e+30' in raw
    tampered = raw.replace(b'"amount":1e+30', b'"amount":1000000000000000000000000012345')
    outcome = decode(tampered)
    if isinstance(outcome, Decoded) and verify(outcome.event, outcome.canonical, keyring).verified:
        assert outcome.event.features["amount"] == 1e30
        assert isinstance(outcome.event.features["amount"], float)


def test_uppercase_hex_signature_is_accepted(keyring: Keyring) -> None:
    document = signed(access_doc())
    document["signature"]["value"] = document["signature"]["value"].upper()
    assert check(document, keyring).reason == "ok"


def test_signature_over_a_different_event_does_not_transfer(keyring: Keyring) -> None:
    first, second = signed(access_doc()), signed(access_doc())
    second["signature"] = first["signature"]
    assert check(second, keyring).reason == "bad_signature"


def test_checks_run_in_order_source_before_hmac(keyring: Keyring) -> None:
    # forged *and* for the wrong source: the source mismatch is what is reported
    document = sign_document(inference_doc(), KEYS["labeling"].key_id, FORGER_SECRET)
    assert check(document, keyring).reason == "key_not_for_source"


# --- validity windows and rotation ---------------------------------------------------


@pytest.fixture
def rotating(tmp_path: Path) -> Keyring:
    """checkout-old valid until T0+10d, checkout-new from T0; overlap of ten days."""
    old, new = KEYS["checkout-api"], KEYS["lending-api"]
    entries = [
        {
            "key_id": "checkout-old",
            "secret": "hex:" + old.secret.hex(),
            "sources": ["checkout-api"],
            "not_after": at(T0 + timedelta(days=10)),
        },
        {
            "key_id": "checkout-new",
            "secret": "hex:" + new.secret.hex(),
            "sources": ["checkout-api"],
            "not_before": at(T0),
        },
    ]
    return make_keyring(tmp_path, entries)


def _sign_at(key_id: str, secret: bytes, when: datetime) -> dict[str, Any]:
    return sign_document(inference_doc(ts=at(when)), key_id, secret)


@pytest.mark.parametrize(
    ("key_id", "when", "reason"),
    [
        ("checkout-old", T0 - timedelta(days=30), "ok"),
        ("checkout-old", T0 + timedelta(days=5), "ok"),  # overlap: both keys valid
        ("checkout-old", T0 + timedelta(days=10), "ok"),  # not_after is inclusive
        ("checkout-old", T0 + timedelta(days=10, seconds=1), "key_expired"),
        ("checkout-new", T0 - timedelta(seconds=1), "key_expired"),
        ("checkout-new", T0, "ok"),  # not_before is inclusive
        ("checkout-new", T0 + timedelta(days=5), "ok"),
        ("checkout-new", T0 + timedelta(days=400), "ok"),
    ],
)
def test_validity_window(rotating: Keyring, key_id: str, when: datetime, reason: str) -> None:
    secret = KEYS["checkout-api"].secret if key_id == "checkout-old" else KEYS["lending-api"].secret
    verdict = check(_sign_at(key_id, secret, when), rotating)
    assert verdict == Verdict(reason == "ok", reason, key_id)


def test_validity_window_respects_timezone_offsets(rotating: Keyring) -> None:
    # 01:00+02:00 on T0+10d is 23:00 UTC the day before: still inside the window
    when = datetime.fromisoformat(f"{(T0 + timedelta(days=10)).date()}T01:00:00+02:00")
    verdict = check(_sign_at("checkout-old", KEYS["checkout-api"].secret, when), rotating)
    assert verdict.reason == "ok"


def test_window_from_unquoted_yaml_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        "  - key_id: k1\n"
        "    secret: hex:" + KEYS["checkout-api"].secret.hex() + "\n"
        "    sources: [checkout-api]\n"
        "    not_before: 2026-03-01T00:00:00Z\n"
        "    not_after: 2026-03-31T00:00:00Z\n",
        encoding="utf-8",
    )
    keyring = load_keyring(path)
    inside = _sign_at("k1", KEYS["checkout-api"].secret, T0 + timedelta(days=1))
    outside = _sign_at("k1", KEYS["checkout-api"].secret, T0 - timedelta(days=1))
    assert check(inside, keyring).reason == "ok"
    assert check(outside, keyring).reason == "key_expired"


# --- keyring file errors ----------------------------------------------------------


def _error_for(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad-keys.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KeyringError) as info:
        load_keyring(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "keys.yaml"
    with pytest.raises(KeyringError, match="cannot read") as info:
        load_keyring(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(KeyringError) as info:
        load_keyring(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1-keys.yaml"
    path.write_bytes("keys:\n  - key_id: clé\n".encode("latin-1"))
    with pytest.raises(KeyringError) as info:
        load_keyring(path)
    assert str(path) in str(info.value)


def test_bad_yaml(tmp_path: Path) -> None:
    message = _error_for(tmp_path, "keys: [\n  - key_id: a\n   secret: : :\n")
    assert "YAML" in message


def test_duplicate_key_id(tmp_path: Path) -> None:
    entries = key_entries()
    entries.append({**entries[0], "sources": ["elsewhere"]})
    message = _error_for(tmp_path, _dump(entries))
    assert repr(entries[0]["key_id"]) in message
    assert "twice" in message


@pytest.mark.parametrize("secret", ["too-short", "hex:00112233", "base64:" + "QUJDRA==", "hex:" + "ab" * 15])
def test_short_secret(tmp_path: Path, secret: str) -> None:
    entries = [{"key_id": "k", "secret": secret, "sources": ["s"]}]
    message = _error_for(tmp_path, _dump(entries))
    assert "16 bytes" in message
    assert "keys.0.secret" in message


@pytest.mark.parametrize("secret", ["hex:zz" + "00" * 20, "base64:***not-base64***********"])
def test_malformed_secret_encoding(tmp_path: Path, secret: str) -> None:
    message = _error_for(tmp_path, _dump([{"key_id": "k", "secret": secret, "sources": ["s"]}]))
    assert "secret" in message
    assert secret not in message


def test_unsupported_alg(tmp_path: Path) -> None:
    entries = [{"key_id": "k", "alg": "rsa-sha256", "secret": "x" * 32, "sources": ["s"]}]
    message = _error_for(tmp_path, _dump(entries))
    assert "rsa-sha256" in message
    assert "keys.0.alg" in message


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"key_id": "k", "secret": "x" * 32, "sources": []}, "keys.0.sources"),
        ({"key_id": "k", "secret": "x" * 32}, "keys.0.sources"),
        ({"key_id": "", "secret": "x" * 32, "sources": ["s"]}, "keys.0.key_id"),
        ({"key_id": "k", "secret": "x" * 32, "sources": ["s"], "scope": "all"}, "keys.0.scope"),
        (
            {"key_id": "k", "secret": "x" * 32, "sources": ["s"], "not_after": "2026-01-01T00:00:00"},
            "keys.0.not_after",
        ),
    ],
)
def test_invalid_entries_name_the_field(tmp_path: Path, entry: dict[str, Any], where: str) -> None:
    assert where in _error_for(tmp_path, _dump([entry]))


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    _error_for(tmp_path, "- just\n- a list\n")


def test_error_messages_never_contain_the_secret(tmp_path: Path) -> None:
    secret = "hunter2-but-longer-0123456789"
    entries = [{"key_id": "k", "alg": "rsa", "secret": secret, "sources": ["s"], "oops": 1}]
    assert secret not in _error_for(tmp_path, _dump(entries))


def test_empty_file_is_an_empty_keyring_rejected_as_missing_keys(tmp_path: Path) -> None:
    assert "keys" in _error_for(tmp_path, "")


def _dump(entries: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"keys": entries})


# --- secrets stay secret ---------------------------------------------------------


def _secret_spellings() -> list[str]:
    spellings = []
    for key in KEYS.values():
        spellings += [key.yaml_secret, key.secret.hex(), repr(key.secret)]
        if key.notation == "plain":
            spellings.append(key.secret.decode())
    return spellings


def test_key_entry_repr_and_str_hide_the_secret(keyring: Keyring) -> None:
    for entry in keyring.entries.values():
        shown = repr(entry) + str(entry) + repr(entry.model_dump())
        for spelling in _secret_spellings():
            assert spelling not in shown


def test_keyring_repr_and_str_hide_the_secrets(keyring: Keyring) -> None:
    shown = repr(keyring) + str(keyring)
    for spelling in _secret_spellings():
        assert spelling not in shown, f"secret visible in {shown[:200]}..."


def test_keyring_can_be_constructed_directly() -> None:
    entry = KeyEntry(key_id="direct", secret="direct-secret-0123456789", sources=("labeling",))
    keyring = Keyring({"direct": entry}, {"direct": b"direct-secret-0123456789"})
    document = sign_document(feedback_doc(), "direct", b"direct-secret-0123456789")
    assert check(document, keyring) == Verdict(True, "ok", "direct")
