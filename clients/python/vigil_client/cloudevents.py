"""A signed event as a CloudEvent over Kafka (docs/events.md, "CloudEvents over Kafka").

Sign the native event first (``sign``), then wrap it: the signature covers the native
event's canonical form, which Vigil rebuilds from the CloudEvent, so the envelope needs
no signing of its own. ``event_id``, ``source``, ``ts`` and ``type`` move to the
attributes ``id``, ``source``, ``time`` and ``type`` (``vigil.<type>``); everything else,
``signature`` included, is ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from vigil_client.canonical import encode

CONTENT_TYPE = "application/cloudevents+json"
LIFTED = {"event_id": "id", "source": "source", "ts": "time", "type": "type"}

Headers = list[tuple[str, bytes]]


def to_cloudevent(
    event: Mapping[str, Any],
    mode: Literal["structured", "binary"] = "structured",
    traceparent: str | None = None,
) -> tuple[Headers, bytes]:
    """(Kafka headers, message value) of ``event`` as a CloudEvent in ``mode``.

    ``traceparent`` (W3C Trace Context) is added as the CloudEvent extension of that
    name; it is not signed (a ``traceparent`` field of the event itself is).
    """
    missing = [name for name in LIFTED if not isinstance(event.get(name), str)]
    if missing:
        raise ValueError(f"a CloudEvent needs the string fields {', '.join(missing)}")
    attributes: dict[str, str] = {"specversion": "1.0"}
    for field, attribute in LIFTED.items():
        value = str(event[field])
        attributes[attribute] = f"vigil.{value}" if field == "type" else value
    if traceparent is not None:
        attributes["traceparent"] = traceparent
    data = {k: v for k, v in event.items() if k not in LIFTED}
    if mode == "structured":
        envelope = {**attributes, "datacontenttype": "application/json", "data": data}
        return [("content-type", CONTENT_TYPE.encode())], encode(envelope)
    headers = [(f"ce_{name}", value.encode("utf-8")) for name, value in attributes.items()]
    return [*headers, ("content-type", b"application/json")], encode(data)
