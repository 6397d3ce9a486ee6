"""Alert groups to Slack: one thread per group, Block Kit messages, paced and retried.

With a bot token (``chat.postMessage``) a group's first notification starts a
message; later counts, acknowledgements and silences edit it in place
(``chat.update``, nobody is pinged); alerts joining or resolving, reminders and the
final resolution are replies in its thread. Replying ``ack`` in the thread
acknowledges the group: open threads are read now and then
(``conversations.replies``) and the next edit shows who acknowledged. An incoming
webhook can neither edit nor thread, so it gets the group's message and its
changes as new messages and skips count-only edits.

Every call waits its turn (``min_interval`` per channel, Slack allows about one
message a second), slack-sdk retry handlers honour 429 ``Retry-After`` and retry
5xx and connection errors with back-off, and what still fails is raised as a
:class:`~alerting.delivery.DeliveryError` for the outbox to retry later. The
clock and sleep are injectable, so tests play out outages without waiting. The
token never appears in logs or errors.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from alerting.delivery import DeliveryError
from alerting.dispatcher import Ack
from alerting.notifications import AlertSnapshot, Notification, human_duration
from alerting.templates import MessageTemplate
from sinks.text import code, code_block, link, mrkdwn, printable, shell_command

log = logging.getLogger(__name__)

_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":information_source:",
}
_STATE_TEXT = {
    "firing": ":fire: Firing",
    "acknowledged": ":eyes: Acknowledged",
    "silenced": ":no_bell: Silenced",
    "inhibited": ":mute: Inhibited",
    "resolved": ":white_check_mark: Resolved",
}
_RETRYABLE_CODES = {"ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"}
_SLACK_USER = re.compile(r"U[A-Z0-9]{2,20}")
_ACK_REPLY = re.compile(r"^\s*(ack|acked|acknowledged?)\b", re.IGNORECASE)
MAX_ALERTS_SHOWN = 8


# --- rendering -------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rule_caption(alert: AlertSnapshot) -> str:
    return {"policy": "Policy", "detector": "Detector"}.get(alert.labels.get("stage", ""), "Rule")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _alert_blocks(alert: AlertSnapshot) -> list[dict[str, Any]]:
    """Every value from the alert is escaped here: it may hold what a publisher chose."""
    emoji = _EMOJI.get(alert.severity, ":information_source:")
    labels = alert.labels
    state = _STATE_TEXT.get(alert.state, alert.state)
    if alert.acked_by:
        user = alert.acked_by
        state += f" by <@{user}>" if _SLACK_USER.fullmatch(user) else f" by {mrkdwn(user)}"
    fields = [
        f"*Severity*\n{mrkdwn(alert.severity)}",
        f"*State*\n{state}",
        f"*Model*\n{mrkdwn(labels.get('model') or '-')}",
        f"*Principal*\n{mrkdwn(labels.get('principal') or '-')}",
        f"*{_rule_caption(alert)}*\n{code(labels.get('rule') or 'default-deny')}",
        f"*Occurrences*\n{alert.occurrences}\nfirst {_when(alert.first_seen)}\nlast {_when(alert.last_seen)}",
    ]
    if alert.controls:
        fields.append("*Controls affected*\n" + ", ".join(code(c) for c in alert.controls))
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"{emoji} {mrkdwn(alert.summary)}", 3000)},
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _clip(f, 2000)} for f in fields]},
    ]
    links = []
    if alert.runbook_url:
        links.append(f"*Runbook*: {link(alert.runbook_url)}")
    if alert.evidence_query:
        links.append(f"*Evidence*: {code_block(shell_command(alert.evidence_query))}")
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(links), 3000)}})
    return blocks


def render(
    notification: Notification, title: MessageTemplate | None = None, text: MessageTemplate | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and Block Kit blocks of a group's main message (its current state).

    ``title`` and ``text`` are the operator's templates (``slack_configs``): the title
    replaces the headline, the text is a paragraph under it. What they render comes
    from alerts, so it is escaped like every other value.
    """
    headline = title.render(notification) if title is not None else notification.headline()
    emoji = _EMOJI.get(notification.severity, ":information_source:")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(printable(headline), 150), "emoji": True},
        },
    ]
    if text is not None:
        paragraph = _clip(mrkdwn(text.render(notification)), 3000)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": paragraph}})
    shown = notification.alerts[:MAX_ALERTS_SHOWN]
    for index, alert in enumerate(shown):
        if index:
            blocks.append({"type": "divider"})
        blocks.extend(_alert_blocks(alert))
    hidden = len(notification.alerts) - len(shown)
    notes = [mrkdwn(n) for n in notification.folded()]
    if hidden:
        notes.append(f"and {hidden} more alert(s) in this group (`vigil alerts list`)")
    if notes:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(n, 300)} for n in notes[:10]]}
        )
    footer = f"Group `{notification.group_id}`"
    if len(notification.alerts) == 1:
        footer += f" · alert `{notification.alerts[0].alert_id}`"
    if notification.kind != "resolved":
        footer += f" · reply `ack` in the thread or run `vigil alerts ack {notification.group_id}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    first = notification.alerts[0].summary if notification.alerts else ""
    return f"{emoji} {mrkdwn(headline)}: {mrkdwn(first)}", blocks


