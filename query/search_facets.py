"""Facets of a search: over the lines it matches, the most common functions, levels and structured-field values.

Each value comes with its count and the filter that narrows the search to it (``function:checkout``,
``level:error``, ``user.id:42``), spelt by the query language itself so the console only appends it. Counts are
over the whole range, as the histogram counts (a line re-delivered and not yet merged away counts twice there too);
every facet is cut to its top values, and each query runs under the search's own time bound.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from fnscope.query.context import QueryContext, json_response
from fnscope.query.runner import QueryRunner
from fnscope.query.search import SearchFilter, SearchRequest, guarded, run
from fnscope.query.search_language import COLUMNS, equals_filter

MAX_TOP = 50
# Field keys that name a column or the message to the language (``level:``, ``message:``): a filter on them would
# not read the field, and their values are shown by the other facets or the line itself.
NOT_FIELDS = sorted(COLUMNS | {"message"})


def _functions(runner: QueryRunner, req: SearchRequest, top: int) -> list[dict[str, Any]]:
    where = req.where()
    sql = (
        f"SELECT function AS value, count() AS count FROM function_logs WHERE {where.sql()} "
        "GROUP BY value ORDER BY count DESC, value LIMIT {top:UInt32}"
    )
    rows = run(runner, sql, {**where.params, "top": top}, req.max_seconds)
    return [{**row, "filter": equals_filter("function", row["value"])} for row in rows]


def _levels(runner: QueryRunner, req: SearchRequest) -> list[dict[str, Any]]:
    """Every level (there are six, and lines without one): their counts add up to the matching lines."""
    where = req.where()
    sql = (
        f"SELECT level AS value, count() AS count FROM function_logs WHERE {where.sql()} "
        "GROUP BY value ORDER BY count DESC, value"
    )
    rows = run(runner, sql, where.params, req.max_seconds)
    return [{**row, "filter": equals_filter("level", row["value"].lower()) if row["value"] else None} for row in rows]


def _fields(runner: QueryRunner, req: SearchRequest, keys: int, top: int) -> list[dict[str, Any]]:
    """The ``keys`` fields most matching lines carry, each with its ``top`` commonest values.

    Two passes: the keys first (few groups), then the values of those keys only, so a field unique to every line
    (an order id) is counted only when it is among the keys shown. One pass ranking keys over every (key, value)
    group took four times as long on two million lines.
    """
    where = req.where()
    sql = (
        "SELECT key, count() AS lines FROM function_logs ARRAY JOIN mapKeys(fields) AS key "
        f"WHERE {where.sql()} AND key NOT IN {{not_fields:Array(String)}} "
        "GROUP BY key ORDER BY lines DESC, key LIMIT {keys:UInt32}"
    )
    shown = run(runner, sql, {**where.params, "not_fields": NOT_FIELDS, "keys": keys}, req.max_seconds)
    if not shown:
        return []
    sql = (
        "SELECT pair.1 AS key, pair.2 AS value, count() AS count FROM function_logs "
        "ARRAY JOIN arrayFilter(p -> has({keys:Array(String)}, p.1), arrayZip(mapKeys(fields), mapValues(fields))) "
        f"AS pair WHERE {where.sql()} GROUP BY key, value ORDER BY count DESC, value LIMIT {{top:UInt32}} BY key"
    )
    params = {**where.params, "keys": [row["key"] for row in shown], "top": top}
    values: dict[str, list[dict[str, Any]]] = {row["key"]: [] for row in shown}
    for row in run(runner, sql, params, req.max_seconds):
        values[row["key"]].append(
            {"value": row["value"], "count": row["count"], "filter": equals_filter(row["key"], row["value"])}
        )
    return [{"key": row["key"], "lines": row["lines"], "values": values[row["key"]]} for row in shown]


def facets(runner: QueryRunner, req: SearchRequest, top: int = 10, keys: int = 10) -> dict[str, Any]:
    levels = _levels(runner, req)
    return {
        "total": sum(row["count"] for row in levels),
        "functions": _functions(runner, req, top),
        "levels": levels,
        "fields": _fields(runner, req, keys, top),
    }


class FacetValue(BaseModel):
    value: str
    count: int
    filter: str | None  # the query-language filter for this value; None when the language can't say it


class FieldFacet(BaseModel):
    key: str
    lines: int  # matching lines carrying the field
    values: list[FacetValue]


class Facets(BaseModel):
    """The documented shape of the facets (the API returns it without re-validating)."""

    total: int
    functions: list[FacetValue]
    levels: list[FacetValue]
    fields: list[FieldFacet]


def facet_routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["search"])

    @router.get(
        "/search/facets",
        summary="The commonest functions, levels and structured-field values among the matching lines",
        response_model=Facets,
    )
    async def api_facets(
        tenant: str = Depends(ctx.auth.read),
        match: SearchFilter = Depends(),
        since: str = "15m",
        until: str | None = None,
        top: int = Query(10, ge=1, le=MAX_TOP, description="values per facet"),
        keys: int = Query(10, ge=1, le=MAX_TOP, description="structured fields shown"),
    ) -> Response:
        req = match.request(tenant, since, until, 1)
        return json_response(await guarded(facets, ctx.runner, req, top, keys))

    return router
