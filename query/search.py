"""Log search: the query language over `function_logs`, newest first, cursor pages, marked terms, a histogram.

Words use the text index over ``lower(message)`` (see migration v004), the sort key (tenant, function, time)
serves function and time filters. Reads skip FINAL (it costs a merge of every matching range) and drop the rare
not-yet-merged duplicate by ``event_id`` instead, which sits next to its twin in (time, event_id) order.
Every user value is a bound parameter; ranges, rows and run time are capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from fnscope.query.context import QueryContext, api_time, json_response
from fnscope.query.runner import QueryRunner, Where
from fnscope.query.search_language import Compiled, QuerySyntaxError, compile_query, level_name
from fnscope.query.search_results import BadCursor, decode_ref, highlighter, row_out

# Word, phrase and field searches are index-backed and may span any range (backfills are old), bounded by
# run time; a regular expression reads every line of its range, so its range is capped as well.
MAX_REGEX_RANGE = timedelta(days=7)
MAX_LIMIT = 1000
MAX_SECONDS = 10  # ClickHouse max_execution_time for a search
MAX_REGEX_SECONDS = 5  # a regex reads every line of the range: a tighter bound
COLUMNS = (
    "time, toUnixTimestamp64Milli(time) AS _ms, function, version, request_id, level, log_type, message, fields, "
    "event_id"
)
_INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)


class SearchError(Exception):
    """A request the caller can fix (400), or a search that ran out of time (504)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    cursor: str | None = None
    compiled: Compiled = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.compiled = compile_query(self.query)
        except QuerySyntaxError as exc:
            raise SearchError(f"query: {exc}") from exc
        now = datetime.now(UTC)
        self.until = self.until or now
        self.since = self.since or self.until - timedelta(minutes=15)
        if self.since >= self.until:
            raise SearchError("since must be before until")
        if self.compiled.has_regex and self.until - self.since > MAX_REGEX_RANGE:
            raise SearchError(
                f"a regular expression searches at most {MAX_REGEX_RANGE.days} days: narrow since/until, "
                "or search words instead"
            )
        self.limit = max(1, min(self.limit, MAX_LIMIT))

    def where(self, time_range: bool = True) -> Where:
        """Tenant, time range, the flag filters and the query; every value bound."""
        where = Where(self.tenant)
        if time_range:
            where.add(
                "time >= {since:DateTime64(3)} AND time <= {until:DateTime64(3)}", since=self.since, until=self.until
            )
        if self.function:
            where.add("function = {function:String}", function=self.function)
        if self.level:
            try:
                where.add("level = {level:String}", level=level_name(self.level))
            except QuerySyntaxError as exc:
                raise SearchError(str(exc)) from exc
        if self.request_id:
            where.add("request_id = {request_id:String}", request_id=self.request_id)
        if self.compiled.sql != "1":
            where.add(self.compiled.sql, **self.compiled.params)
        return where

    @property
    def max_seconds(self) -> int:
        return MAX_REGEX_SECONDS if self.compiled.has_regex else MAX_SECONDS


def bounded(sql: str, seconds: int) -> str:
    """The statement as it runs: with its time bound (a constant of ours, not a user value)."""
    return f"{sql} SETTINGS max_execution_time = {int(seconds)}"


def run(runner: QueryRunner, sql: str, params: dict[str, Any], seconds: int) -> list[dict[str, Any]]:
    """Run with a time bound; ClickHouse errors a user caused become theirs."""
    return execute(runner, bounded(sql, seconds), params, seconds)


def execute(runner: QueryRunner, statement: str, params: dict[str, Any], seconds: int) -> list[dict[str, Any]]:
    """Run a statement already ``bounded`` by ``seconds``."""
    try:
        return runner.rows(statement, params)
    except DatabaseError as exc:
        text = str(exc)
        if "TIMEOUT_EXCEEDED" in text or "Code: 159" in text:
            raise SearchError(
                f"the search took longer than {seconds}s: narrow the time range or add a function: filter", 504
            ) from exc
        if "CANNOT_COMPILE_REGEXP" in text or "Code: 427" in text:
            raise SearchError("query: the regular expression is not valid RE2 syntax") from exc
        raise


def search_sql(req: SearchRequest) -> tuple[str, dict[str, Any]]:
    """The page query: newest first, after the cursor, one row more than asked to know whether more follow."""
    where = req.where()
    if req.cursor:
        try:
            cursor_ms, cursor_id = decode_ref(req.cursor)
        except BadCursor as exc:
            raise SearchError(f"cursor: {exc}") from exc
        where.add(
            "time <= fromUnixTimestamp64Milli({c_ms:Int64}, 'UTC') AND "
            "(time < fromUnixTimestamp64Milli({c_ms:Int64}, 'UTC') OR event_id < {c_id:String})",
            c_ms=cursor_ms,
            c_id=cursor_id,
        )
    sql = (
        f"SELECT {COLUMNS} FROM function_logs WHERE {where.sql()} "
        "ORDER BY time DESC, event_id DESC LIMIT {limit:UInt32}"
    )
    return sql, {**where.params, "limit": req.limit + 1}