def render_reply(notification: Notification) -> tuple[str, list[dict[str, Any]]]:
    """A threaded reply that says what changed since the previous message."""
    lines: list[str] = []
    if notification.kind == "resolved":
        total = sum(a.occurrences for a in notification.alerts)
        lines.append(
            f":white_check_mark: *Resolved*: no new occurrence for "
            f"{human_duration(notification.resolve_timeout)} ({total} occurrence(s) in all)."
        )
    elif notification.kind == "repeat":
        lines.append(
            f":bell: *Still firing* and not acknowledged after {human_duration(notification.window_seconds)}."
        )
    for alert in notification.alerts:
        if alert.joined and alert.state in ("firing", "acknowledged"):
            emoji = _EMOJI.get(alert.severity, "")
            lines.append(f"{emoji} *New*: {mrkdwn(alert.title)}: {mrkdwn(alert.summary)}")
        elif alert.state == "resolved" and notification.kind != "resolved":
            lines.append(f":white_check_mark: *Resolved*: {mrkdwn(alert.title)}")
    lines.extend(mrkdwn(n) for n in notification.folded())
    text = _clip("\n".join(lines) or mrkdwn(notification.headline()), 3000)
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# --- retries with an injectable sleep --------------------------------------------------


def _retry_after(response: HttpResponse) -> float:
    for name, value in response.headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0


class PacedRateLimitHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler, sleeping ``Retry-After`` through an injectable sleep."""

    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error or RuntimeError("rate limited without a response")
        state.next_attempt_requested = True
        self._sleep(_retry_after(response))
        state.increment_current_attempt()


class PacedServerErrorHandler(ServerErrorRetryHandler):
    """Retry 500/502/503/504 with slack-sdk's back-off, through an injectable sleep."""

    def __init__(self, sleep: Callable[[float], None], max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in (500, 502, 503, 504)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self._sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


def retry_handlers(sleep: Callable[[float], None]) -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        PacedRateLimitHandler(sleep),
        PacedServerErrorHandler(sleep),
    ]


# --- the receiver ----------------------------------------------------------------------


@dataclass
class _Thread:
    channel: str
    ts: str
    next_poll: float
    acked: bool = False


