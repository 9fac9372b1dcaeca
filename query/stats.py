"""Per-function health from the processor's health tables (see ``processors/health_aggregates.py``).

Nothing here re-reads raw invocations: latency merges per-minute t-digest states, counts sum per-minute
rows, concurrency peaks come from the exact per-second sweep rolled up to minutes and hours, and a range is
covered by whole hours in the middle, whole minutes beside them and single seconds at the edges, so a peak
is exact to the second for any range while reading a few hundred rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.query.context import QueryContext, api_time
from fnscope.query.runner import QueryRunner
from fnscope.store import LEVELS
from fnscope.timeparse import iso_utc, parse_duration

MAX_POINTS = 20_000  # a series longer than this is a mistake (1s over a day is 86,400): ask for a larger step


@dataclass
class StatsRequest:
    tenant: str
    since: datetime
    until: datetime | None = None
    function: str = ""
    account_limit: int = 1000
    price_per_gb_second: float = 0.0000166667
    price_per_request: float = 0.0000002
    account: str = ""


# --- time ranges -----------------------------------------------------------------------------------------


def _epoch(value: datetime) -> int:
    return int(value.timestamp() // 1)


def _at(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _bounds(req: StatsRequest) -> tuple[int, int]:
    """[first second, end second) of the request: partial seconds at the edges count whole."""
    until = req.until or datetime.now(UTC)
    hi = -(-int(until.timestamp() * 1000) // 1000)  # ceil
    return _epoch(req.since), max(hi, _epoch(req.since) + 1)


def cover(lo: int, hi: int, resolutions: tuple[int, ...] = (3600, 60, 1)) -> list[tuple[int, int, int]]:
    """(resolution, first bucket, end) pieces whose buckets exactly tile [lo, hi): hours, then minutes, then seconds.

    ``lo`` and ``hi`` must be multiples of the finest resolution."""
    pieces: list[tuple[int, int, int]] = []

    def tile(a: int, b: int, resolutions: tuple[int, ...]) -> None:
        if a >= b:
            return
        res, finer = resolutions[0], resolutions[1:]
        if not finer:
            pieces.append((res, a, b))
            return
        first, last = -(-a // res) * res, b // res * res
        if first >= last:
            tile(a, b, finer)
            return
        pieces.append((res, first, last))
        tile(a, first, finer)
        tile(last, b, finer)

    tile(lo, hi, resolutions)
    return pieces


def _cover_sql(lo: int, hi: int) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for i, (res, a, b) in enumerate(cover(lo, hi)):
        clauses.append(f"(resolution = {res} AND bucket >= {{c{i}_lo:DateTime}} AND bucket < {{c{i}_hi:DateTime}})")
        params[f"c{i}_lo"], params[f"c{i}_hi"] = _at(a), _at(b)
    return "(" + " OR ".join(clauses) + ")", params


# --- queries ---------------------------------------------------------------------------------------------

_MINUTE_METRICS = f"""
    sum(invocations) AS invocations, sum(errors) AS errors, sum(timeouts) AS timeouts,
    sum(out_of_memory) AS out_of_memory, sum(cold_starts) AS cold_starts,
    quantilesTDigestMerge({LEVELS})(duration) AS duration_q, max(duration_max) AS max_ms,
    sum(duration_sum) AS duration_sum,
    quantilesTDigestMerge({LEVELS})(init_duration) AS init_q, sum(init_sum) AS init_sum,
    sum(init_count) AS init_count, sum(gb_seconds) AS gb_seconds,
    sum(memory_ratio_sum) AS memory_ratio_sum, max(memory_ratio_max) AS memory_ratio_max,
    sum(memory_count) AS memory_count"""

_FILTERS = """tenant = {tenant:String} AND ({function:String} = '' OR function = {function:String})
    AND ({account:String} = '' OR account = {account:String})"""

_BY_FUNCTION = """
SELECT function, any(account) AS fn_account, {metrics}
FROM {source} GROUP BY function HAVING invocations > 0"""

_BY_VERSION = """
SELECT function, version, {metrics}
FROM {source} GROUP BY function, version HAVING invocations > 0"""


def _aggregates_source(lo: int, hi: int) -> tuple[str, dict[str, Any]]:
    """Whole hours from ``function_hours``, the minutes beside them from ``function_minutes``."""
    parts, params = [], {}
    for i, (res, a, b) in enumerate(cover(lo // 60 * 60, -(-hi // 60) * 60, (3600, 60))):
        table = "function_hours" if res == 3600 else "function_minutes"
        parts.append(
            f"SELECT * FROM {table} FINAL WHERE {_FILTERS} "
            f"AND bucket >= {{a{i}_lo:DateTime}} AND bucket < {{a{i}_hi:DateTime}}"
        )
        params[f"a{i}_lo"], params[f"a{i}_hi"] = _at(a), _at(b)
    if not parts:
        parts.append(f"SELECT * FROM function_minutes WHERE {_FILTERS} AND 0")
    return "(" + " UNION ALL ".join(parts) + ")", params


_THROTTLES = """
SELECT function, source, reason, sum(throttles) AS throttles
FROM throttle_minutes FINAL
WHERE tenant = {tenant:String} AND bucket >= {m_lo:DateTime} AND bucket < {m_hi:DateTime}
  AND ({function:String} = '' OR function = {function:String})
GROUP BY function, source, reason"""

_PEAKS = """
SELECT scope, key, max(peak) AS peak FROM concurrency_peaks FINAL
WHERE tenant = {{tenant:String}} AND {cover}
  AND (scope = 'account' OR (scope = 'function' AND ({{function:String}} = '' OR key = {{function:String}})))
GROUP BY scope, key"""

_LIMITS = """
SELECT function, argMax(reserved, changed_at) AS reserved, max(changed_at) AS last_change,
       argMax(event_id, changed_at) AS event_id, argMax(account, changed_at) AS account
FROM concurrency_limits FINAL WHERE tenant = {tenant:String} GROUP BY function"""

# Who set a reserved concurrency of 0, and from where: the audit event the limit came from.
_DISABLED_BY = """
SELECT event_id, any(principal_arn) AS principal_arn, any(principal_name) AS principal_name,
       any(principal_type) AS principal_type, any(source_ip) AS source_ip, any(user_agent) AS user_agent
FROM audit_events
WHERE tenant = {tenant:String} AND function IN {functions:Array(String)} AND event_id IN {ids:Array(String)}
  AND action LIKE 'PutFunctionConcurrency%'
GROUP BY event_id"""

_ALIASES = """
SELECT function, version, arraySort(groupUniqArray(alias)) AS aliases
FROM function_aliases FINAL WHERE tenant = {tenant:String} GROUP BY function, version"""


def _minute_params(req: StatsRequest, lo: int, hi: int) -> dict[str, Any]:
    # Minute aggregates resolve a range to the minutes it touches.
    return {
        "tenant": req.tenant,
        "function": req.function,
        "account": req.account,
        "m_lo": _at(lo // 60 * 60),
        "m_hi": _at(-(-hi // 60) * 60),
    }


def _num(value: Any, digits: int = 2) -> float | None:
    if value is None or value != value:
        return None
    return round(float(value), digits)


def _metrics(r: dict[str, Any], req: StatsRequest) -> dict[str, Any]:
    q = r.get("duration_q") or [None] * 4
    iq = r.get("init_q") or [None] * 4
    invocations = r.get("invocations", 0) or 0
    gb_s = r.get("gb_seconds") or 0.0
    mem_n = r.get("memory_count") or 0
    init_n = r.get("init_count") or 0
    return {
        "invocations": invocations,
        "errors": r.get("errors", 0),
        "error_rate": round(r.get("errors", 0) / invocations, 4) if invocations else None,
        "timeouts": r.get("timeouts", 0),
        "out_of_memory": r.get("out_of_memory", 0),
        "cold_starts": r.get("cold_starts", 0),
        "p50_ms": _num(q[0]),
        "p90_ms": _num(q[1]),
        "p95_ms": _num(q[2]),
        "p99_ms": _num(q[3]),
        "max_ms": _num(r.get("max_ms")) if invocations else None,
        "avg_ms": _num((r.get("duration_sum") or 0) / invocations) if invocations else None,
        "init_p50_ms": _num(iq[0]) if init_n else None,
        "init_p99_ms": _num(iq[3]) if init_n else None,
        "avg_init_ms": _num((r.get("init_sum") or 0) / init_n) if init_n else None,
        "memory_utilisation_avg": _num((r.get("memory_ratio_sum") or 0) / mem_n, 4) if mem_n else None,
        "memory_utilisation_max": _num(r.get("memory_ratio_max"), 4) if mem_n else None,
        "gb_seconds": round(gb_s, 3),
        "estimated_cost_usd": round(gb_s * req.price_per_gb_second + invocations * req.price_per_request, 6),
    }


@dataclass
class Limits:
    reserved: dict[str, int]
    account_limit: int
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)  # function -> who, when, from where

    @property
    def unreserved_pool(self) -> int:
        return max(0, self.account_limit - sum(self.reserved.values()))

    def of(self, function: str) -> tuple[int, str]:
        if function in self.reserved:
            return self.reserved[function], "reserved"
        return self.unreserved_pool, "account"


def _limits(runner: QueryRunner, req: StatsRequest) -> Limits:
    rows = runner.rows(_LIMITS, {"tenant": req.tenant})
    limits = Limits({r["function"]: r["reserved"] for r in rows if r["reserved"] >= 0}, req.account_limit)
    zero = {r["event_id"]: r for r in rows if r["reserved"] == 0}
    who = {}
    if zero:
        params = {"tenant": req.tenant, "ids": sorted(zero), "functions": sorted(r["function"] for r in zero.values())}
        who = {r["event_id"]: r for r in runner.rows(_DISABLED_BY, params)}
    for event_id, r in zero.items():
        by = who.get(event_id, {})
        limits.disabled[r["function"]] = {
            "at": _iso(r["last_change"]),
            "by": by.get("principal_arn") or by.get("principal_name") or by.get("principal_type") or "",
            "source_ip": by.get("source_ip", ""),
            "user_agent": by.get("user_agent", ""),
            "event_id": event_id,
            "account": r["account"],
        }
    return limits


def stats(runner: QueryRunner, req: StatsRequest, by_version: bool = False) -> dict[str, Any]:
    """Per function (and per account): counts, latency, throttles, peak concurrency, limit, headroom, cost."""
    lo, hi = _bounds(req)
    params = _minute_params(req, lo, hi)
    source, source_params = _aggregates_source(lo, hi)
    by_function = _BY_FUNCTION.format(metrics=_MINUTE_METRICS, source=source)
    minutes = {r["function"]: r for r in runner.rows(by_function, {**params, **source_params})}

    throttles: dict[str, dict[str, Any]] = {}
    for r in runner.rows(_THROTTLES, params):
        t = throttles.setdefault(r["function"], {"by_source": {}, "by_reason": {}})
        t["by_source"][r["source"]] = t["by_source"].get(r["source"], 0) + r["throttles"]
        key = f"{r['source']}: {r['reason']}"
        t["by_reason"][key] = t["by_reason"].get(key, 0) + r["throttles"]

    cover_sql, cover_params = _cover_sql(lo, hi)
    peaks: dict[tuple[str, str], int] = {
        (r["scope"], r["key"]): r["peak"]
        for r in runner.rows(
            _PEAKS.format(cover=cover_sql), {"tenant": req.tenant, "function": req.function, **cover_params}
        )
    }
    limits = _limits(runner, req)

    functions = []
    # a disabled function shows even when it ran nothing in the range: being disabled is why
    for function in sorted(set(minutes) | set(throttles) | set(limits.disabled)):
        if req.function and function != req.function:
            continue
        r = minutes.get(function, {})
        disabled = limits.disabled.get(function)
        if req.account and (r.get("fn_account") or (disabled or {}).get("account")) != req.account:
            continue
        peak = peaks.get(("function", function), 0)
        limit, limit_source = limits.of(function)
        by_source = throttles.get(function, {}).get("by_source", {})
        functions.append(
            {
                "function": function,
                "account": r.get("fn_account") or (disabled or {}).get("account", ""),
                "disabled": disabled,
                **_metrics(r, req),
                # Each source sees the throttles on its own path; the largest is a lower bound on distinct throttles.
                "throttles": max(by_source.values(), default=0),
                "throttles_by_source": by_source,
                "throttles_by_reason": throttles.get(function, {}).get("by_reason", {}),
                "peak_concurrency": peak,
                "concurrency_limit": limit,
                "limit_source": limit_source,
                "headroom": limit - peak,
            }
        )
    accounts = [
        {
            "account": key,
            "peak_concurrency": peak,
            "concurrency_limit": req.account_limit,
            "headroom": req.account_limit - peak,
        }
        for (scope, key), peak in sorted(peaks.items())
        if scope == "account" and (not req.account or key == req.account)
    ]
    out: dict[str, Any] = {"since": _iso(_at(lo)), "until": _iso(_at(hi)), "functions": functions, "accounts": accounts}
    if by_version:
        out["versions"] = by_version_stats(runner, req)
    return out


def by_version_stats(runner: QueryRunner, req: StatsRequest) -> list[dict[str, Any]]:
    """Per function version over the request's range (``--versions``; a canary verdict's figures)."""
    lo, hi = _bounds(req)
    source, source_params = _aggregates_source(lo, hi)
    sql = _BY_VERSION.format(metrics=_MINUTE_METRICS, source=source)
    return versions(runner, req, runner.rows(sql, {**_minute_params(req, lo, hi), **source_params}))


def versions(runner: QueryRunner, req: StatsRequest, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per function version, with the aliases seen routing to it: a weighted-alias canary shows side by side."""
    aliases = {(r["function"], r["version"]): r["aliases"] for r in runner.rows(_ALIASES, {"tenant": req.tenant})}
    return [
        {"function": r["function"], "version": r["version"], "aliases": aliases.get((r["function"], r["version"]), [])}
        | _metrics(r, req)
        for r in sorted(rows, key=lambda r: (r["function"], r["version"]))
    ]


