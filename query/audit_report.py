"""An assurance report: for one framework (CIS AWS Foundations, SOC 2, PCI DSS requirement 10, HIPAA), each of its
controls with the saved compliance queries that serve it (``fnscope.dashboards.assurance``) and what they found in
the range: how many rows (and events, for queries that group them) and the newest rows.

Each query runs once however many controls it serves; its count is exact (a count over the whole result, not the
rows shown). A control no saved query serves is listed with none, so the report shows the gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool

from fnscope.dashboards.assurance import FRAMEWORKS, Framework, queries_for
from fnscope.dashboards.saved_queries import BY_NAME, FINAL_SETTINGS
from fnscope.query.audit_saved import run_saved
from fnscope.query.context import QueryContext, api_window, json_response
from fnscope.query.runner import QueryRunner

_ALL_ROWS = 2**32 - 1


def framework_named(name: str) -> Framework:
    """The framework ``name`` (any case), or a 400 naming the parameter and the known frameworks."""
    found = FRAMEWORKS.get(name.strip().lower())
    if found is None:
        raise HTTPException(400, f"framework: unknown {name!r}; known: {', '.join(FRAMEWORKS)}")
    return found


def _found(runner: QueryRunner, name: str, tenant: str, since: datetime, until: datetime, rows: int) -> dict:
    query = BY_NAME[name]
    values = {key: default for key, (_, default) in query.params.items()}
    params = {**values, "tenant": tenant, "since": since, "until": until, "limit": _ALL_ROWS}
    events = "sum(events)" if query.grouped else "count()"
    (counted,) = runner.rows(f"SELECT count() AS n, {events} AS events FROM ({query.sql}) {FINAL_SETTINGS}", params)
    return {
        "title": query.title,
        "rows": int(counted["n"]),
        "events": int(counted["events"] or 0),
        "first": run_saved(runner, query, tenant, since, until, rows) if rows and counted["n"] else [],
    }


def report(
    runner: QueryRunner, framework: Framework, tenant: str, since: datetime, until: datetime, rows: int = 3
) -> dict[str, Any]:
    controls = [
        {"id": c.id, "title": c.title, "citation": framework.cite(c.id), "queries": list(queries_for(framework, c.id))}
        for c in framework.controls
    ]
    names = list(dict.fromkeys(name for control in controls for name in control["queries"]))
    return {
        "framework": {"name": framework.name, "title": framework.title, "version": framework.version},
        "since": since.isoformat(),
        "until": until.isoformat(),
        "controls": controls,
        "queries": {name: _found(runner, name, tenant, since, until, rows) for name in names},
    }


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit/report", summary="Per control of a framework: the saved queries serving it, what they found")
    async def api_audit_report(
        tenant: str = Depends(ctx.auth.read),
        framework: str = Query(..., description=f"one of: {', '.join(FRAMEWORKS)}"),
        since: str = "30d",
        until: str = Query("0s", description="end of the range (default: now)"),
        rows: int = Query(3, ge=0, le=100, description="the newest rows shown per query"),
    ) -> Response:
        chosen = framework_named(framework)
        start, end = api_window(since, until)
        found = await run_in_threadpool(report, ctx.runner, chosen, tenant, start, end, rows)
        return json_response(found)

    return router
