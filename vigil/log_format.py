"""Log records as one JSON object per line, for collectors that index fields.

A text line is for a person at a terminal; a log pipeline (Loki, Elasticsearch,
Cloud Logging) wants fields it can filter on without parsing prose. Each record
becomes one object with ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and
``message``, plus the context a call site passed in ``extra`` (such as ``topic``,
``partition``, ``offset``, ``batch``) and the traceback as ``exception``.

>>> record = logging.LogRecord("vigil.worker", logging.WARNING, "", 0, "lag %d", (12,), None)
>>> record.created, record.topic = 0.0, "ai.inference"
>>> for field in orjson.loads(JsonFormatter().format(record)).items():
...     print(*field)
ts 1970-01-01T00:00:00.000Z
level WARNING
logger vigil.worker
message lag 12
topic ai.inference
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.log_limits import RepeatLimiter

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""Attributes every record has; anything else on a record came from ``extra``."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        document: dict[str, Any] = {
            "ts": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Every command's logging: to stderr, each repeated message said once a minute, text or JSON.

    Also called by processes a command starts (the decision API's recorder), which
    inherit no logging configuration.
    """
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatLimiter())  # an outage repeats itself; say it once a minute
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
