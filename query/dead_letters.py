"""What was refused, and why: the dead-letter store, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.query.context import QueryContext, api_time
from fnscope.query.runner import QueryRunner, Where


def dead_letters(
    runner: QueryRunner, tenant: str, since: datetime | None, source: str = "", limit: int = 100
) -> list[dict[str, Any]]:
    where = Where(tenant)
    if since:
        where.add("time >= {since:DateTime64(3)}", since=since)
    if source:
        where.add("source = {source:String}", source=source)
    sql = (
        "SELECT time, source, reason, length(raw) AS raw_bytes, substring(raw, 1, 512) AS raw_preview, event_id "
        f"FROM dead_letters FINAL WHERE {where.sql()} ORDER BY time DESC LIMIT {{limit:UInt32}}"
    )
    return runner.rows(sql, {**where.params, "limit": max(1, min(limit, 10_000))})


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["dead letters"])

    @router.get("/dead-letters", summary="Records that could not be used, with the reason")
    async def api_dead_letters(
        tenant: str = Depends(ctx.auth.admin),
        since: str = "7d",
        source: str = "",
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        rows = await run_in_threadpool(dead_letters, ctx.runner, tenant, api_time(since, "since"), source, limit)
        return {"results": rows}

    return router
