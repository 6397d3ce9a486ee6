"""Who is asking: a bearer JWT from the IdP, or an API key from the key registry.

No credential, no decision. A JWT is verified by ``identity.tokens.TokenVerifier``
against the configured JWKS (signature, issuer, audience, time claims); its
subject is the caller. An API key is ``Authorization: ApiKey <key_id>:<secret>``
naming an ``hmac-sha256`` key of the key registry whose ``sources`` include
``api``: listing that source is what turns a signing key into an API key, so an
event producer's key cannot be used to ask for decisions unless it is meant to. The
key id is then the caller, a principal of the inventory like any other.

Either way a caller asks about itself; asking about anyone else is the
``act_on_behalf`` action, which a policy must permit (``policies/stable/delegation``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import jwt

from identity.keyring import Keyring, secret_bytes
from identity.tokens import TokenVerifier
from policies.inventory import Inventory

API_SOURCE = "api"
"""The ``sources`` entry a registry key needs to be an API key."""


class UnauthenticatedError(Exception):
    """The request proves no caller; ``reason`` is safe to return (it never echoes a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    kind: str
    """``user`` or ``service``: the inventory's word, else ``service`` for keys and ``user`` for tokens."""
    via: str
    """``jwt`` or ``api_key``."""
    roles: tuple[str, ...] = ()
    mfa: bool = False
    key_id: str = ""

    @property
    def token_verified(self) -> bool:
        return self.via == "jwt"


class Authenticator:
    def __init__(self, tokens: TokenVerifier | None, keyring: Keyring) -> None:
        self.tokens = tokens
        self.keyring = keyring

    def authenticate(self, header: str | None, inventory: Inventory, now: datetime) -> Caller:
        """The proven caller, or ``UnauthenticatedError`` with why not."""
        if not header:
            raise UnauthenticatedError("missing_credentials")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if not credential:
            raise UnauthenticatedError("missing_credentials")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._token(credential, inventory, now)
        if scheme == "apikey":
            return self._api_key(credential, inventory, now)
        raise UnauthenticatedError("unsupported_scheme")

    def _token(self, token: str, inventory: Inventory, now: datetime) -> Caller:
        if self.tokens is None:
            raise UnauthenticatedError("tokens_not_configured")
        try:
            # Only to learn whom the token claims to be; verify() then proves it.
            subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
        except jwt.PyJWTError:
            raise UnauthenticatedError("token_invalid") from None
        if not isinstance(subject, str) or not subject:
            raise UnauthenticatedError("token_invalid")
        result = self.tokens.verify(token, subject, now)
        if not result.ok:
            raise UnauthenticatedError(result.reason)
        entry = inventory.principals.get(subject)
        return Caller(subject, entry.kind if entry else "user", "jwt", result.roles, result.mfa)

    def _api_key(self, credential: str, inventory: Inventory, now: datetime) -> Caller:
        key_id, _, secret = credential.partition(":")
        entry = self.keyring.get(key_id)
        # The same work whether or not the key exists: timing must not reveal key ids.
        expected = (
            secret_bytes(entry.secret) if entry is not None and entry.secret is not None else b"\0" * 32
        )
        matches = hmac.compare_digest(expected, secret.encode())
        if entry is None or not matches or entry.secret is None or API_SOURCE not in entry.sources:
            raise UnauthenticatedError("api_key_invalid")
        if not entry.valid_at(now):
            raise UnauthenticatedError("api_key_expired")
        principal = inventory.principals.get(key_id)
        return Caller(key_id, principal.kind if principal else "service", "api_key", key_id=key_id)
