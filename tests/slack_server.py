"""A local HTTP server that answers like Slack's Web API and incoming webhooks.

slack-sdk is pointed at it (``base_url=`` / ``url=``). Each request is recorded;
``script`` queues canned failures (429 with Retry-After, 5xx) for the next calls.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Call:
    path: str
    body: dict[str, Any]
    at: float
    status: int


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def delivered(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.status == 200]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered()) >= count:
                return self.delivered()
            time.sleep(0.05)
        return self.delivered()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                with fake.lock:
                    status, headers = fake.script.pop(0) if fake.script else (200, {})
                    fake.calls.append(Call(self.path, body, time.monotonic(), status))
                if status != 200:
                    payload = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                elif self.path.startswith("/api/"):
                    payload = json.dumps({"ok": True, "channel": body.get("channel"), "ts": "1.0"}).encode()
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
