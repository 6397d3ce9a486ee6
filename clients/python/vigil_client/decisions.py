"""Ask Vigil's decision API before acting: fail closed, fast, with an optional local cache.

Standard library only (``http.client``), one keep-alive connection per thread.
Every failure (timeout, refused connection, 401, 5xx, a malformed answer) becomes a
deny with ``error`` set, unless ``deny_on_error=False``, in which case
``DecisionUnavailableError`` is raised for the caller to handle. Nothing is retried
except a request on a kept-alive connection the server had closed meanwhile.
``guard`` decorates a function, ``GuardMiddleware`` wraps a WSGI application.

The cache (off by default, ``cache_seconds``) keeps answers for a few seconds and
forgets all of them as soon as any answer names a different bundle revision, so
a policy change reaches the service within one request. A cached answer was
recorded once, when the server gave it; reuses are not recorded again.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

P = ParamSpec("P")
R = TypeVar("R")


class DecisionUnavailableError(RuntimeError):
    """No answer from the API (only raised with ``deny_on_error=False``)."""


class DeniedError(PermissionError):
    """Raised by ``guard`` when Vigil denies (or cannot answer, which denies)."""

    def __init__(self, decision: Decision) -> None:
        reason = decision.error or ", ".join(decision.policy_ids) or "denied"
        super().__init__(f"{decision.action} denied: {reason}")
        self.decision = decision


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    action: str
    policy_ids: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    bundle_revision: str = ""
    decision_id: str = ""
    error: str | None = None
    """Why there is no real answer (then ``allowed`` is False)."""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Question:
    principal: str
    action: str
    resource_kind: str
    resource_id: str
    principal_kind: str = "user"
    context: str = "{}"
    """JSON with sorted keys: hashable for the cache, exact for the request."""

    def to_json(self) -> dict[str, Any]:
        return {
            "principal": {"id": self.principal, "kind": self.principal_kind},
            "action": self.action,
            "resource": {"kind": self.resource_kind, "id": self.resource_id},
            "context": json.loads(self.context),
        }


def question(
    principal: str,
    action: str,
    resource: tuple[str, str],
    *,
    principal_kind: str = "user",
    context: Mapping[str, Any] | None = None,
) -> Question:
    """``resource`` is ``(kind, id)``; ``context`` holds artifact_digest, dataset_id, approval..."""
    text = json.dumps(dict(context or {}), sort_keys=True, separators=(",", ":"))
    return Question(principal, action, resource[0], resource[1], principal_kind, text)


class DecisionClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | Callable[[], str] | None = None,
        api_key: str | None = None,
        timeout: float = 0.25,
        deny_on_error: bool = True,
        cache_seconds: float = 0.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``token`` is a JWT (or a function returning a fresh one); ``api_key`` is ``key_id:secret``."""
        if (token is None) == (api_key is None):
            raise ValueError("give exactly one of token= or api_key=")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._token, self._api_key = token, api_key
        self.timeout = timeout
        self.deny_on_error = deny_on_error
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.clock = clock
        self.bundle_revision = ""
        self._cache: OrderedDict[Question, tuple[float, Decision]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._local = threading.local()

    def decide(self, asked: Question) -> Decision:
        cached = self._cached(asked)
        if cached is not None:
            return cached
        try:
            body = self._post("/v1/decide", asked.to_json())
            decision = _decision(body, asked.action)
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
            return self._failed(asked.action, error)
        self._remember(asked, decision)
        return decision

    def decide_many(self, asked: Sequence[Question]) -> list[Decision]:
        """One request for many questions (the batch form); cached answers are not asked again."""
        results: list[Decision | None] = [self._cached(q) for q in asked]
        missing = [n for n, d in enumerate(results) if d is None]
        if missing:
            try:
                body = self._post("/v1/decide/batch", {"requests": [asked[n].to_json() for n in missing]})
                answers = body["decisions"]
                if len(answers) != len(missing):
                    raise ValueError("the batch answer has the wrong length")
            except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
                answers = [error] * len(missing)
            for n, answer in zip(missing, answers, strict=True):
                try:
                    if isinstance(answer, Exception):
                        raise answer
                    results[n] = decision = _decision(answer, asked[n].action)
                    self._remember(asked[n], decision)
                except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
                    results[n] = self._failed(asked[n].action, error)
        return [d for d in results if d is not None]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # -- HTTP --------------------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Authorization": self._authorization()}
        deadline = time.monotonic() + self.timeout
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                connection.timeout = max(deadline - time.monotonic(), 0.001)
                if connection.sock is not None:
                    connection.sock.settimeout(connection.timeout)
                connection.request("POST", self._prefix + path, data, headers)
                response = connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: one fresh try
                raise
            except BaseException:
                self.close()
                raise
            if response.status != 200:
                raise ValueError(f"decision API answered {response.status}: {_reason(raw)}")
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("decision API answered with something other than an object")
            return body
        raise AssertionError("unreachable")

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self.timeout)
        connection.connect()
        if connection.sock is not None:
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.connection = connection
        return connection, False

    def _authorization(self) -> str:
        if self._api_key is not None:
            return f"ApiKey {self._api_key}"
        token = self._token() if callable(self._token) else self._token
        return f"Bearer {token}"

    def _failed(self, action: str, error: BaseException) -> Decision:
        reason = f"{type(error).__name__}: {error}"
        if not self.deny_on_error:
            raise DecisionUnavailableError(reason) from error
        return Decision(False, action, error=reason)

    # -- cache -------------------------------------------------------------------------

    def _cached(self, asked: Question) -> Decision | None:
        if self.cache_seconds <= 0:
            return None
        with self._cache_lock:
            entry = self._cache.get(asked)
            if entry is None:
                return None
            expires, decision = entry
            if self.clock() >= expires or decision.bundle_revision != self.bundle_revision:
                del self._cache[asked]
                return None
            self._cache.move_to_end(asked)
            return Decision(**{**_fields(decision), "cached": True})

    def _remember(self, asked: Question, decision: Decision) -> None:
        with self._cache_lock:
            if decision.bundle_revision != self.bundle_revision:
                self._cache.clear()  # the policies changed: every earlier answer is stale
                self.bundle_revision = decision.bundle_revision
            if self.cache_seconds <= 0:
                return
            self._cache[asked] = (self.clock() + self.cache_seconds, decision)
            self._cache.move_to_end(asked)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def guard(
    client: DecisionClient, asked: Callable[..., Question]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so it runs only when Vigil allows; ``DeniedError`` otherwise.

    ``asked`` builds the question from the decorated function's own arguments::

        @guard(client, lambda user, model, **_: question(user, "infer", ("model", model)))
        def score(user: str, model: str, features: dict) -> float: ...
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            decision = client.decide(asked(*args, **kwargs))
            if not decision.allowed:
                raise DeniedError(decision)
            return function(*args, **kwargs)

        return guarded

    return decorate


def _decision(body: Any, action: str) -> Decision:
    if not isinstance(body, dict) or "error" in body:
        raise ValueError(f"no decision: {body.get('reason') if isinstance(body, dict) else body!r}")
    allowed = body["allowed"]
    if not isinstance(allowed, bool):
        raise ValueError("allowed is not a boolean")
    return Decision(
        allowed=allowed and body["decision"] == "allow",
        action=str(body.get("action", action)),
        policy_ids=tuple(body["policy_ids"]),
        controls=tuple(body["controls"]),
        bundle_revision=str(body["bundle_revision"]),
        decision_id=str(body["decision_id"]),
    )


def _fields(decision: Decision) -> dict[str, Any]:
    return {name: getattr(decision, name) for name in Decision.__slots__}


def _reason(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        return str(body.get("reason") or body.get("error"))
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", "replace")


class GuardMiddleware:
    """WSGI middleware: each request the service maps to a question is let through only when allowed.

    ``question_for(environ)`` returns the question for a request, or None for requests
    that need no decision (health checks, static files). A deny, or no answer, is a
    ``403`` with the reason and the decision id, so the caller can quote it::

        app.wsgi_app = GuardMiddleware(app.wsgi_app, client, question_for)
    """

    def __init__(
        self,
        app: Callable[[dict[str, Any], Callable[..., Any]], Any],
        client: DecisionClient,
        question_for: Callable[[dict[str, Any]], Question | None],
    ) -> None:
        self.app = app
        self.client = client
        self.question_for = question_for

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        asked = self.question_for(environ)
        if asked is None:
            return self.app(environ, start_response)
        decision = self.client.decide(asked)
        if decision.allowed:
            environ["vigil.decision"] = decision
            return self.app(environ, start_response)
        body = json.dumps(
            {
                "error": "forbidden",
                "reason": decision.error or ", ".join(decision.policy_ids) or "denied",
                "decision_id": decision.decision_id,
            }
        ).encode()
        start_response(
            "403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
