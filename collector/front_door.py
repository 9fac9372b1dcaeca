"""The ingest endpoints served as plain ASGI, in front of the FastAPI app that serves everything else.

An ingest request is the hot path: a fleet's extensions post hundreds a second. FastAPI's routing, dependency
solving and middleware stack cost more than the rest of a small request's work (``bench/http_hop.py`` measures
both in one run), and they add nothing an ingest handler uses: it reads its own body, checks its own token and
answers bytes. So a POST to an ingest path goes straight to its handler; anything else, to FastAPI. FastAPI
still declares the same handlers (``collector.routes.ingest_router``), so its OpenAPI document lists them.
"""

from __future__ import annotations

import logging

import orjson
from clickhouse_connect.driver.exceptions import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fnscope.collector.routes import Handler, IngestRoute
from fnscope.sink import StoreUnavailable

log = logging.getLogger("fnscope.ingest")


class IngestFrontDoor:
    def __init__(self, app: ASGIApp, routes: list[IngestRoute]) -> None:
        self.app = app
        self.handlers: dict[str, Handler] = {route.path: route.handler for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        response = await _answer(handler, Request(scope, receive))
        await response(scope, receive, send)


async def _answer(handler: Handler, request: Request) -> Response:
    """The handler's answer; its HTTP errors as FastAPI would answer them, and never a traceback."""
    try:
        return await handler(request)
    except HTTPException as exc:
        return Response(
            orjson.dumps({"detail": exc.detail}), exc.status_code, exc.headers, media_type="application/json"
        )
    except (StoreUnavailable, OperationalError) as exc:
        log.warning("%s: %s", request.url.path, exc)
        body = orjson.dumps({"detail": "store unavailable, retry later"})
        return Response(body, 503, {"Retry-After": "5"}, media_type="application/json")
    except Exception:
        log.exception("%s failed", request.url.path)
        return PlainTextResponse("Internal Server Error", 500)
