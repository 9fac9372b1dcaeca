"""Log search: words must all appear (as whole tokens), newest first, filtered by function, level, request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from query.context import QueryContext, api_time
from query.runner import QueryRunner, Where

_TOKEN = re.compile(r"^[A-Za-z0-9]+$")


@dataclass
class SearchRequest:
    tenant: str
    query: str = ""
    since: datetime | None = None
    until: datetime | None = None
    function: str = ""
    level: str = ""
    request_id: str = ""
    limit: int = 100


def search(runner: QueryRunner, req: SearchRequest) -> list[dict[str, Any]]:
    where = Where(req.tenant)
    if req.since:
        where.add("time >= {since:DateTime64(3)}", since=req.since)
    if req.until:
        where.add("time <= {until:DateTime64(3)}", until=req.until)
    if req.function:
        where.add("function = {function:String}", function=req.function)
    if req.level:
        where.add("lower(level) = lower({level:String})", level=req.level)
    if req.request_id:
        where.add("request_id = {request_id:String}", request_id=req.request_id)
    for i, term in enumerate(req.query.split()):
        # Whole alphanumeric words use the text index; anything else is a case-insensitive substring.
        if _TOKEN.match(term):
            where.add(f"hasToken(message, {{t{i}:String}})", **{f"t{i}": term})
        else:
            where.add(f"positionCaseInsensitive(message, {{t{i}:String}}) > 0", **{f"t{i}": term})
    sql = (
        "SELECT time, function, version, request_id, level, log_type, message, fields, event_id "
        f"FROM function_logs FINAL WHERE {where.sql()} ORDER BY time DESC, event_id LIMIT {{limit:UInt32}}"
    )
    return runner.rows(sql, {**where.params, "limit": max(1, min(req.limit, 10_000))})


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["search"])

    @router.get("/search", summary="Find function log lines")
    async def api_search(
        tenant: str = Depends(ctx.auth),
        q: str = "",
        function: str = "",
        since: str = "15m",
        until: str | None = None,
        level: str = "",
        request_id: str = "",
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        req = SearchRequest(
            tenant, q, api_time(since, "since"), api_time(until, "until"), function, level, request_id, limit
        )
        return {"results": await run_in_threadpool(search, ctx.runner, req)}

    return router
