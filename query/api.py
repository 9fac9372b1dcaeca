"""The query API: JSON over HTTP, parameters mirroring the CLI flags, scoped to the caller's tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.auth import TokenAuth
from fnscope.timeparse import parse_time
from query.audit import AuditRequest, audit
from query.dead_letters import dead_letters
from query.runner import QueryRunner
from query.search import SearchRequest, search
from query.stats import StatsRequest, stats


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from exc


def query_router(runner: QueryRunner, auth: TokenAuth, account_limit: int) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["query"])

    @router.get("/search", summary="Find function log lines")
    async def api_search(
        tenant: str = Depends(auth),
        q: str = "",
        function: str = "",
        since: str = "15m",
        until: str | None = None,
        level: str = "",
        request_id: str = "",
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        req = SearchRequest(tenant, q, _time(since, "since"), _time(until, "until"), function, level, request_id, limit)
        return {"results": await run_in_threadpool(search, runner, req)}

    @router.get("/audit", summary="Who did what, to what, from where")
    async def api_audit(
        tenant: str = Depends(auth),
        principal: str = "",
        action: str = "",
        resource: str = "",
        source: str = "",
        failed: bool = False,
        since: str = "90d",
        until: str | None = None,
        limit: int = Query(100, ge=1, le=100_000),
    ) -> dict[str, Any]:
        req = AuditRequest(
            tenant, principal, action, resource, source, failed, _time(since, "since"), _time(until, "until"), limit
        )
        return {"results": await run_in_threadpool(audit, runner, req)}

    @router.get("/stats", summary="Per-function health")
    async def api_stats(
        tenant: str = Depends(auth), function: str = "", since: str = "1h", until: str | None = None
    ) -> dict[str, Any]:
        start = _time(since, "since")
        assert start is not None
        req = StatsRequest(tenant, start, _time(until, "until"), function, account_limit)
        return {"functions": await run_in_threadpool(stats, runner, req)}

    @router.get("/dead-letters", summary="Records that could not be used, with the reason")
    async def api_dead_letters(
        tenant: str = Depends(auth), since: str = "7d", source: str = "", limit: int = Query(100, ge=1, le=10_000)
    ) -> dict[str, Any]:
        rows = await run_in_threadpool(dead_letters, runner, tenant, _time(since, "since"), source, limit)
        return {"results": rows}

    return router
