"""A local HTTP server that answers like Slack's Web API and incoming webhooks.

slack-sdk is pointed at it (``base_url=`` / ``url=``). It keeps the messages it
was sent, like a workspace would: ``chat.postMessage`` (with ``thread_ts`` for
replies) returns a ``ts`` and the channel's id, ``chat.update`` edits a message
(``message_not_found`` for unknown ones), ``conversations.replies`` lists a
thread, and ``reply`` lets a test play a person answering in a thread. Every
request is recorded; ``script`` queues canned failures (429 with Retry-After,
5xx) for the next calls, and ``down`` answers 503 to everything (an outage).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Call:
    path: str
    body: dict[str, Any]
    at: float
    status: int

    @property
    def method(self) -> str:
        return self.path.removeprefix("/api/") if self.path.startswith("/api/") else "webhook"

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.body.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    @property
    def rendered(self) -> str:
        """Text and blocks as one string, for assertions on what a person would read."""
        return f"{self.body.get('text', '')}\n{json.dumps(self.blocks, ensure_ascii=False)}"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    user: str | None = None
    edits: int = 0


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The workspace's clock: message ``ts`` values are its epoch seconds."""
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self) -> FakeSlack:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/hook"

    @staticmethod
    def channel_id(name: str) -> str:
        if not name.startswith("#"):
            return name
        return "C" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()

    # --- what tests look at ---------------------------------------------------------

    def delivered(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.status == 200]

    def ok(self, method: str) -> list[Call]:
        """Successful calls of one Web API method (``webhook`` for incoming webhooks)."""
        return [c for c in self.delivered() if c.method == method]

    def posts(self) -> list[Call]:
        return [c for c in self.ok("chat.postMessage") if "thread_ts" not in c.body]

    def replies(self) -> list[Call]:
        return [c for c in self.ok("chat.postMessage") if "thread_ts" in c.body]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered()) >= count:
                return self.delivered()
            time.sleep(0.05)
        return self.delivered()

    def reply(self, thread_ts: str, user: str, text: str) -> None:
        """A person replies in a thread."""
        with self.lock:
            parent = self.messages[thread_ts]
            ts = self._next_ts()
            self.messages[ts] = Message(parent.channel, ts, text, [], thread_ts=thread_ts, user=user)

    # --- the server -------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{int(self.wall().timestamp())}.{next(self._ts):06d}"

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        method = path.removeprefix("/api/")
        if method == "chat.postMessage":
            ts = self._next_ts()
            channel = self.channel_id(str(body.get("channel")))
            blocks = body.get("blocks") or []
            blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
            self.messages[ts] = Message(channel, ts, str(body.get("text", "")), blocks, body.get("thread_ts"))
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "chat.update":
            message = self.messages.get(str(body.get("ts")))
            if message is None or message.channel != body.get("channel"):
                return {"ok": False, "error": "message_not_found"}
            message.text = str(body.get("text", ""))
            message.blocks = body.get("blocks") or []
            message.edits += 1
            return {"ok": True, "channel": message.channel, "ts": message.ts}
        if method == "conversations.replies":
            ts = str(body.get("ts"))
            thread = [m for m in self.messages.values() if m.ts == ts or m.thread_ts == ts]
            return {
                "ok": True,
                "messages": [
                    {"ts": m.ts, "text": m.text, **({"user": m.user} if m.user else {"bot_id": "B0VIGIL"})}
                    for m in sorted(thread, key=lambda m: m.ts)
                ],
            }
        return {"ok": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                self._serve(path, {k: v[0] for k, v in parse_qs(query).items()})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                self._serve(self.path.partition("?")[0], body)

            def _serve(self, path: str, body: dict[str, Any]) -> None:
                with fake.lock:
                    if fake.down:
                        status, headers = 503, {}
                    else:
                        status, headers = fake.script.pop(0) if fake.script else (200, {})
                    fake.calls.append(Call(path, body, time.monotonic(), status))
                    if status != 200:
                        error = "ratelimited" if status == 429 else "service_unavailable"
                        payload = json.dumps({"ok": False, "error": error}).encode()
                    elif path.startswith("/api/"):
                        payload = json.dumps(fake._answer(path, body)).encode()
                    else:
                        payload = b"ok"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler
