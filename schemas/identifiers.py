"""What a canonical identifier is: the one rule every stage and the inventory share.

Policies decide on identifiers (who, which model, which dataset), and the
inventory is looked up by them exactly. An identifier that is "nearly" a registered
one (``Customers-PII``, ``customers-pii `` with a trailing space, ``customers-pii`` spelled
with a Cyrillic ``es`` for its first letter) must never be mistaken for it, nor slip past as something
unknown: the policies deny unknown resources, and an identifier that is not
canonical is named as such, with the canonical form it resembles.

Every identifier is NFKC-normalised text with no whitespace and no control or
invisible (format) characters. Resource identifiers (models, datasets, endpoints,
feature stores) are registry keys, so they are also lower case ASCII: look-alikes
from other scripts cannot be written at all. Principal identifiers stay case-
sensitive and may be any script, because identity providers issue them (an opaque
``sub`` is case-sensitive, a person's name is not ASCII); a principal id that is not
in the inventory holds no role, so a variant fails closed.

>>> identifier_problem("customers-pii", resource=True)
''
>>> identifier_problem("Customers-PII", resource=True)
'not lower case'
>>> identifier_problem("customers-pii ", resource=True)
'has whitespace'
>>> identifier_problem("\\u0441ustomers-pii", resource=True)
'non-ASCII character U+0441 CYRILLIC SMALL LETTER ES'
>>> identifier_problem("zo\\u00eb", resource=False)
''
>>> resembles("\\u0441ustomers-pii ")
'customers-pii'
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})

_LATIN_LOOKALIKES = str.maketrans(
    {
        "\u0430": "a", "\u0441": "c", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0445": "x",
        "\u0443": "y", "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u04bb": "h", "\u0501": "d",
        "\u03bf": "o", "\u03b1": "a", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v",
        "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x",
    }
)  # fmt: skip
"""Cyrillic and Greek letters drawn like Latin ones, for naming what an id resembles."""


_PLAIN_ASCII = re.compile(r"[!-~]+\Z")
"""Visible ASCII only: canonical as it stands (NFKC leaves it unchanged), checked in one step."""
_PLAIN_RESOURCE = re.compile(r"[!-@\[-~]+\Z")
"""Visible ASCII without upper-case letters."""


def identifier_problem(identifier: str, resource: bool) -> str:
    """Why ``identifier`` is not canonical, or '' when it is.

    Nearly every identifier is plain ASCII, and policies ask this for every event:
    those are settled by one regular expression before the per-character scan.
    """
    if (_PLAIN_RESOURCE if resource else _PLAIN_ASCII).match(identifier):
        return ""
    if not identifier:
        return "empty"
    if unicodedata.normalize("NFKC", identifier) != identifier:
        return "not NFKC-normalised"
    for char in identifier:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zs", "Zl", "Zp"):
            return "has whitespace"
        if category in _INVISIBLE_CATEGORIES:
            return f"control or invisible character U+{ord(char):04X}"
    if resource:
        for char in identifier:
            if not char.isascii():
                return f"non-ASCII character U+{ord(char):04X} {unicodedata.name(char, 'UNNAMED')}"
        if identifier != identifier.lower():
            return "not lower case"
    return ""


def resembles(identifier: str) -> str:
    """The canonical resource identifier a non-canonical one looks like (for messages)."""
    folded = unicodedata.normalize("NFKC", identifier).translate(_LATIN_LOOKALIKES).casefold()
    return "".join(
        c for c in folded if not c.isspace() and unicodedata.category(c) not in _INVISIBLE_CATEGORIES
    )
