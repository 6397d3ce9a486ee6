"""identity: who sent an event (verify, IdentityVerifier) and the key file that says so."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pydantic import ValidationError

from identity import (
    Ed25519Signer,
    IdentityVerifier,
    KeyEntry,
    Keyring,
    KeyringError,
    ReplayGuard,
    TokenResult,
    Verdict,
    load_keyring,
    sign_document,
    verify,
)
from identity.verify import NO_TOKEN, UNCHECKED_TOKEN
from schemas.decode import Decoded, decode
from tests.factories import (
    FORGER_SECRET,
    KEYS,
    TokenIssuer,
    access_doc,
    ed25519_entry,
    ed25519_key_pair,
    encode,
    feedback_doc,
    forged,
    inference_doc,
    key_entries,
    make_keyring,
    make_token_verifier,
    now_iso,
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
    assert "keys.0: " in message
    assert "secret must be at least 16 bytes" in message


@pytest.mark.parametrize("secret", ["hex:zz" + "00" * 20, "base64:***not-base64***********"])
def test_malformed_secret_encoding(tmp_path: Path, secret: str) -> None:
    message = _error_for(tmp_path, _dump([{"key_id": "k", "secret": secret, "sources": ["s"]}]))
    assert "secret" in message
    assert secret not in message


def test_unsupported_alg(tmp_path: Path) -> None:
    entries = [{"key_id": "k", "alg": "rsa-sha256", "secret": "x" * 32, "sources": ["s"]}]
    message = _error_for(tmp_path, _dump(entries))
    assert "keys.0.alg" in message
    assert "'hmac-sha256' or 'ed25519'" in message


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
    keyring = Keyring({"direct": entry})
    document = sign_document(feedback_doc(), "direct", b"direct-secret-0123456789")
    assert check(document, keyring) == Verdict(True, "ok", "direct")


# --- Ed25519: the monitor checks signatures it could never make ----------------------------

EDGE_PRIVATE, EDGE_PUBLIC = ed25519_key_pair()
EDGE = Ed25519Signer("edge-2026", EDGE_PRIVATE)


def _edge_keyring(tmp_path: Path, notation: str = "base64", **fields: Any) -> Keyring:
    entry = ed25519_entry("edge-2026", EDGE_PUBLIC, ("edge-api",), notation, **fields)
    return make_keyring(tmp_path, [*key_entries(), entry])


@pytest.mark.parametrize("notation", ["base64", "hex", "pem"])
def test_ed25519_signature_verifies(tmp_path: Path, notation: str) -> None:
    keyring = _edge_keyring(tmp_path, notation)
    document = EDGE.sign(access_doc(source="edge-api"))
    assert document["signature"]["alg"] == "ed25519"
    assert len(document["signature"]["value"]) == 128
    assert check(document, keyring) == Verdict(True, "ok", "edge-2026")


def test_ed25519_tampered_event_is_bad_signature(tmp_path: Path) -> None:
    keyring = _edge_keyring(tmp_path)
    document = EDGE.sign(access_doc(source="edge-api", action="read"))
    document["action"] = "export"
    assert check(document, keyring) == Verdict(False, "bad_signature", "edge-2026")


def test_ed25519_signature_by_another_private_key_is_bad_signature(tmp_path: Path) -> None:
    keyring = _edge_keyring(tmp_path)
    impostor = Ed25519Signer("edge-2026", Ed25519PrivateKey.generate())
    assert check(impostor.sign(access_doc(source="edge-api")), keyring).reason == "bad_signature"


@pytest.mark.parametrize("value", ["zz" * 64, "\u00e9" * 128, "ab" * 63, ""])
def test_malformed_signature_values_never_match(tmp_path: Path, keyring: Keyring, value: str) -> None:
    """Whatever the schema lets through, a key answers no rather than raising."""
    canonical = decoded_event(EDGE.sign(access_doc(source="edge-api"))).canonical
    for entry in (_edge_keyring(tmp_path).entries["edge-2026"], keyring.entries[KEYS["data-portal"].key_id]):
        assert entry.matches(canonical, value) is False


def test_hmac_signature_under_an_ed25519_key_id_is_alg_mismatch(tmp_path: Path) -> None:
    """The public key is public: an HMAC keyed with it must never pass (alg confusion)."""
    keyring = _edge_keyring(tmp_path)
    public_raw = EDGE_PUBLIC.public_bytes(Encoding.Raw, PublicFormat.Raw)
    for secret in (public_raw, ed25519_entry("x", EDGE_PUBLIC)["public_key"].encode()):
        document = sign_document(access_doc(source="edge-api"), "edge-2026", secret)
        assert check(document, keyring) == Verdict(False, "alg_mismatch", "edge-2026")


def test_ed25519_signature_under_an_hmac_key_id_is_alg_mismatch(keyring: Keyring) -> None:
    signer = Ed25519Signer(KEYS["data-portal"].key_id, EDGE_PRIVATE)
    verdict = check(signer.sign(access_doc()), keyring)
    assert verdict == Verdict(False, "alg_mismatch", KEYS["data-portal"].key_id)


def test_the_monitor_holds_no_ed25519_private_material(tmp_path: Path) -> None:
    keyring = _edge_keyring(tmp_path)
    entry = keyring.get("edge-2026")
    assert entry is not None
    assert entry.secret is None
    held = [*entry.model_dump().values(), *(entry.__pydantic_private__ or {}).values()]
    assert not any(isinstance(value, Ed25519PrivateKey) for value in held)
    private_raw = EDGE_PRIVATE.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    key_file = (tmp_path / "keys.yaml").read_text()
    shown = repr(keyring) + repr(entry.model_dump()) + key_file
    for spelling in (private_raw.hex(), private_raw.hex().upper(), repr(private_raw)):
        assert spelling not in shown
    assert private_raw not in key_file.encode()


def test_a_private_key_pasted_as_public_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    pem = EDGE_PRIVATE.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    entry = {"key_id": "edge", "alg": "ed25519", "public_key": pem, "sources": ["edge-api"]}
    message = _error_for(tmp_path, _dump([entry]))
    assert "keys.0" in message
    body = "".join(pem.strip().splitlines()[1:-1])
    assert body not in message


# --- key material must fit the algorithm -----------------------------------------------------

_PUBLIC = ed25519_entry("x", EDGE_PUBLIC)["public_key"]


@pytest.mark.parametrize(
    ("entry", "needs"),
    [
        ({"alg": "hmac-sha256", "secret": "x" * 32, "public_key": _PUBLIC}, "hmac-sha256 key needs `secret`"),
        ({"alg": "hmac-sha256"}, "hmac-sha256 key needs `secret`"),
        ({"alg": "ed25519", "public_key": _PUBLIC, "secret": "x" * 32}, "ed25519 key needs `public_key`"),
        ({"alg": "ed25519"}, "ed25519 key needs `public_key`"),
        ({"alg": "ed25519", "secret": "x" * 32}, "ed25519 key needs `public_key`"),
    ],
    ids=[
        "hmac-with-public-key",
        "hmac-without-secret",
        "ed25519-with-secret",
        "ed25519-empty",
        "ed25519-secret",
    ],
)
def test_key_material_must_fit_the_algorithm(tmp_path: Path, entry: dict[str, Any], needs: str) -> None:
    message = _error_for(tmp_path, _dump([{"key_id": "k", "sources": ["s"], **entry}]))
    assert needs in message
    assert "x" * 32 not in message


@pytest.mark.parametrize(
    ("public_key", "problem"),
    [
        ("base64:" + "QUJD", "32 bytes, got 3"),
        ("hex:" + "ab" * 33, "32 bytes, got 33"),
        ("hex:zz" + "00" * 31, "not valid hex"),
    ],
)
def test_malformed_ed25519_public_key(tmp_path: Path, public_key: str, problem: str) -> None:
    entry = {"key_id": "k", "alg": "ed25519", "public_key": public_key, "sources": ["s"]}
    assert problem in _error_for(tmp_path, _dump([entry]))


def test_pem_key_of_another_type_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    entry = {"key_id": "k", "alg": "ed25519", "public_key": pem, "sources": ["s"]}
    assert "not an Ed25519" in _error_for(tmp_path, _dump([entry]))


def test_key_entry_built_in_code_checks_the_same_rules() -> None:
    with pytest.raises(ValidationError, match="needs `secret`"):
        KeyEntry(key_id="k", secret="x" * 32, public_key=_PUBLIC, sources=("s",))


# --- which principals a key may speak for -------------------------------------------------------


def _scoped_keyring(tmp_path: Path, *patterns: str) -> Keyring:
    key = KEYS["checkout-api"]
    entry = {"key_id": key.key_id, "secret": key.yaml_secret, "sources": list(key.sources)}
    return make_keyring(tmp_path, [{**entry, "principals": list(patterns)}])


@pytest.mark.parametrize(
    ("patterns", "principal", "reason"),
    [
        (("svc-*",), "svc-checkout", "ok"),
        (("svc-*",), "alice", "key_not_for_principal"),
        (("svc-*",), "SVC-checkout", "key_not_for_principal"),  # case matters
        (("svc-checkout",), "svc-checkout", "ok"),
        (("svc-checkout",), "svc-checkout-2", "key_not_for_principal"),  # exact, not a prefix
        (("team-[ab]-?",), "team-a-1", "ok"),
        (("team-[ab]-?",), "team-c-1", "key_not_for_principal"),
        (("alice", "svc-*"), "alice", "ok"),
        ((), "svc-checkout", "key_not_for_principal"),  # an empty list speaks for nobody
    ],
)
def test_key_speaks_only_for_its_principal_patterns(
    tmp_path: Path, patterns: tuple[str, ...], principal: str, reason: str
) -> None:
    keyring = _scoped_keyring(tmp_path, *patterns)
    document = signed(inference_doc(principal=principal))
    assert check(document, keyring) == Verdict(reason == "ok", reason, KEYS["checkout-api"].key_id)


def test_keys_speak_for_any_principal_by_default(keyring: Keyring) -> None:
    assert keyring.entries[KEYS["checkout-api"].key_id].principals == ("*",)
    assert check(signed(inference_doc(principal="anyone-at-all")), keyring).verified


def test_principal_check_comes_after_source_and_before_the_signature(tmp_path: Path) -> None:
    keyring = _scoped_keyring(tmp_path, "svc-*")
    wrong_both = signed(inference_doc(source="lending-api", principal="alice"), KEYS["checkout-api"])
    assert check(wrong_both, keyring).reason == "key_not_for_source"
    forged_for_alice = sign_document(
        inference_doc(principal="alice"), KEYS["checkout-api"].key_id, FORGER_SECRET
    )
    assert check(forged_for_alice, keyring).reason == "key_not_for_principal"


# --- IdentityVerifier: signature, then token, then freshness, then replay -------------------------

POSITION = ("ai.access", 0, 10)


def decoded_event(document: dict[str, Any]) -> Decoded:
    outcome = decode(encode(document))
    assert isinstance(outcome, Decoded), outcome
    return outcome


def run(
    verifier: IdentityVerifier,
    document: dict[str, Any],
    position: tuple[str, int, int] = POSITION,
    arrival: datetime | None = None,
) -> Verdict:
    outcome = decoded_event(document)
    return verifier.verify(outcome.event, outcome.canonical, position, arrival)


def test_verified_event_without_token(keyring: Keyring) -> None:
    verdict = run(IdentityVerifier(keyring), signed(access_doc(ts=now_iso())), arrival=datetime.now(UTC))
    assert verdict == Verdict(True, "ok", KEYS["data-portal"].key_id, NO_TOKEN)
    assert not verdict.token_verified


def test_token_without_a_configured_idp_is_unchecked(keyring: Keyring) -> None:
    document = signed(access_doc(auth={"token": "opaque"}))
    verdict = run(IdentityVerifier(keyring), document)
    assert (verdict.verified, verdict.token) == (True, UNCHECKED_TOKEN)
    assert not verdict.token_verified


@pytest.fixture(scope="module")
def idp() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def with_tokens(tmp_path: Path, keyring: Keyring, idp: TokenIssuer) -> IdentityVerifier:
    return IdentityVerifier(keyring, tokens=make_token_verifier(tmp_path, idp))


def test_verified_token_is_part_of_the_verdict(with_tokens: IdentityVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", roles=["analyst"], amr=["otp"])
    document = signed(access_doc(auth={"token": token}, ts=now_iso()))
    verdict = run(with_tokens, document, arrival=datetime.now(UTC))
    assert verdict == Verdict(
        True, "ok", KEYS["data-portal"].key_id, TokenResult(True, "ok", ("analyst",), True)
    )
    assert verdict.token_verified


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda idp: idp.token("mallory"), "token_subject_mismatch"),
        (lambda idp: idp.token("bob", at=datetime.now(UTC) - timedelta(hours=3)), "token_expired"),
        (lambda idp: TokenIssuer().token("bob"), "token_invalid"),
    ],
)
def test_failed_token_makes_the_event_unverified(
    with_tokens: IdentityVerifier, idp: TokenIssuer, make: Any, reason: str
) -> None:
    verdict = run(with_tokens, signed(access_doc(auth={"token": make(idp)})))
    assert (verdict.verified, verdict.reason, verdict.key_id) == (False, reason, KEYS["data-portal"].key_id)
    assert verdict.token.reason == reason
    assert not verdict.token_verified


def test_signature_is_checked_before_anything_else(with_tokens: IdentityVerifier, idp: TokenIssuer) -> None:
    # forged, with a token for someone else, stale, at a replayed position: the forgery is reported
    document = forged(access_doc(auth={"token": idp.token("mallory")}, ts=now_iso(timedelta(hours=-1))))
    verdict = run(with_tokens, document, arrival=datetime.now(UTC))
    assert verdict.reason == "bad_signature"
    assert verdict.token == NO_TOKEN


def test_token_is_checked_before_freshness(with_tokens: IdentityVerifier, idp: TokenIssuer) -> None:
    document = signed(access_doc(auth={"token": idp.token("mallory")}, ts=now_iso(timedelta(hours=-1))))
    assert run(with_tokens, document, arrival=datetime.now(UTC)).reason == "token_subject_mismatch"


def test_freshness_is_checked_before_replay(keyring: Keyring) -> None:
    verifier = IdentityVerifier(keyring)
    document = signed(access_doc(ts=now_iso()))
    assert run(verifier, document, ("t", 0, 1), datetime.now(UTC)).reason == "ok"
    later = datetime.now(UTC) + timedelta(hours=1)
    assert run(verifier, document, ("t", 0, 2), later).reason == "stale"
    assert run(verifier, document, ("t", 0, 3), datetime.now(UTC)).reason == "replay"


def test_forgeries_do_not_burn_event_ids(keyring: Keyring) -> None:
    """A forger who sends an id first must not get the genuine event flagged as a replay."""
    verifier = IdentityVerifier(keyring)
    genuine = signed(access_doc())
    assert run(verifier, forged(genuine), ("t", 0, 1)).reason == "bad_signature"
    assert run(verifier, genuine, ("t", 0, 2)).reason == "ok"
    assert run(verifier, genuine, ("t", 0, 2)).reason == "ok"  # redelivered
    assert run(verifier, genuine, ("t", 0, 3)).reason == "replay"


def test_stale_events_do_not_burn_event_ids(keyring: Keyring) -> None:
    verifier = IdentityVerifier(keyring)
    document = signed(access_doc(ts=now_iso()))
    assert run(verifier, document, ("t", 0, 1), datetime.now(UTC) + timedelta(hours=1)).reason == "stale"
    assert run(verifier, document, ("t", 0, 2), datetime.now(UTC)).reason == "ok"


def test_replay_verdict_keeps_the_key_and_token(with_tokens: IdentityVerifier, idp: TokenIssuer) -> None:
    document = signed(access_doc(auth={"token": idp.token("bob", roles=["analyst"])}))
    assert run(with_tokens, document, ("t", 0, 1)).verified
    replay = run(with_tokens, document, ("t", 0, 2))
    assert (replay.verified, replay.reason, replay.key_id) == (False, "replay", KEYS["data-portal"].key_id)
    assert replay.token.ok  # the token was fine; the message is still a copy


@pytest.mark.parametrize(
    ("age", "skew", "reason"),
    [
        (timedelta(minutes=4), timedelta(minutes=5), "ok"),
        (timedelta(minutes=6), timedelta(minutes=5), "stale"),
        (timedelta(minutes=-6), timedelta(minutes=5), "stale"),
        (timedelta(minutes=30), timedelta(hours=1), "ok"),
    ],
)
def test_max_skew_is_configurable(keyring: Keyring, age: timedelta, skew: timedelta, reason: str) -> None:
    arrival = datetime.now(UTC)
    document = signed(access_doc(ts=(arrival - age).isoformat()))
    assert run(IdentityVerifier(keyring, max_skew=skew), document, arrival=arrival).reason == reason


def test_no_arrival_time_means_no_freshness_check(keyring: Keyring) -> None:
    document = signed(access_doc(ts=now_iso(timedelta(days=-20))))
    assert run(IdentityVerifier(keyring), document, arrival=None).reason == "ok"


def test_replay_guard_is_injectable(keyring: Keyring) -> None:
    guard = ReplayGuard(window=timedelta(hours=1))
    verifier = IdentityVerifier(keyring, replay=guard)
    first = signed(access_doc())
    run(verifier, first, ("t", 0, 1))
    assert run(verifier, first, ("t", 0, 3)).reason == "replay"
    assert verifier.replay is guard
    assert len(guard) == 1
