"""Zero Trust identity: no event is trusted until its signature is proven."""

from identity.keyring import KeyEntry, Keyring, KeyringError, load_keyring
from identity.signing import sign_document
from identity.verify import Verdict, verify

__all__ = [
    "KeyEntry",
    "Keyring",
    "KeyringError",
    "Verdict",
    "load_keyring",
    "sign_document",
    "verify",
]
