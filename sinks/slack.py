"""Alerts to Slack with slack-sdk, off the stream's path.

``SlackNotifier.notify`` only enqueues; a daemon thread posts, with slack-sdk's
retry handlers honouring 429 ``Retry-After`` and retrying 5xx and connection
errors. A full queue or a post that still fails is logged and counted, never
silent: the alert itself is already stored in the ``alerts`` table.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from schemas.records import AlertRow
from vigil.settings import SlackSettings

log = logging.getLogger(__name__)

_EMOJI = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:"}


def _retry_handlers() -> list[Any]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=3),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=3),
    ]


def render(alert: AlertRow) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and Block Kit blocks for one alert."""
    emoji = _EMOJI.get(alert.severity, ":information_source:")
    fields = [
        f"*Severity*\n{alert.severity}",
        f"*Stage*\n{alert.stage}",
        f"*Rule*\n`{alert.detector_or_rule}`",
        f"*Model*\n{alert.model_id or '-'}",
        f"*Principal*\n{alert.principal_id or '-'}",
        f"*Occurrences*\n{alert.occurrences}",
    ]
    evidence = f"SELECT * FROM findings_unique WHERE event_id = '{alert.event_id}'"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {alert.summary}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Evidence: `{evidence}`"}]},
    ]
    return f"{alert.title}: {alert.summary}", blocks


class SlackNotifier:
    def __init__(self, settings: SlackSettings, max_queue: int = 10_000) -> None:
        if settings.bot_token is None and settings.webhook_url is None:
            raise ValueError("Slack needs VIGIL_SLACK_BOT_TOKEN or VIGIL_SLACK_WEBHOOK_URL")
        self.settings = settings
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[AlertRow | None] = queue.Queue(maxsize=max_queue)
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if settings.bot_token is not None:
            self._web = WebClient(
                token=settings.bot_token.get_secret_value(),
                base_url=settings.base_url,
                timeout=int(settings.timeout),
                retry_handlers=_retry_handlers(),
            )
        else:
            assert settings.webhook_url is not None
            self._hook = WebhookClient(
                url=settings.webhook_url.get_secret_value(),
                timeout=int(settings.timeout),
                retry_handlers=_retry_handlers(),
            )
        self._thread = threading.Thread(target=self._run, name="vigil-slack", daemon=True)
        self._thread.start()

    def notify(self, alert: AlertRow) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.failed += 1
            log.error("slack queue full: alert %s not posted (it is in the alerts table)", alert.alert_id)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (alert := self._queue.get()) is not None:
            try:
                self._post(alert)
                self.sent += 1
            except Exception as error:  # a failed post must not kill the thread
                self.failed += 1
                log.error("slack post of alert %s failed: %s", alert.alert_id, _describe(error))

    def _post(self, alert: AlertRow) -> None:
        text, blocks = render(alert)
        if self._web is not None:
            self._web.chat_postMessage(channel=self.settings.channel, text=text, blocks=blocks)
            return
        assert self._hook is not None
        response = self._hook.send(text=text, blocks=blocks)
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}")


def _describe(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return f"Slack API error {error.response.get('error', '?')}"
    return f"{type(error).__name__}: {error}"
