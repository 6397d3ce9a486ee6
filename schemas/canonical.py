"""The canonical form that signatures cover (docs/events.md, "Signing").

The event object without ``signature``, serialized as JSON with keys sorted at every
level, separators ``,`` and ``:``, UTF-8 and no ASCII escaping. It is computed from the
*parsed* message, so whitespace and key order chosen by the producer do not matter.
"""

from __future__ import annotations

from typing import Any

import orjson


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """Canonical bytes of an event document, ignoring any ``signature`` member."""
    if "signature" in document:
        document = {k: v for k, v in document.items() if k != "signature"}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def canonical_of_parsed(document: dict[str, Any]) -> bytes:
    """``canonical_bytes`` of a document this process just parsed and owns: its
    ``signature`` member is removed in place instead of copying the document."""
    document.pop("signature", None)
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