TOP_FIELDS = (
    "invocations",
    "errors",
    "error_rate",
    "timeouts",
    "out_of_memory",
    "throttles",
    "cold_starts",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "peak_concurrency",
    "headroom",
    "gb_seconds",
    "estimated_cost_usd",
)


def top(rows: list[dict[str, Any]], n: int, by: str) -> list[dict[str, Any]]:
    """The n functions with the largest ``by`` (smallest, for headroom: the ones closest to their limit)."""
    ascending = by == "headroom"
    present = [r for r in rows if r.get(by) is not None]
    present.sort(key=lambda r: (r[by] if ascending else -r[by], r["function"]))
    return present[:n]


# --- time series -----------------------------------------------------------------------------------------

_SERIES_PEAKS = """
SELECT toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS time, max(peak) AS peak_concurrency
FROM concurrency_peaks FINAL
WHERE tenant = {tenant:String} AND resolution = {resolution:UInt32} AND scope = {scope:String} AND key = {key:String}
  AND bucket >= {lo:DateTime} AND bucket < {hi:DateTime}
GROUP BY time ORDER BY time"""

_SERIES_MINUTES = f"""
SELECT toStartOfInterval(bucket, toIntervalSecond({{step:UInt32}})) AS time, {_MINUTE_METRICS}
FROM {{table:Identifier}} FINAL
WHERE tenant = {{tenant:String}} AND bucket >= {{lo:DateTime}} AND bucket < {{hi:DateTime}}
  AND ({{function:String}} = '' OR function = {{function:String}})
  AND ({{account:String}} = '' OR account = {{account:String}})
GROUP BY time ORDER BY time"""

