"""Per-function health: invocations, errors, timeouts, throttles, cold starts, latency, concurrency, cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from query.context import QueryContext, api_time
from query.runner import QueryRunner, Where

# Public x86 Lambda prices (USD): per GB-second and per request.
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.0000002


@dataclass
class StatsRequest:
    tenant: str
    since: datetime
    until: datetime | None = None
    function: str = ""
    account_limit: int = 1000


# The same fact can arrive by two paths with slightly different timestamps (so in two sort-key positions):
# read each event id once.
_FACTS = "(SELECT * FROM invocations FINAL WHERE {where} ORDER BY ingested_at LIMIT 1 BY event_id)"


def _where(req: StatsRequest) -> Where:
    where = Where(req.tenant)
    where.add("time >= {since:DateTime64(3)}", since=req.since)
    if req.until:
        where.add("time <= {until:DateTime64(3)}", until=req.until)
    if req.function:
        where.add("function = {function:String}", function=req.function)
    return where


_INVOCATIONS = """
SELECT function,
    countIf(kind = 'report') AS invocations,
    uniqExactIf(request_id, status IN ('error', 'failure') OR kind = 'fault') AS errors,
    uniqExactIf(request_id, status = 'timeout' OR kind = 'timeout') AS timeouts,
    uniqExactIf(request_id, status = 'oom' OR kind = 'oom') AS out_of_memory,
    countIf(kind = 'report' AND cold_start) AS cold_starts,
    quantilesIf(0.5, 0.9, 0.99)(duration_ms, kind = 'report') AS duration_quantiles,
    maxIf(duration_ms, kind = 'report') AS max_duration_ms,
    avgIf(init_duration_ms, kind = 'report' AND cold_start) AS avg_init_duration_ms,
    sumIf(billed_duration_ms / 1000 * memory_size_mb / 1024, kind = 'report') AS gb_seconds
FROM {facts} GROUP BY function"""

# Exact peak: +1 at each start, -1 at each end, running sum in time order (ends before starts at a tie).
_PEAK = """
SELECT function, max(running) AS peak_concurrency FROM (
    SELECT function, sum(delta) OVER (PARTITION BY function ORDER BY t, delta ROWS UNBOUNDED PRECEDING) AS running
    FROM (
        SELECT function, coalesce(start_time, time - toIntervalMillisecond(toInt64(coalesce(duration_ms, 0)))) AS t,
               1 AS delta FROM {facts} WHERE kind = 'report'
        UNION ALL
        SELECT function, time AS t, -1 AS delta FROM {facts} WHERE kind = 'report'
    )
) GROUP BY function"""

_API_THROTTLES = """
SELECT function, countIf(throttled) AS throttles FROM api_access FINAL WHERE {where} AND function != ''
GROUP BY function"""

_AUDIT_THROTTLES = """
SELECT function, count() AS throttles FROM audit_events FINAL
WHERE {where} AND error_code = 'TooManyRequestsException' AND function != '' GROUP BY function"""

_RESERVED = """
SELECT function,
    argMax(if(action LIKE 'PutFunctionConcurrency%',
              JSONExtractInt(raw, 'requestParameters', 'reservedConcurrentExecutions'), -1), time) AS reserved
FROM audit_events FINAL
WHERE tenant = {tenant:String} AND error_code = '' AND function != ''
  AND (action LIKE 'PutFunctionConcurrency%' OR action LIKE 'DeleteFunctionConcurrency%')
GROUP BY function"""


def stats(runner: QueryRunner, req: StatsRequest) -> list[dict[str, Any]]:
    where = _where(req)
    sql_where, params = where.sql(), where.params
    facts = _FACTS.format(where=sql_where)
    rows = {r["function"]: r for r in runner.rows(_INVOCATIONS.format(facts=facts), params)}
    peaks = {r["function"]: r["peak_concurrency"] for r in runner.rows(_PEAK.format(facts=facts), params)}
    throttles_by_source: dict[str, dict[str, int]] = {}
    for source, sql in (("api", _API_THROTTLES), ("cloudtrail", _AUDIT_THROTTLES)):
        for r in runner.rows(sql.format(where=sql_where), params):
            throttles_by_source.setdefault(r["function"], {})[source] = r["throttles"]
    reserved = {r["function"]: r["reserved"] for r in runner.rows(_RESERVED, {"tenant": req.tenant})}

    out = []
    for function in sorted(set(rows) | set(throttles_by_source)):
        if req.function and function != req.function:
            continue
        r = rows.get(function, {})
        q = r.get("duration_quantiles") or [None, None, None]
        peak = peaks.get(function, 0) or 0
        limit = reserved.get(function, -1)
        limit = limit if limit is not None and limit >= 0 else req.account_limit
        gb_s = r.get("gb_seconds") or 0.0
        invocations = r.get("invocations", 0)
        by_source = throttles_by_source.get(function, {})
        out.append(
            {
                "function": function,
                "invocations": invocations,
                "errors": r.get("errors", 0),
                "timeouts": r.get("timeouts", 0),
                "out_of_memory": r.get("out_of_memory", 0),
                # Each source sees the throttles on its own path; the largest is a lower bound on distinct throttles.
                "throttles": max(by_source.values(), default=0),
                "throttles_by_source": by_source,
                "cold_starts": r.get("cold_starts", 0),
                "p50_ms": _num(q[0]),
                "p90_ms": _num(q[1]),
                "p99_ms": _num(q[2]),
                "max_ms": _num(r.get("max_duration_ms")),
                "avg_init_ms": _num(r.get("avg_init_duration_ms")),
                "peak_concurrency": peak,
                "concurrency_limit": limit,
                "limit_source": "reserved" if function in reserved and reserved[function] >= 0 else "account",
                "headroom": limit - peak,
                "gb_seconds": round(gb_s, 3),
                "estimated_cost_usd": round(gb_s * PRICE_PER_GB_SECOND + invocations * PRICE_PER_REQUEST, 6),
            }
        )
    return out


def _num(value: Any) -> float | None:
    if value is None or value != value:
        return None
    return round(float(value), 2)


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["stats"])

    @router.get("/stats", summary="Per-function health")
    async def api_stats(
        tenant: str = Depends(ctx.auth), function: str = "", since: str = "1h", until: str | None = None
    ) -> dict[str, Any]:
        start = api_time(since, "since") or api_time("1h", "since")
        assert start is not None
        req = StatsRequest(tenant, start, api_time(until, "until"), function, ctx.settings.account_concurrency_limit)
        return {"functions": await run_in_threadpool(stats, ctx.runner, req)}

    return router
