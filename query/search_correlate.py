"""From one log line to what explains it: its invocation, the API request that caused it, and recent changes.

- invocation: the platform facts with the line's function and request id (REPORT duration and memory, init
  duration for a cold start, the end status of a timeout or out-of-memory exit);
- API request: API Gateway access logs of the same function around the invocation's start. An access log
  names the Lambda request id only in some messages (integration errors), so a record that names it is an exact
  match; otherwise the closest in time is a candidate, marked as such;
- changes: CloudTrail events that changed the function in the 24 hours before the line, each with a summary of
  what changed (``fnscope.query.lambda_changes``: every call the "lambda-function-changes" saved query finds).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.query.context import QueryContext
from fnscope.query.lambda_changes import function_changes
from fnscope.query.runner import QueryRunner
from fnscope.query.search import COLUMNS, MAX_SECONDS, run
from fnscope.query.search_results import BadCursor, decode_ref, row_out

CHANGES_BEFORE = timedelta(hours=24)
_END_STATUS_KINDS = ("timeout", "oom", "fault", "runtime_done", "report")


def _dt(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def find_line(runner: QueryRunner, tenant: str, ref: str) -> dict[str, Any] | None:
    time_ms, event_id = decode_ref(ref)
    sql = (
        f"SELECT {COLUMNS} FROM function_logs WHERE tenant = {{tenant:String}} "
        "AND time = fromUnixTimestamp64Milli({ms:Int64}, 'UTC') AND event_id = {id:String} LIMIT 1"
    )
    rows = run(runner, sql, {"tenant": tenant, "ms": time_ms, "id": event_id}, MAX_SECONDS)
    return row_out(rows[0], None) if rows else None


def invocation(runner: QueryRunner, tenant: str, line: dict[str, Any]) -> dict[str, Any] | None:
    if not line["request_id"]:
        return None
    sql = (
        "SELECT kind, status, error_type, time, start_time, duration_ms, billed_duration_ms, memory_size_mb, "
        "max_memory_used_mb, init_duration_ms, restore_duration_ms, cold_start, version "
        "FROM invocations FINAL WHERE tenant = {tenant:String} AND function = {function:String} "
        "AND request_id = {rid:String} AND time >= {t:DateTime64(3)} - INTERVAL 1 HOUR "
        "AND time <= {t:DateTime64(3)} + INTERVAL 1 HOUR ORDER BY time"
    )
    facts = run(
        runner,
        sql,
        {"tenant": tenant, "function": line["function"], "rid": line["request_id"], "t": _dt(line["time"])},
        MAX_SECONDS,
    )
    if not facts:
        return None
    by_kind = {f["kind"]: f for f in facts}
    report = by_kind.get("report", {})
    status = next((by_kind[k]["status"] for k in _END_STATUS_KINDS if by_kind.get(k, {}).get("status")), "")
    start = next((f["start_time"] for f in facts if f["start_time"]), None) or by_kind.get("start", {}).get("time")
    return {
        "request_id": line["request_id"],
        "status": status,
        "error_type": next((f["error_type"] for f in facts if f["error_type"]), ""),
        "start": start,
        "duration_ms": report.get("duration_ms"),
        "billed_duration_ms": report.get("billed_duration_ms"),
        "memory_size_mb": report.get("memory_size_mb"),
        "max_memory_used_mb": report.get("max_memory_used_mb"),
        "init_duration_ms": report.get("init_duration_ms"),
        "cold_start": any(f["cold_start"] for f in facts) or report.get("init_duration_ms") is not None,
        "version": next((f["version"] for f in facts if f["version"]), ""),
        "facts": sorted(by_kind),
    }


def api_requests(
    runner: QueryRunner, tenant: str, line: dict[str, Any], inv: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Access-log records of the function around the invocation's start (or before the line), best first."""
    anchor = (inv or {}).get("start") or line["time"]
    before, after = (2, 2) if inv and inv.get("start") else (30, 1)
    sql = (
        "SELECT time, api_id, stage, request_id, method, path, route, status, latency_ms, integration_latency_ms, "
        "source_ip, user_agent, error_message, "
        "({rid:String} != '' AND (position(error_message, {rid:String}) > 0 OR position(raw, {rid:String}) > 0)) "
        "AS names_request, abs(dateDiff('millisecond', time, {anchor:DateTime64(3)})) AS distance_ms "
        "FROM api_access FINAL WHERE tenant = {tenant:String} AND function = {function:String} "
        "AND time >= {anchor:DateTime64(3)} - toIntervalSecond({before:UInt32}) "
        "AND time <= {anchor:DateTime64(3)} + toIntervalSecond({after:UInt32}) "
        "ORDER BY names_request DESC, distance_ms LIMIT 3"
    )
    params = {
        "tenant": tenant,
        "function": line["function"],
        "rid": line["request_id"],
        "anchor": _dt(anchor),
        "before": before,
        "after": after,
    }
    rows = run(runner, sql, params, MAX_SECONDS)
    for row in rows:
        row["match"] = "request_id" if row.pop("names_request") else "time"
    if any(r["match"] == "request_id" for r in rows):
        rows = [r for r in rows if r["match"] == "request_id"]
    return rows


def recent_changes(runner: QueryRunner, tenant: str, line: dict[str, Any]) -> list[dict[str, Any]]:
    at = _dt(line["time"])
    return function_changes(runner, tenant, line["function"], at - CHANGES_BEFORE, at)


def correlate(runner: QueryRunner, tenant: str, ref: str) -> dict[str, Any] | None:
    line = find_line(runner, tenant, ref)
    if line is None:
        return None
    inv = invocation(runner, tenant, line)
    return {
        "line": line,
        "invocation": inv,
        "api_requests": api_requests(runner, tenant, line, inv),
        "changes": recent_changes(runner, tenant, line),
        "same_request_query": f'request_id:"{line["request_id"]}"' if line["request_id"] else None,
    }


def context_routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["search"])

    @router.get("/search/context", summary="A log line's invocation, API request and recent changes")
    async def api_context(
        tenant: str = Depends(ctx.auth.read),
        ref: str = Query(..., description="the `ref` of a search result"),
    ) -> dict[str, Any]:
        try:
            decode_ref(ref)
        except BadCursor as exc:
            raise HTTPException(400, f"ref: {exc}") from exc
        found = await run_in_threadpool(correlate, ctx.runner, tenant, ref)
        if found is None:
            raise HTTPException(404, "no such log line for this tenant")
        return found

    return router