_SERIES_THROTTLES = """
SELECT toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS time, source, sum(throttles) AS throttles
FROM throttle_minutes FINAL
WHERE tenant = {tenant:String} AND bucket >= {lo:DateTime} AND bucket < {hi:DateTime}
  AND ({function:String} = '' OR function = {function:String})
GROUP BY time, source"""


def series(runner: QueryRunner, req: StatsRequest, step_s: int) -> list[dict[str, Any]]:
    """One point per ``step``: peak concurrency always; counts, latency and throttles for steps of whole minutes.

    Scope: the function if one is named, else the account if named, else the whole tenant.
    """
    lo, hi = _bounds(req)
    lo, hi = lo // step_s * step_s, -(-hi // step_s) * step_s
    if (hi - lo) // step_s > MAX_POINTS:
        raise ValueError(f"{(hi - lo) // step_s} points: use a larger step (at most {MAX_POINTS} points)")
    resolution = next(r for r in (3600, 60, 1) if step_s % r == 0)
    scope, key = (
        ("function", req.function) if req.function else ("account", req.account) if req.account else ("total", "")
    )
    base = {"tenant": req.tenant, "step": step_s, "lo": _at(lo), "hi": _at(hi)}
    points = {_iso(_at(t)): {"time": _iso(_at(t)), "peak_concurrency": 0} for t in range(lo, hi, step_s)}

    def point(time: str) -> dict[str, Any]:
        return points.setdefault(_iso(time), {"time": _iso(time), "peak_concurrency": 0})

    peak_params = {**base, "resolution": resolution, "scope": scope, "key": key}
    for r in runner.rows(_SERIES_PEAKS, peak_params):
        point(r["time"])["peak_concurrency"] = r["peak_concurrency"]
    if step_s % 60 == 0:
        filters = {"function": req.function, "account": req.account}
        for p in points.values():
            p.update(_metrics({}, req), throttles=0)
        table = "function_hours" if step_s % 3600 == 0 else "function_minutes"
        for r in runner.rows(_SERIES_MINUTES, {**base, **filters, "table": table}):
            point(r["time"]).update(_metrics(r, req))
        for r in runner.rows(_SERIES_THROTTLES, {**base, "function": req.function}):
            p = point(r["time"])
            p["throttles"] = max(p.get("throttles", 0), r["throttles"])
    return sorted(points.values(), key=lambda p: p["time"])


