"""`GET /api/deployments/verdict`: is a function's new version worse than the one it replaces?

The figures come from the store: invocations, errors and timeouts per version from the minute aggregates (the
numbers `fnscope stats --versions` shows), throttles per version from CloudTrail's throttled ``Invoke`` events
(the version Lambda routed the call to, where the event names it), and the new version's slow calls from its
raw reports, counted against the baseline's p99. The decision is ``fnscope.canary``'s.

The baseline is the version named, else the other version of the function with the most invocations in the
same window (a weighted alias or a canary stage runs both at once). When the baseline did not run in the window
(an all-at-once shift), its figures come from the window of the same length just before, and the answer says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from fnscope.canary import Figures, Policy, judge, routed_version
from fnscope.query.context import QueryContext, api_window
from fnscope.query.runner import QueryRunner
from fnscope.query.stats import StatsRequest, by_version_stats
from fnscope.timeparse import iso_utc

MAX_WINDOW = timedelta(days=1)

# Throttled calls by what their records say of the version (``routed_version`` reads it): few distinct pairs.
_THROTTLES = """
SELECT JSONExtractString(raw, 'additionalEventData', 'functionVersion') AS routed,
       JSONExtractString(raw, 'requestParameters', 'functionName') AS called,
       uniqExact(event_id) AS throttles
FROM audit_events
WHERE tenant = {tenant:String} AND function = {function:String} AND error_code = 'TooManyRequestsException'
  AND time >= {lo:DateTime64(3)} AND time < {hi:DateTime64(3)}
GROUP BY routed, called"""

# The new version's reports de-duplicated by request, as the minute aggregates count them (a request belongs to
# the minute of its earliest report), with how many ran longer than the baseline's p99 allowance.
_SLOW = """
SELECT count() AS timed, countIf(duration > {threshold:Float64}) AS slow FROM (
    SELECT max(version) AS ver, min(time) AS t, max(duration_ms) AS duration
    FROM invocations
    WHERE tenant = {tenant:String} AND function = {function:String} AND kind = 'report'
      AND time >= {lo:DateTime64(3)} - INTERVAL 1 MINUTE AND time < {hi:DateTime64(3)} + INTERVAL 1 MINUTE
    GROUP BY if(request_id != '', request_id, event_id)
    HAVING ver = {version:String} AND t >= {lo:DateTime64(3)} AND t < {hi:DateTime64(3)} AND duration IS NOT NULL
)"""


def _minutes(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The whole minutes the range touches: the aggregates' own resolution."""
    lo = since.replace(second=0, microsecond=0)
    hi = until.replace(second=0, microsecond=0)
    return lo, hi if hi == until else hi + timedelta(minutes=1)


def _figures(rows: list[dict[str, Any]], throttles: dict[str, int], version: str) -> Figures:
    row = next((r for r in rows if r["version"] == version), {})
    return Figures(
        version=version,
        invocations=row.get("invocations", 0),
        errors=row.get("errors", 0),
        timeouts=row.get("timeouts", 0),
        throttles=throttles.get(version, 0),
        p99_ms=row.get("p99_ms"),
    )


class Window:
    """One function's per-version figures over [lo, hi)."""

    def __init__(self, runner: QueryRunner, tenant: str, function: str, lo: datetime, hi: datetime) -> None:
        self.lo, self.hi = lo, hi
        self.rows = by_version_stats(runner, StatsRequest(tenant, lo, hi, function))
        params = {"tenant": tenant, "function": function, "lo": lo, "hi": hi}
        self.throttles: dict[str, int] = defaultdict(int)
        for r in runner.rows(_THROTTLES, params):
            self.throttles[routed_version(r["routed"], r["called"])] += r["throttles"]

    def versions(self) -> dict[str, int]:
        return {r["version"]: r["invocations"] for r in self.rows}

    def figures(self, version: str) -> Figures:
        return _figures(self.rows, self.throttles, version)


def verdict(
    runner: QueryRunner,
    tenant: str,
    function: str,
    version: str,
    baseline: str,
    since: datetime,
    until: datetime,
    policy: Policy,
) -> dict[str, Any]:
    lo, hi = _minutes(since, until)
    window = Window(runner, tenant, function, lo, hi)
    base_window = window
    if not baseline:
        others = {v: n for v, n in window.versions().items() if v != version}
        if not others:  # nothing else ran alongside: the version before, in the window just before
            base_window = Window(runner, tenant, function, lo - (hi - lo), lo)
            others = {v: n for v, n in base_window.versions().items() if v != version}
        baseline = max(sorted(others), key=lambda v: others[v], default="")
    elif not window.figures(baseline).invocations:
        base_window = Window(runner, tenant, function, lo - (hi - lo), lo)

    new = window.figures(version)
    base = base_window.figures(baseline) if baseline else None
    if base is not None and base.p99_ms is not None:
        threshold = policy.slow_threshold_ms(base.p99_ms)
        params = {"tenant": tenant, "function": function, "version": version, "lo": lo, "hi": hi}
        (counted,) = runner.rows(_SLOW, {**params, "threshold": threshold})
        new = Figures(**{**asdict(new), "slow": counted["slow"], "timed": counted["timed"]})
    judged = judge(new, base, policy)
    return {
        "function": function,
        "version": version,
        "baseline": baseline or None,
        "since": iso_utc(lo),
        "until": iso_utc(hi),
        "baseline_window": {"since": iso_utc(base_window.lo), "until": iso_utc(base_window.hi)},
        **judged.as_dict(),
        "new": asdict(new),
        "baseline_figures": asdict(base) if base else None,
        "policy": policy.model_dump(),
    }


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["deployments"])

    @router.get(
        "/deployments/verdict",
        summary="Is the new version worse than the one it replaces? pass, fail or wait, with reasons",
    )
    async def api_verdict(
        function: str,
        version: str,
        tenant: str = Depends(ctx.auth.read),
        baseline: str = "",
        since: str = "10m",
        until: str | None = None,
    ) -> dict[str, Any]:
        start, end = api_window(since, until, MAX_WINDOW)
        if not function or not version or baseline == version:
            raise HTTPException(400, "function and version are required, and baseline must be another version")
        return await run_in_threadpool(
            verdict, ctx.runner, tenant, function, version, baseline, start, end, ctx.settings.canary
        )

    return router
