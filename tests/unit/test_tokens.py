"""identity.tokens: bearer JWTs verified against the IdP's JWKS, at the event's time."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest

from identity.tokens import TokenConfigError, TokenResult, TokenVerifier
from tests.factories import AUDIENCE, ISSUER, TokenIssuer, make_token_verifier, write_jwks

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def idp() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def verifier(tmp_path: Path, idp: TokenIssuer) -> TokenVerifier:
    return make_token_verifier(tmp_path, idp)


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature was actually checked (``jwt.decode`` ran)."""
    calls: list[str] = []
    real_decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


# --- a good token ---------------------------------------------------------------------


def test_valid_token_gives_roles_and_mfa(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, roles=["reader", "analyst"], amr=["pwd", "otp"])
    assert verifier.verify(token, "bob", NOW) == TokenResult(True, "ok", ("analyst", "reader"), mfa=True)


@pytest.mark.parametrize(
    ("extra", "mfa"),
    [
        ({"amr": ["pwd"]}, False),
        ({"amr": ["pwd", "hwk"]}, True),
        ({"amr": ["fido"]}, True),
        ({"amr": "otp"}, False),  # not a list: not trusted
        ({"mfa": True}, True),
        ({"mfa": "true"}, False),  # only the JSON boolean counts
        ({}, False),
    ],
)
def test_mfa_comes_from_amr_or_an_mfa_claim(
    verifier: TokenVerifier, idp: TokenIssuer, extra: dict[str, Any], mfa: bool
) -> None:
    result = verifier.verify(idp.token("bob", at=NOW, claims=extra), "bob", NOW)
    assert (result.ok, result.mfa) == (True, mfa)


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["analyst"], ("analyst",)),
        (["b", "a", 7, None, "c"], ("a", "b", "c")),  # non-strings dropped, sorted
        ("analyst", ()),  # a bare string is not a role list
        (None, ()),  # no claim
    ],
)
def test_roles_claim(
    verifier: TokenVerifier, idp: TokenIssuer, roles: Any, expected: tuple[str, ...]
) -> None:
    claims = {} if roles is None else {"roles": roles}
    assert verifier.verify(idp.token("bob", at=NOW, claims=claims), "bob", NOW).roles == expected


def test_roles_claim_name_is_configurable(tmp_path: Path, idp: TokenIssuer) -> None:
    verifier = make_token_verifier(tmp_path, idp, roles_claim="groups")
    token = idp.token("bob", at=NOW, roles=["ignored"], claims={"groups": ["analyst"]})
    assert verifier.verify(token, "bob", NOW).roles == ("analyst",)


def test_rsa_and_ec_issuers_in_one_jwks(tmp_path: Path, idp: TokenIssuer) -> None:
    rsa_idp = TokenIssuer(kid="idp-rsa", alg="RS256")
    verifier = make_token_verifier(tmp_path, idp, rsa_idp)
    for issuer in (idp, rsa_idp):
        assert verifier.verify(issuer.token("bob", at=NOW), "bob", NOW).reason == "ok"


# --- time: checked against the event, not the clock -----------------------------------


