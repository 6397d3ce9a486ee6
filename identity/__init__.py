"""Zero Trust identity: no event is trusted until its signature (and token) is proven."""

from identity.findings import identity_finding
from identity.freshness import ReplayGuard, is_stale
from identity.keyring import KeyEntry, Keyring, KeyringError, load_keyring
from identity.signing import Ed25519Signer, HmacSigner, Signer, sign_document
from identity.tokens import TokenResult, TokenVerifier
from identity.verify import IdentityVerifier, Verdict, verify

__all__ = [
    "Ed25519Signer",
    "HmacSigner",
    "IdentityVerifier",
    "KeyEntry",
    "Keyring",
    "KeyringError",
    "ReplayGuard",
    "Signer",
    "TokenResult",
    "TokenVerifier",
    "Verdict",
    "identity_finding",
    "is_stale",
    "load_keyring",
    "sign_document",
    "verify",
]
