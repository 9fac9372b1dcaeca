"""Assembling the HTTP app for each role: `up` (everything, embedded), `collector` and `api`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from fnscope import __version__
from fnscope.app.ingest_metrics import IngestRequestCounter
from fnscope.app.legal_hold_routes import hold_router
from fnscope.app.settings import Settings
from fnscope.auth import TokenAuth
from fnscope.collector.front_door import IngestFrontDoor
from fnscope.collector.routes import Ingest, StoreFirst, ingest_router, ingest_routes
from fnscope.console import mount_console
from fnscope.processors.cluster import on_cluster
from fnscope.query.api import query_router
from fnscope.query.context import QueryContext, QuerySettings
from fnscope.query.runner import QueryRunner, QueryTooSlow
from fnscope.ratelimit import RateLimiter
from fnscope.sink import Sink, StoreUnavailable
from fnscope.store import connect
from fnscope.telemetry import PipelineMetrics, prometheus_text

log = logging.getLogger("fnscope")


def build_app(
    settings: Settings,
    metrics: PipelineMetrics,
    sink: Sink | None = None,
    saturated: tuple[type[Exception], ...] = (),
    runner: QueryRunner | None = None,
    on_shutdown: Callable[[], None] | None = None,
    cloudtrail_first: StoreFirst | None = None,
) -> ASGIApp:
    """One app; each role passes the parts it has (a sink for ingest, a query runner for the API). Ingest requests
    are counted, then served by the front door; everything else by FastAPI."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        yield
        if on_shutdown is not None:
            on_shutdown()

    # FastAPI's own OpenTelemetry instrumentation would measure every request again (fnscope counts its own, on
    # /metrics) and look up the providers on each one: about 5 % of an ingest request's CPU, measured with py-spy
    off = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="fnscope", version=__version__, lifespan=lifespan, telemetry=off)
    auth = TokenAuth(settings.tokens, RateLimiter(settings.limits.rate_limit))
    ingest = ingest_routes(Ingest(sink, settings.limits, metrics, saturated), auth, cloudtrail_first) if sink else []
    app.include_router(ingest_router(ingest))
    if runner is not None:
        dsn = settings.clickhouse_dsn()
        app.include_router(query_router(QueryContext(runner, auth, _query_settings(settings), lambda: connect(dsn))))
        cluster = settings.clickhouse_cluster
        app.include_router(hold_router(auth, lambda: on_cluster(connect(dsn), cluster), settings.retention.audit))
        mount_console(app)

    @app.exception_handler(QueryTooSlow)
    async def query_too_slow(_request: Request, exc: QueryTooSlow) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, exc: Exception) -> Response:
        # the store is not up yet or went away (a role starts whatever runs first): a retryable answer, the cause
        # in this role's log
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "store unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        checks: dict[str, bool] = {}
        if sink is not None:
            checks[getattr(sink, "readiness_name", "sink")] = await run_in_threadpool(sink.ready)
        if runner is not None:
            checks["store"] = await run_in_threadpool(_store_answers, runner)
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics_endpoint() -> Response:
        return Response(prometheus_text(), media_type="text/plain; version=0.0.4")

    return IngestRequestCounter(IngestFrontDoor(app, ingest), metrics)


def _query_settings(settings: Settings) -> QuerySettings:
    return QuerySettings(
        account_concurrency_limit=settings.account_concurrency_limit,
        price_per_gb_second=settings.price_per_gb_second,
        price_per_request=settings.price_per_request,
        audit_signing_key=settings.audit_signing_key,
        audit_retention_days=settings.retention.audit,
        alerts=settings.alerts,
        alert_targets=tuple(settings.alerts.delivery_targets(settings.alert_webhook_url)),
        alert_base_url=settings.base_url(),
        canary=settings.canary,
    )


def _store_answers(runner: QueryRunner) -> bool:
    try:
        runner.rows("SELECT 1 AS ok", {})
        return True
    except Exception:
        return False