class SlackReceiver:
    def __init__(
        self,
        name: str,
        *,
        channel: str = "",
        bot_token: str | None = None,
        webhook_url: str | None = None,
        base_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        min_interval: float = 1.0,
        ack_poll_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        title: MessageTemplate | None = None,
        text: MessageTemplate | None = None,
        send_resolved: bool = True,
    ) -> None:
        if bot_token is None and webhook_url is None:
            raise ValueError(f"receiver {name}: Slack needs a bot token (and channel) or a webhook URL")
        if bot_token is not None and not channel:
            raise ValueError(f"receiver {name}: a Slack bot token needs a channel")
        self.name = name
        self.channel = channel
        self.title = title
        self.text = text
        self.send_resolved = send_resolved
        self.min_interval = min_interval
        self.ack_poll_interval = ack_poll_interval
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.threads: dict[str, _Thread] = {}
        self._last_call = float("-inf")
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if bot_token is not None:
            self._web = WebClient(
                token=bot_token, base_url=base_url, timeout=int(timeout), retry_handlers=retry_handlers(sleep)
            )
        else:
            assert webhook_url is not None
            self._hook = WebhookClient(
                url=webhook_url, timeout=int(timeout), retry_handlers=retry_handlers(sleep)
            )

    def deliver(self, notification: Notification) -> None:
        if notification.kind == "resolved" and not self.send_resolved:
            self.threads.pop(notification.group_id, None)
            return
        try:
            if self._web is not None:
                self._deliver_bot(self._web, notification)
            else:
                self._deliver_webhook(notification)
        except SlackApiError as error:
            raise _classified(error) from None
        except DeliveryError:
            raise
        except Exception as error:  # connection refused, timeouts: the receiver may come back
            raise DeliveryError(f"{type(error).__name__}: {error}", retryable=True) from None

    def _deliver_bot(self, web: WebClient, notification: Notification) -> None:
        text, blocks = render(notification, self.title, self.text)
        thread = self.threads.get(notification.group_id)
        if thread is None or notification.kind == "firing":
            self._pace()
            response = web.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
            self.threads[notification.group_id] = _Thread(
                channel=str(response.get("channel") or self.channel),
                ts=str(response.get("ts")),
                next_poll=self.clock() + self.ack_poll_interval,
            )
            return
        if notification.kind != "update":
            reply_text, reply_blocks = render_reply(notification)
            self._pace()
            web.chat_postMessage(
                channel=thread.channel, thread_ts=thread.ts, text=reply_text, blocks=reply_blocks
            )
        self._pace()
        try:
            web.chat_update(channel=thread.channel, ts=thread.ts, text=text, blocks=blocks)
        except SlackApiError as error:
            if error.response.get("error") != "message_not_found":
                raise
            log.warning(
                "%s: the message of group %s was deleted; posting it again", self.name, notification.group_id
            )
            del self.threads[notification.group_id]
            self._deliver_bot(web, notification)
            return
        if notification.kind == "resolved":
            del self.threads[notification.group_id]
        elif any(a.acked_by for a in notification.active) and not any(
            not a.acked_by for a in notification.active
        ):
            thread.acked = True

    def _deliver_webhook(self, notification: Notification) -> None:
        if notification.kind == "update":
            return  # a webhook message cannot be edited; the next change or reminder shows the counts
        if notification.kind == "firing":
            text, blocks = render(notification, self.title, self.text)
        else:
            text, blocks = render_reply(notification)
            blocks = render(notification, self.title)[1][:1] + blocks
        assert self._hook is not None
        self._pace()
        response = self._hook.send(text=text, blocks=blocks)
        if response.status_code >= 300:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise DeliveryError(
                f"webhook answered HTTP {response.status_code}: {response.body[:200]}", retryable
            )

    def poll(self) -> list[Ack]:
        """Acknowledgements replied in open threads (``ack`` as a thread reply)."""
        if self._web is None:
            return []
        now = self.clock()
        acks: list[Ack] = []
        for group_id, thread in list(self.threads.items()):
            if thread.acked or now < thread.next_poll:
                continue
            thread.next_poll = now + self.ack_poll_interval
            self._pace()
            try:
                response = self._web.conversations_replies(channel=thread.channel, ts=thread.ts, limit=200)
            except SlackApiError as error:
                log.warning(
                    "%s: reading thread of group %s failed: %s", self.name, group_id, _classified(error)
                )
                continue
            for message in response.get("messages") or []:
                if message.get("ts") == thread.ts or message.get("bot_id") or not message.get("user"):
                    continue
                if _ACK_REPLY.match(str(message.get("text", ""))):
                    thread.acked = True
                    at = _reply_time(message.get("ts"), polled_at=self.wall_clock())
                    acks.append(Ack(group_id, str(message["user"]), "slack", at))
                    break
        return acks

    def state(self) -> dict[str, Any]:
        """The thread of every open group: saved with each delivery, so a restart continues them."""
        return {
            "threads": {
                group_id: {"channel": t.channel, "ts": t.ts, "acked": t.acked}
                for group_id, t in self.threads.items()
            }
        }

    def restore(self, state: dict[str, Any]) -> None:
        now = self.clock()
        self.threads = {
            group_id: _Thread(channel=t["channel"], ts=t["ts"], next_poll=now, acked=t["acked"])
            for group_id, t in state.get("threads", {}).items()
        }

    def _pace(self) -> None:
        wait = self._last_call + self.min_interval - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last_call = self.clock()

    def close(self) -> None:
        """Nothing to release: slack-sdk opens a connection per call."""


def _reply_time(ts: object, polled_at: datetime) -> datetime:
    """When a thread reply was posted: Slack's message ``ts`` is epoch seconds.

    An ack covers what was firing when it was given, not when the thread was next
    read (up to ``ack_poll_interval`` later). A reply cannot postdate its reading,
    so a Slack clock ahead of ours is capped at the poll time.
    """
    try:
        posted = datetime.fromtimestamp(float(str(ts)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return polled_at
    return min(posted, polled_at)


def _classified(error: SlackApiError) -> DeliveryError:
    code = str(error.response.get("error", "unknown"))
    status = error.response.status_code
    retryable = status == 429 or status >= 500 or code in _RETRYABLE_CODES
    return DeliveryError(f"Slack API error {code} (HTTP {status})", retryable)
