"""The saved compliance queries over HTTP: list them, and run one for the caller's tenant (its own parameters by
name). The queries themselves are defined in ``fnscope.dashboards.saved_queries``, which Grafana runs too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from fnscope.dashboards.saved_queries import BY_NAME, FINAL_SETTINGS, SAVED_QUERIES, SavedQuery
from fnscope.query.audit import with_versions
from fnscope.query.context import QueryContext, api_time, json_response
from fnscope.query.runner import QueryRunner

# A saved query's own parameters: their ClickHouse type, read as (Python type, smallest, largest).
_PARAM_TYPES = {"UInt32": (int, 0, 2**32 - 1)}


def run_saved(
    runner: QueryRunner,
    query: SavedQuery,
    tenant: str,
    since: datetime,
    until: datetime,
    limit: int = 1000,
    params: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    values = {name: default for name, (_, default) in query.params.items()}
    values.update(params or {})
    rows = runner.rows(
        f"{query.sql} {FINAL_SETTINGS}",
        {**values, "tenant": tenant, "since": since, "until": until, "limit": max(1, min(limit, 100_000))},
    )
    return with_versions(runner, tenant, rows)


def _query_params(query: SavedQuery, request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, _) in query.params.items():
        if name in request.query_params:
            convert, low, high = _PARAM_TYPES[kind]
            try:
                value = convert(request.query_params[name])
            except ValueError as exc:
                raise HTTPException(400, f"{name}: expected a {kind}") from exc
            if not low <= value <= high:
                raise HTTPException(400, f"{name}: out of range ({low} to {high})")
            out[name] = value
    return out


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit/queries", summary="The saved compliance queries, with their controls")
    async def api_saved_queries(_tenant: str = Depends(ctx.auth.read)) -> dict[str, Any]:
        return {"queries": [query.meta() for query in SAVED_QUERIES]}

    @router.get("/audit/queries/{name}", summary="Run a saved compliance query (its own parameters by name)")
    async def api_run_saved_query(
        name: str,
        request: Request,
        tenant: str = Depends(ctx.auth.read),
        since: str = "90d",
        until: str = Query("0s", description="end of the range (default: now)"),
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> Response:
        query = BY_NAME.get(name)
        if query is None:
            raise HTTPException(404, f"no saved query {name!r}; GET /api/audit/queries lists them")
        start, end = api_time(since, "since"), api_time(until or "0s", "until")
        assert start is not None and end is not None
        rows = await run_in_threadpool(
            run_saved, ctx.runner, query, tenant, start, end, limit, _query_params(query, request)
        )
        return json_response({"query": query.meta(), "results": rows})

    return router
