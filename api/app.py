"""The HTTP surface: ``POST /v1/decide``, ``POST /v1/decide/batch``, ``GET /healthz``.

Handlers are ``async`` and decide on the event loop's thread: a decision is a cache
lookup (a Cedar evaluation on a miss) and a journal append, shorter than a hop to a
worker thread would be, and one thread owning the engine and the replay memory
needs no locks. Status codes: 401 without a valid credential (no decision is made),
400 for a malformed question and 413 for an oversized body (nothing decided), 503 when the answer cannot be
recorded (the client then denies), 200 with the decision otherwise, allow or deny.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import Authenticator, Caller, UnauthenticatedError
from api.questions import BATCH, ITEM, Item
from api.service import Answer, DecisionService, Refused
from schemas.problems import describe

log = logging.getLogger(__name__)

REVISION_HEADER = "X-Vigil-Bundle-Revision"
MAX_BODY_BYTES = 8 * 2**20
"""Largest request body read: a full batch of questions fits many times over; more is refused (413)."""


class _BodyTooLargeError(Exception):
    """The request body exceeds ``MAX_BODY_BYTES``."""


async def _body(request: Request) -> bytes:
    """The body, read no further than ``MAX_BODY_BYTES`` (a declared length is checked first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BodyTooLargeError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def create_app(
    service: DecisionService,
    authenticator: Authenticator,
    health: Callable[[], dict[str, Any]] = dict,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    def caller_of(request: Request) -> Caller:
        engine = service.engine
        return authenticator.authenticate(
            request.headers.get("authorization"), engine.inventory, service.wall_clock()
        )

    def answered(caller: Caller, items: list[Item]) -> list[Answer | Refused] | Response:
        try:
            return service.decide(caller, items)
        except OSError as error:
            log.error("decision journal refused a record, answering 503: %s", error)
            return _json({"error": "not_recorded", "reason": "the decision could not be recorded"}, 503)

    async def decide(request: Request) -> Response:
        try:
            caller = caller_of(request)
        except UnauthenticatedError as error:
            return _unauthenticated(error)
        try:
            item = ITEM.validate_json(await _body(request))
        except ValidationError as error:
            return _json({"error": "invalid_request", "reason": describe(error)}, 400)
        except _BodyTooLargeError:
            return _too_large()
        result = answered(caller, [item])
        if isinstance(result, Response):
            return result
        (answer,) = result
        if isinstance(answer, Refused):
            return _json(answer.to_json(), 400)
        return _json(answer.to_json(), headers={REVISION_HEADER: answer.bundle_revision})

    async def decide_batch(request: Request) -> Response:
        try:
            caller = caller_of(request)
        except UnauthenticatedError as error:
            return _unauthenticated(error)
        try:
            batch = BATCH.validate_json(await _body(request))
        except ValidationError as error:
            return _json({"error": "invalid_request", "reason": describe(error)}, 400)
        except _BodyTooLargeError:
            return _too_large()
        result = answered(caller, batch.requests)
        if isinstance(result, Response):
            return result
        revision = service.engine.revision
        return _json(
            {"decisions": [a.to_json() for a in result], "bundle_revision": revision},
            headers={REVISION_HEADER: revision},
        )

    async def healthz(request: Request) -> Response:
        status = {"bundle_revision": service.engine.revision, **health()}
        return _json(status, 200 if status.get("status", "ok") == "ok" else 503)

    return Starlette(
        routes=[
            Route("/v1/decide", decide, methods=["POST"]),
            Route("/v1/decide/batch", decide_batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan or _no_lifespan,
    )


@asynccontextmanager
async def _no_lifespan(app: Starlette) -> AsyncIterator[None]:
    yield


def _too_large() -> Response:
    return _json(
        {"error": "too_large", "reason": f"request bodies are limited to {MAX_BODY_BYTES} bytes"}, 413
    )


def _unauthenticated(error: UnauthenticatedError) -> Response:
    return _json(
        {"error": "unauthenticated", "reason": error.reason},
        401,
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{error.reason}"'},
    )