def _iso(value: str | datetime) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return iso_utc(value)


# --- API -------------------------------------------------------------------------------------------------


def _step(value: str) -> int:
    try:
        step = parse_duration(value)
    except ValueError as exc:
        raise HTTPException(400, f"step: {exc}") from exc
    seconds = step.total_seconds()
    if seconds < 1 or seconds != int(seconds) or (seconds > 60 and seconds % 60) or (seconds < 60 and 60 % seconds):
        raise HTTPException(400, "step: whole seconds dividing a minute (1s, 5s, 30s) or whole minutes (1m, 1h, 1d)")
    return int(seconds)


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["stats"])

    @router.get("/stats/disabled", summary="The functions disabled now (reserved concurrency 0): who, when, from where")
    async def api_disabled(tenant: str = Depends(ctx.auth.read)) -> dict[str, Any]:
        req = StatsRequest(tenant, datetime.now(UTC), account_limit=ctx.settings.account_concurrency_limit)
        limits = await run_in_threadpool(_limits, ctx.runner, req)
        return {"disabled": [{"function": f, **who} for f, who in sorted(limits.disabled.items())]}

    @router.get("/stats", summary="Per-function health: table, top-N, or a time series with `step`")
    async def api_stats(
        tenant: str = Depends(ctx.auth.read),
        function: str = "",
        account: str = "",
        since: str = "1h",
        until: str | None = None,
        top_n: int | None = Query(None, alias="top", description="only the N largest by `by`"),
        by: str = "invocations",
        step: str | None = Query(None, description="a time series with one point per step: 1s, 1m, 1h..."),
        versions: bool = False,
    ) -> dict[str, Any]:
        start = api_time(since, "since") or datetime.now(UTC) - timedelta(hours=1)
        end = api_time(until, "until")
        if end is not None and end <= start:
            raise HTTPException(400, "until must be after since")
        s = ctx.settings
        req = StatsRequest(
            tenant,
            start,
            end,
            function,
            s.account_concurrency_limit,
            s.price_per_gb_second,
            s.price_per_request,
            account,
        )
        if step:
            step_s = _step(step)
            try:
                points = await run_in_threadpool(series, ctx.runner, req, step_s)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
            return {"step_seconds": step_s, "function": function, "account": account, "series": points}
        out = await run_in_threadpool(stats, ctx.runner, req, versions)
        if top_n is not None:
            if by not in TOP_FIELDS:
                raise HTTPException(400, f"by: one of {', '.join(TOP_FIELDS)}")
            if top_n < 1:
                raise HTTPException(400, "top: at least 1")
            out["functions"] = top(out["functions"], top_n, by)
            out["top"], out["by"] = top_n, by
        return out

    return router
