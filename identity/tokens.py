"""Bearer identity: a JWT from the company IdP, verified against its JWKS.

When an event carries ``auth.token``, the token must verify (signature by a key of
the JWKS, ``iss``, ``aud``; ``exp``/``nbf`` at the event's time, which freshness
keeps close to its arrival) and its subject must be the event's principal. The
claims that matter to policy (roles, MFA) are then taken from the token, not from
the event. Decoding costs tens of microseconds per token, so results are cached by
token; the time checks run on every event.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt

log = logging.getLogger(__name__)

MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "fido", "sms"})
"""``amr`` values (RFC 8176) that mean a second factor was used."""


@dataclass(frozen=True, slots=True)
class TokenResult:
    ok: bool
    reason: str
    roles: tuple[str, ...] = ()
    mfa: bool = False


@dataclass(frozen=True, slots=True)
class _Decoded:
    claims: dict[str, Any] | None
    error: str
    cacheable: bool = True


class TokenConfigError(ValueError):
    """The token settings cannot verify any token: a start-up error, never a per-event one."""


_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
"""Algorithm family (name prefix) -> the JWK ``kty`` its keys have."""


def check_algorithms(algorithms: tuple[str, ...], key_types: set[str] | None) -> None:
    """Refuse algorithm lists that would fail every token, or accept forgeable ones.

    Symmetric ``HS*`` algorithms are refused outright: with a published JWKS the
    "secret" is public, and a token signed with it must never verify. Each algorithm
    must be one PyJWT knows and, when the keys are known (a JWKS file), at least one
    of them must have a key of its type.
    """
    if not algorithms:
        raise TokenConfigError("jwt_algorithms is empty: no token could ever verify")
    known = set(jwt.algorithms.get_default_algorithms()) - {"none"}
    for name in algorithms:
        if name not in known:
            raise TokenConfigError(
                f"jwt_algorithms: unknown algorithm {name!r}; known: {', '.join(sorted(known))}"
            )
        if name.startswith("HS"):
            raise TokenConfigError(
                f"jwt_algorithms: {name} is symmetric; tokens must be verified with the IdP's public keys"
            )
    usable = {_KEY_TYPES.get(name[:2]) for name in algorithms}
    if key_types is not None and not usable & key_types:
        raise TokenConfigError(
            f"jwt_algorithms {', '.join(algorithms)} need {', '.join(sorted(t for t in usable if t))} keys "
            f"and the JWKS has only {', '.join(sorted(key_types)) or 'no keys'}: no token could verify"
        )


class TokenVerifier:
    """Verify tokens against a JWKS given as a file path or an ``https://`` URL."""

    def __init__(
        self,
        jwks: str,
        issuer: str,
        audience: str,
        algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA"),
        leeway_seconds: float = 30.0,
        roles_claim: str = "roles",
        cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.leeway_seconds = leeway_seconds
        self.roles_claim = roles_claim
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Decoded] = OrderedDict()
        if jwks.startswith(("https://", "http://")):
            check_algorithms(tuple(algorithms), None)
            self._client: jwt.PyJWKClient | None = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=600)
            self._keys: dict[str | None, Any] = {}
        else:
            self._client = None
            try:
                keyset = jwt.PyJWKSet.from_dict(json.loads(Path(jwks).read_text(encoding="utf-8")))
            except (ValueError, jwt.PyJWKSetError) as error:
                raise TokenConfigError(f"{jwks}: not a readable JWKS: {error}") from error
            self._keys = {key.key_id: key for key in keyset.keys}
            check_algorithms(tuple(algorithms), {str(key.key_type) for key in keyset.keys})

    def verify(self, token: str, principal_id: str, at: datetime) -> TokenResult:
        decoded = self._decode(token)
        if decoded.claims is None:
            return TokenResult(False, decoded.error)
        claims = decoded.claims
        when = at.timestamp()
        if "exp" in claims and when > float(claims["exp"]) + self.leeway_seconds:
            return TokenResult(False, "token_expired")
        if "nbf" in claims and when < float(claims["nbf"]) - self.leeway_seconds:
            return TokenResult(False, "token_not_yet_valid")
        if claims.get("sub") != principal_id:
            return TokenResult(False, "token_subject_mismatch")
        roles = claims.get(self.roles_claim, ())
        roles = tuple(sorted(r for r in roles if isinstance(r, str))) if isinstance(roles, list) else ()
        amr = claims.get("amr", ())
        mfa = claims.get("mfa") is True or (isinstance(amr, list) and bool(MFA_METHODS.intersection(amr)))
        return TokenResult(True, "ok", roles, mfa)

    def _decode(self, token: str) -> _Decoded:
        cached = self._cache.get(token)
        if cached is not None:
            self._cache.move_to_end(token)
            return cached
        decoded = self._decode_uncached(token)
        if not decoded.cacheable:
            return decoded
        self._cache[token] = decoded
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return decoded

    def _decode_uncached(self, token: str) -> _Decoded:
        try:
            key = self._signing_key(token)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                # Time claims are checked per event against the event's time, not now.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["sub"]},
            )
        except jwt.PyJWKClientConnectionError:
            # The IdP is unreachable: say so, and try again for the next event.
            return _Decoded(None, "token_unverifiable", cacheable=False)
        except jwt.InvalidIssuerError:
            return _Decoded(None, "token_wrong_issuer")
        except jwt.InvalidAudienceError:
            return _Decoded(None, "token_wrong_audience")
        except (jwt.PyJWTError, ValueError) as error:
            log.debug("token rejected: %s", type(error).__name__)
            return _Decoded(None, "token_invalid")
        for name in ("exp", "nbf"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                return _Decoded(None, "token_invalid")
        return _Decoded(claims, "ok")

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        if kid in self._keys:
            return self._keys[kid].key
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values())).key
        raise ValueError("no JWKS key for the token's kid")
