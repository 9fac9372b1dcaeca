"""The dashboards' panels over the query API: the same definitions Grafana renders (``dashboards/panels.py``),
run here through ``dashboards/sql.py`` for the web console.

The ``tenant`` variable is always the caller's (from the token), never a request parameter; other variables
come from ``var-NAME`` parameters, bound as query parameters like every other value. A dashboard without a
tenant variable (pipeline health) reads every tenant's rows, so with tokens configured it is not served.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from fnscope.dashboards.model import Dashboard, Kind, Panel, Row, Variable
from fnscope.dashboards.panels import DASHBOARDS
from fnscope.dashboards.sql import to_clickhouse, variables_in
from fnscope.query.context import QueryContext, api_time
from fnscope.timeparse import iso_utc

BY_UID = {dashboard.uid: dashboard for dashboard in DASHBOARDS}
VAR_PREFIX = "var-"
# Round intervals; the first giving at most MAX_POINTS over the range is used (200-600 points for 15m..90d).
_INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_POINTS = 600


def interval_for(span: timedelta) -> int:
    """The smallest round interval that draws the range in at most ``MAX_POINTS`` points."""
    for seconds in _INTERVALS:
        if span.total_seconds() / seconds <= MAX_POINTS:
            return seconds
    return _INTERVALS[-1]


def tenant_scoped(dashboard: Dashboard) -> bool:
    return any(variable.name == "tenant" for variable in dashboard.variables)


def describe(dashboard: Dashboard) -> dict[str, Any]:
    """A dashboard as the console lays it out: rows as headings, panels with their index among the panels."""
    items: list[dict[str, Any]] = []
    index = 0
    for item in dashboard.items:
        if isinstance(item, Row):
            items.append({"type": "row", "title": item.title})
            continue
        items.append(
            {
                "type": "panel",
                "index": index,
                "title": item.title,
                "kind": item.kind.value,
                "columns": list(item.columns),
                "unit": item.unit,
                "description": item.description,
                "width": item.width,
                "height": item.height,
                "series_by": item.series_by,
            }
        )
        index += 1
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "time_from": dashboard.time_from.removeprefix("now-"),
        "tenant_scoped": tenant_scoped(dashboard),
        "variables": [
            {"name": v.name, "label": v.label, "include_all": v.include_all}
            for v in dashboard.variables
            if v.name != "tenant"  # always the caller's: nothing to choose
        ],
        "items": items,
    }


def _dashboard(ctx: QueryContext, uid: str) -> Dashboard:
    dashboard = BY_UID.get(uid)
    if dashboard is None:
        raise HTTPException(404, f"no dashboard {uid!r}; GET /api/dashboards lists them")
    if ctx.auth.tokens_required and not tenant_scoped(dashboard):
        raise HTTPException(403, f"{dashboard.title} reads every tenant's rows: not served when tokens are configured")
    return dashboard


def _range(dashboard: Dashboard, since: str | None, until: str | None) -> tuple[datetime, datetime]:
    start = api_time(since or dashboard.time_from.removeprefix("now-"), "since")
    end = api_time(until, "until") or datetime.now(UTC)
    assert start is not None
    if start >= end:
        raise HTTPException(400, "since must be before until")
    return start, end


def _values(dashboard: Dashboard, request: Request, tenant: str) -> dict[str, str]:
    """Variable values: ``var-NAME`` parameters, "All" ("") for a missing include_all one, the caller's tenant."""
    known = {variable.name: variable for variable in dashboard.variables}
    values: dict[str, str] = {}
    for key, value in request.query_params.items():
        if not key.startswith(VAR_PREFIX):
            continue
        name = key.removeprefix(VAR_PREFIX)
        if name not in known:
            choosable = sorted(set(known) - {"tenant"})
            raise HTTPException(400, f"{key}: {dashboard.uid} has no variable {name!r} (it has {choosable})")
        values[name] = value
    for variable in dashboard.variables:
        if variable.include_all:
            values.setdefault(variable.name, "")
    if "tenant" in known:
        values["tenant"] = tenant  # whatever the query string said
    return values


def _bind(
    sql: str, start: datetime, end: datetime, interval_s: int, values: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    try:
        return to_clickhouse(sql, start, end, interval_s, values)
    except ValueError as exc:  # a variable the panel needs and the request did not give
        raise HTTPException(400, f"{exc}: pass it as var-NAME") from exc


def _time_column(panel: Panel) -> list[str]:
    return ["time"] if panel.kind in (Kind.TIMESERIES, Kind.LOGS) else []


def run_panel(
    ctx: QueryContext, panel: Panel, start: datetime, end: datetime, values: dict[str, str]
) -> dict[str, Any]:
    interval_s = interval_for(end - start)
    sql, params = _bind(panel.sql, start, end, interval_s, values)
    rows = ctx.runner.rows(sql, params)
    columns = list(rows[0]) if rows else [*_time_column(panel), *panel.columns]
    return {
        "title": panel.title,
        "kind": panel.kind.value,
        "unit": panel.unit,
        "interval_s": interval_s,
        "since": iso_utc(start),
        "until": iso_utc(end),
        "columns": columns,
        "rows": [[row.get(column) for column in columns] for row in rows],
    }


def variable_values(
    ctx: QueryContext, variable: Variable, start: datetime, end: datetime, values: dict[str, str], tenant: str
) -> list[str]:
    if variable.name == "tenant":
        return [tenant]  # its SQL lists every tenant: never run it for a caller
    sql, params = _bind(variable.sql, start, end, interval_for(end - start), values)
    rows = ctx.runner.rows(sql, params)
    return [str(next(iter(row.values()))) for row in rows]


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["dashboards"])

    @router.get("/dashboards", summary="Every dashboard's layout: variables, rows and panels in order")
    async def api_dashboards(_tenant: str = Depends(ctx.auth.read)) -> dict[str, Any]:
        shown = [d for d in DASHBOARDS if tenant_scoped(d) or not ctx.auth.tokens_required]
        return {"dashboards": [describe(d) for d in shown]}

    @router.get("/dashboards/{uid}/variables/{name}", summary="A dashboard variable's values")
    async def api_variable(
        uid: str,
        name: str,
        request: Request,
        tenant: str = Depends(ctx.auth.read),
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        dashboard = _dashboard(ctx, uid)
        variable = next((v for v in dashboard.variables if v.name == name), None)
        if variable is None:
            raise HTTPException(404, f"{uid} has no variable {name!r}")
        start, end = _range(dashboard, since, until)
        values = _values(dashboard, request, tenant)
        found = await run_in_threadpool(variable_values, ctx, variable, start, end, values, tenant)
        return {"name": name, "include_all": variable.include_all, "values": found}

    @router.get("/dashboards/{uid}/panels/{index}", summary="One panel's rows over a time range (var-NAME variables)")
    async def api_panel(
        uid: str,
        index: int,
        request: Request,
        tenant: str = Depends(ctx.auth.read),
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        dashboard = _dashboard(ctx, uid)
        panels = dashboard.panels
        if not 0 <= index < len(panels):
            raise HTTPException(404, f"{uid} has panels 0..{len(panels) - 1}, not {index}")
        start, end = _range(dashboard, since, until)
        values = _values(dashboard, request, tenant)
        panel = panels[index]
        if missing := sorted(variables_in(panel.sql) - set(values)):
            raise HTTPException(400, f"{panel.title}: no value for {', '.join(VAR_PREFIX + m for m in missing)}")
        return await run_in_threadpool(run_panel, ctx, panel, start, end, values)

    return router
