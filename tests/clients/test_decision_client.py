"""The decision client fails closed and fast, and its cache follows the bundle revision.

A small stand-in server on loopback answers as the decision API would, with the
revision and delay each test sets, so the client is tested without Vigil running.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from vigil_client import DecisionClient, DecisionUnavailableError, GuardMiddleware, question


class StandIn:
    def __init__(self) -> None:
        self.revision = "rev-1"
        self.allowed = True
        self.delay = 0.0
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append({"path": self.path, "auth": self.headers["Authorization"], **body})
                time.sleep(stand_in.delay)
                answer = {
                    "decision": "allow" if stand_in.allowed else "deny",
                    "allowed": stand_in.allowed,
                    "action": body.get("action", ""),
                    "policy_ids": ["p"],
                    "controls": ["c"],
                    "bundle_revision": stand_in.revision,
                    "decision_id": f"d{len(stand_in.requests)}",
                }
                if self.path.endswith("/batch"):
                    answer = {"decisions": [{**answer, "action": r["action"]} for r in body["requests"]]}
                data = json.dumps(
                    answer if stand_in.status == 200 else {"error": "x", "reason": "y"}
                ).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.server.shutdown()


ASKED = question("svc-checkout", "infer", ("model", "fraud-v3"), principal_kind="service")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_carries_the_decision_and_the_credential_is_sent(stand_in: StandIn) -> None:
    client = DecisionClient(stand_in.url, api_key="svc-checkout:secret", timeout=2)
    answer = client.decide(ASKED)
    assert (answer.allowed, answer.policy_ids, answer.bundle_revision) == (True, ("p",), "rev-1")
    assert stand_in.requests[0]["auth"] == "ApiKey svc-checkout:secret"
    assert stand_in.requests[0]["principal"] == {"id": "svc-checkout", "kind": "service"}


def test_a_slow_server_is_a_deny_within_the_timeout(stand_in: StandIn) -> None:
    stand_in.delay = 1.0
    client = DecisionClient(stand_in.url, token="t", timeout=0.1)
    started = time.monotonic()
    answer = client.decide(ASKED)
    assert not answer.allowed
    assert "timed out" in (answer.error or "")
    assert time.monotonic() - started < 0.5


def test_a_server_error_denies_or_raises_when_asked_to(stand_in: StandIn) -> None:
    stand_in.status = 503
    assert not DecisionClient(stand_in.url, token="t", timeout=2).decide(ASKED).allowed
    with pytest.raises(DecisionUnavailableError, match="503"):
        DecisionClient(stand_in.url, token="t", timeout=2, deny_on_error=False).decide(ASKED)


def test_the_cache_reuses_answers_until_they_expire(stand_in: StandIn) -> None:
    clock = Clock()
    client = DecisionClient(stand_in.url, token="t", timeout=2, cache_seconds=5, clock=clock)
    assert not client.decide(ASKED).cached
    assert client.decide(ASKED).cached
    clock.now = 6
    assert not client.decide(ASKED).cached
    assert len(stand_in.requests) == 2


def test_a_new_bundle_revision_forgets_every_cached_answer(stand_in: StandIn) -> None:
    client = DecisionClient(stand_in.url, token="t", timeout=2, cache_seconds=60, clock=Clock())
    other = question("bob", "read", ("dataset", "transactions-2026"))
    client.decide(ASKED)
    stand_in.revision, stand_in.allowed = "rev-2", False
    assert client.decide(other).bundle_revision == "rev-2"
    again = client.decide(ASKED)
    assert not again.cached, "answered under rev-1: asked again"
    assert not again.allowed


def test_the_batch_form_answers_each_question_in_order(stand_in: StandIn) -> None:
    client = DecisionClient(stand_in.url, token="t", timeout=2)
    answers = client.decide_many([ASKED, question("bob", "read", ("dataset", "d"))])
    assert [a.action for a in answers] == ["infer", "read"]
    assert stand_in.requests[0]["path"] == "/v1/decide/batch"


def test_the_wsgi_middleware_answers_403_when_denied(stand_in: StandIn) -> None:
    client = DecisionClient(stand_in.url, token="t", timeout=2)
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"scored"]

    def question_for(environ: dict[str, Any]) -> Any:
        if environ["PATH_INFO"] == "/healthz":
            return None
        return question(environ["HTTP_X_USER"], "infer", ("model", environ["PATH_INFO"].rsplit("/", 1)[-1]))

    guarded = GuardMiddleware(app, client, question_for)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    assert guarded({"PATH_INFO": "/score/fraud-v3", "HTTP_X_USER": "bob"}, start_response) == [b"scored"]
    stand_in.allowed = False
    (body,) = guarded({"PATH_INFO": "/score/fraud-v3", "HTTP_X_USER": "bob"}, start_response)
    assert json.loads(body)["decision_id"] == "d2"
    assert guarded({"PATH_INFO": "/healthz"}, start_response) == [b"scored"]
    assert statuses == ["200 OK", "403 Forbidden", "200 OK"]
    assert calls == ["/score/fraud-v3", "/healthz"], "a denied request never reaches the application"
    assert len(stand_in.requests) == 2, "requests needing no decision are not asked about"