def test_token_expired_at_event_time_though_valid_now(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    now = datetime.now(UTC)
    token = idp.token("bob", at=now - timedelta(minutes=10), lifetime=timedelta(hours=1))
    assert verifier.verify(token, "bob", now).ok  # valid right now
    assert verifier.verify(token, "bob", now + timedelta(hours=2)) == TokenResult(False, "token_expired")


def test_token_expired_now_but_valid_at_event_time(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    """An event from yesterday carried yesterday's token: judged at the event's time."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    token = idp.token("bob", at=yesterday, lifetime=timedelta(hours=1))
    assert verifier.verify(token, "bob", yesterday + timedelta(minutes=30)).ok


@pytest.mark.parametrize(
    ("after_exp", "reason"),
    [(timedelta(0), "ok"), (timedelta(seconds=29), "ok"), (timedelta(seconds=31), "token_expired")],
)
def test_expiry_leeway(verifier: TokenVerifier, idp: TokenIssuer, after_exp: timedelta, reason: str) -> None:
    exp = NOW + timedelta(hours=1)
    assert verifier.verify(idp.token("bob", at=NOW, exp=exp), "bob", exp + after_exp).reason == reason


def test_leeway_is_configurable(tmp_path: Path, idp: TokenIssuer) -> None:
    strict = make_token_verifier(tmp_path, idp, leeway_seconds=0)
    exp = NOW + timedelta(hours=1)
    assert strict.verify(idp.token("bob", at=NOW, exp=exp), "bob", exp + timedelta(seconds=1)).reason == (
        "token_expired"
    )


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (timedelta(minutes=-5), "token_not_yet_valid"),
        (timedelta(seconds=-31), "token_not_yet_valid"),
        (timedelta(seconds=-29), "ok"),
        (timedelta(0), "ok"),
        (timedelta(minutes=5), "ok"),
    ],
)
def test_not_before(verifier: TokenVerifier, idp: TokenIssuer, when: timedelta, reason: str) -> None:
    nbf = NOW + timedelta(minutes=10)
    token = idp.token("bob", at=NOW, nbf=nbf)
    assert verifier.verify(token, "bob", nbf + when).reason == reason


# --- who issued it, for whom, about whom ---------------------------------------------------


def test_wrong_issuer(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, iss="https://evil.example.test/")
    assert verifier.verify(token, "bob", NOW) == TokenResult(False, "token_wrong_issuer")


def test_wrong_audience(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, aud="payroll")
    assert verifier.verify(token, "bob", NOW) == TokenResult(False, "token_wrong_audience")


def test_audience_list_including_vigil(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, claims={"aud": ["payroll", AUDIENCE]})
    assert verifier.verify(token, "bob", NOW).ok


def test_signed_by_a_key_not_in_the_jwks(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    impostor = TokenIssuer(kid=idp.kid)  # same kid, different key
    result = verifier.verify(impostor.token("bob", at=NOW, roles=["admin"]), "bob", NOW)
    assert result == TokenResult(False, "token_invalid")


def test_subject_must_be_the_events_principal(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, roles=["analyst"])
    assert verifier.verify(token, "mallory", NOW) == TokenResult(False, "token_subject_mismatch")


def test_token_without_subject_is_invalid(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    token = idp.token("bob", at=NOW, claims={"sub": None})
    assert verifier.verify(token, "bob", NOW).reason == "token_invalid"


def test_unknown_kid(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    assert verifier.verify(idp.token("bob", at=NOW, kid="rotated-away"), "bob", NOW).reason == "token_invalid"


def test_missing_kid_uses_the_only_key(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    assert verifier.verify(idp.token("bob", at=NOW, kid=None), "bob", NOW).ok


def test_missing_kid_with_several_keys_is_invalid(tmp_path: Path, idp: TokenIssuer) -> None:
    verifier = make_token_verifier(tmp_path, idp, TokenIssuer(kid="idp-2027"))
    assert verifier.verify(idp.token("bob", at=NOW, kid=None), "bob", NOW).reason == "token_invalid"


def test_unsigned_and_symmetric_tokens_are_refused(verifier: TokenVerifier, idp: TokenIssuer) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bob",
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": idp.kid})
    symmetric = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": idp.kid})
    for token in (unsigned, symmetric):
        assert verifier.verify(token, "bob", NOW).reason == "token_invalid"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "\u00e9.\u00e9.\u00e9"])
def test_garbage_is_invalid_not_an_exception(verifier: TokenVerifier, token: str) -> None:
    assert verifier.verify(token, "bob", NOW) == TokenResult(False, "token_invalid")


# --- the cache -------------------------------------------------------------------------


def test_cache_hit_skips_the_signature_but_rechecks_time(
    verifier: TokenVerifier, idp: TokenIssuer, decode_calls: list[str]
) -> None:
    exp = NOW + timedelta(hours=1)
    token = idp.token("bob", at=NOW, exp=exp, roles=["analyst"])
    assert verifier.verify(token, "bob", NOW).ok
    assert verifier.verify(token, "bob", NOW + timedelta(minutes=1)).ok
    assert verifier.verify(token, "bob", exp + timedelta(minutes=5)).reason == "token_expired"
    assert verifier.verify(token, "mallory", NOW).reason == "token_subject_mismatch"
    assert decode_calls == [token]


def test_rejected_tokens_are_cached_too(verifier: TokenVerifier, decode_calls: list[str]) -> None:
    impostor = TokenIssuer()
    token = impostor.token("bob", at=NOW)
    for _ in range(3):
        assert verifier.verify(token, "bob", NOW).reason == "token_invalid"
    assert decode_calls == [token]


def test_cache_is_bounded(tmp_path: Path, idp: TokenIssuer, decode_calls: list[str]) -> None:
    verifier = make_token_verifier(tmp_path, idp, cache_size=2)
    first, second, third = (idp.token(who, at=NOW) for who in ("a", "b", "c"))
    for token, who in ((first, "a"), (second, "b"), (third, "c"), (third, "c"), (first, "a")):
        assert verifier.verify(token, who, NOW).ok
    # third was still cached; first had been evicted and was verified again
    assert decode_calls == [first, second, third, first]


# --- JWKS from a URL ----------------------------------------------------------------------


class _JwksServer:
    """Serves a JWKS; ``failures`` first requests get HTTP 503 (the IdP is down)."""

    def __init__(self, jwks: dict[str, Any], failures: int = 0) -> None:
        self.jwks = jwks
        self.failures = failures
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                if served.requests <= served.failures:
                    self.send_error(503)
                    return
                body = json.dumps(served.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def jwks_server(idp: TokenIssuer) -> Iterator[Callable[[int], _JwksServer]]:
    servers: list[_JwksServer] = []

    def start(failures: int = 0) -> _JwksServer:
        servers.append(_JwksServer({"keys": [idp.jwk()]}, failures))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_jwks_from_a_url(jwks_server: Callable[[int], _JwksServer], idp: TokenIssuer) -> None:
    server = jwks_server(0)
    verifier = TokenVerifier(server.url, issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(idp.token("bob", at=NOW, roles=["analyst"]), "bob", NOW).roles == ("analyst",)
    assert verifier.verify(idp.token("carol", at=NOW), "carol", NOW).ok
    assert server.requests == 1  # the key set is fetched once, not per token


def test_unreachable_idp_is_unverifiable_and_retried(
    jwks_server: Callable[[int], _JwksServer], idp: TokenIssuer
) -> None:
    server = jwks_server(1)
    verifier = TokenVerifier(server.url, issuer=ISSUER, audience=AUDIENCE)
    token = idp.token("bob", at=NOW)
    assert verifier.verify(token, "bob", NOW) == TokenResult(False, "token_unverifiable")
    assert verifier.verify(token, "bob", NOW).ok  # not cached as a failure: asked again


def test_jwks_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="jwks"):
        TokenVerifier(str(tmp_path / "jwks.json"), issuer=ISSUER, audience=AUDIENCE)


def test_jwks_file_is_read_once(tmp_path: Path, idp: TokenIssuer) -> None:
    path = write_jwks(tmp_path / "jwks.json", idp)
    verifier = TokenVerifier(str(path), issuer=ISSUER, audience=AUDIENCE)
    path.unlink()
    assert verifier.verify(idp.token("bob", at=NOW), "bob", NOW).ok


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("value", ["tomorrow", [1]])
def test_malformed_time_claims_are_invalid(
    verifier: TokenVerifier, idp: TokenIssuer, claim: str, value: Any
) -> None:
    """Even a token the IdP signed gets a verdict, never an exception, for a bad time claim."""
    token = idp.token("bob", at=NOW, claims={claim: value})
    assert verifier.verify(token, "bob", NOW) == TokenResult(False, "token_invalid")


@pytest.mark.parametrize(
    ("algorithms", "message"),
    [
        (("HS256",), "HS256 is symmetric"),
        (("ES256", "HS512"), "HS512 is symmetric"),
        (("none",), "unknown algorithm 'none'"),
        (("RS257",), "unknown algorithm 'RS257'"),
        (("RS256", "EdDSA"), "the JWKS has only EC: no token could verify"),
        ((), "jwt_algorithms is empty"),
    ],
)
def test_settings_that_cannot_verify_a_token_fail_at_start(
    tmp_path: Path, idp: TokenIssuer, algorithms: tuple[str, ...], message: str
) -> None:
    """A misconfiguration is one clear start-up error, not a reject per event."""
    jwks = write_jwks(tmp_path / "jwks.json", idp)
    with pytest.raises(TokenConfigError, match=message):
        TokenVerifier(str(jwks), issuer=ISSUER, audience=AUDIENCE, algorithms=algorithms)


def test_an_unreadable_jwks_file_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text("{not json")
    with pytest.raises(TokenConfigError, match="not a readable JWKS"):
        TokenVerifier(str(tmp_path / "jwks.json"), issuer=ISSUER, audience=AUDIENCE)