def page_query(req: SearchRequest) -> tuple[str, dict[str, Any]]:
    """Exactly the statement and parameters ``search`` sends to ClickHouse (benchmarks time it bare)."""
    sql, params = search_sql(req)
    return bounded(sql, req.max_seconds), params


def search(runner: QueryRunner, req: SearchRequest) -> dict[str, Any]:
    statement, params = page_query(req)
    raw = execute(runner, statement, params, req.max_seconds)
    rows, seen = [], set()
    for row in raw[: req.limit]:
        if row["event_id"] not in seen:  # a duplicate not yet merged away
            seen.add(row["event_id"])
            rows.append(row)
    pattern = highlighter(req.compiled.highlight)
    results = [row_out(row, pattern) for row in rows]
    return {
        "results": results,
        "next_cursor": results[-1]["ref"] if len(raw) > req.limit and results else None,
        "terms": [t.text if hasattr(t, "text") else t.pattern for t in req.compiled.highlight],
    }


def bucket_seconds(span: timedelta, buckets: int = 60) -> int:
    """The smallest round interval giving at most ``buckets`` bars over ``span``."""
    for seconds in _INTERVALS:
        if span.total_seconds() / seconds <= buckets * 1.01:  # "1h" is a few ms over an hour by the time it runs
            return seconds
    return _INTERVALS[-1]


def histogram(runner: QueryRunner, req: SearchRequest, buckets: int = 60) -> dict[str, Any]:
    """Matching lines per interval over the whole range (zeros filled), for the bar chart above the results."""
    assert req.since is not None and req.until is not None
    seconds = bucket_seconds(req.until - req.since, buckets)
    where = req.where()
    sql = (
        "SELECT toStartOfInterval(toDateTime(time, 'UTC'), toIntervalSecond({step:UInt32})) AS bucket, "
        f"count() AS count FROM function_logs WHERE {where.sql()} GROUP BY bucket ORDER BY bucket WITH FILL "
        "FROM toStartOfInterval(toDateTime({since:DateTime64(3)}, 'UTC'), toIntervalSecond({step:UInt32})) "
        "TO toDateTime({until:DateTime64(3)}, 'UTC') + 1 STEP toIntervalSecond({step:UInt32})"
    )
    rows = run(runner, sql, {**where.params, "step": seconds}, req.max_seconds)
    return {
        "interval_seconds": seconds,
        "buckets": rows,
        "total": sum(r["count"] for r in rows),
    }


Q_DOC = 'query: words, "phrases", AND/OR/NOT, ( ), field:value, field:>N, /regex/ (see `fnscope search --help`)'


class SearchFilter:
    """What lines to match, as every search route takes it from the query string (``Depends(SearchFilter)``)."""

    def __init__(
        self,
        q: str = Query("", description=Q_DOC),
        function: str = "",
        level: str = "",
        request_id: str = "",
    ) -> None:
        self.q, self.function, self.level, self.request_id = q, function, level, request_id

    def request(
        self, tenant: str, since: str, until: str | None, limit: int, cursor: str | None = None
    ) -> SearchRequest:
        """The search over [since, until], or a 400 (or the language's own status) saying what is wrong."""
        try:
            return SearchRequest(
                tenant,
                self.q,
                api_time(since, "since"),
                api_time(until, "until"),
                self.function,
                self.level,
                self.request_id,
                limit,
                cursor,
            )
        except SearchError as exc:
            raise HTTPException(exc.status, str(exc)) from exc


class Histogram(BaseModel):
    """The documented shape of a histogram (the API returns it without re-validating)."""

    interval_seconds: int
    buckets: list[dict[str, Any]]
    total: int


class SearchPage(BaseModel):
    """The documented shape of a search page (the API returns it without re-validating)."""

    results: list[dict[str, Any]]
    next_cursor: str | None
    terms: list[str]
    histogram: Histogram | None = None


async def guarded(fn: Any, *args: Any) -> Any:
    """Run a search function off the event loop; a ``SearchError`` becomes its HTTP status."""
    try:
        return await run_in_threadpool(fn, *args)
    except SearchError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["search"])

    @router.get("/search", summary="Find function log lines, newest first", response_model=SearchPage)
    async def api_search(
        tenant: str = Depends(ctx.auth.read),
        match: SearchFilter = Depends(),
        since: str = "15m",
        until: str | None = None,
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        with_histogram: bool = Query(False, alias="histogram", description="also count matches over time"),
    ) -> Response:
        req = match.request(tenant, since, until, limit, cursor)
        out = await guarded(search, ctx.runner, req)
        if with_histogram:
            out["histogram"] = await guarded(histogram, ctx.runner, req)
        return json_response(out)

    @router.get("/search/histogram", summary="Matching log lines per time interval", response_model=Histogram)
    async def api_histogram(
        tenant: str = Depends(ctx.auth.read),
        match: SearchFilter = Depends(),
        since: str = "15m",
        until: str | None = None,
        buckets: int = Query(60, ge=1, le=500),
    ) -> Response:
        req = match.request(tenant, since, until, 1)
        return json_response(await guarded(histogram, ctx.runner, req, buckets))

    return router
