"""API Gateway stages and their canary releases: `GET /api/deployments/stages` and `/api/deployments/stages/verdict`.

A REST API stage with a canary release sends a share of its requests to another deployment; its access log says
which (``$context.deploymentId``, ``$context.isCanaryRequest``: the format ``fnscope aws access-log-format`` prints).
The stats put each stage's releases side by side; the verdict judges the canary release against the base release
over the same window with the statistics a function's new version gets (``fnscope.canary``): 5xx answers are
errors, 504s timeouts, throttled requests throttles, and the base release's p99 latency sets the slow threshold.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from fnscope.canary import Figures, Policy, judge
from fnscope.query.context import QueryContext, api_window
from fnscope.query.runner import QueryRunner
from fnscope.timeparse import iso_utc

MAX_WINDOW = timedelta(days=31)
MAX_VERDICT_WINDOW = timedelta(days=1)
MAX_ROWS = 200

_RANGE = (
    "tenant = {tenant:String} AND api_id = {api:String} AND time >= {lo:DateTime64(3)} AND time < {hi:DateTime64(3)}"
)

_STAGES = f"""
SELECT stage, deployment_id, canary,
       count() AS requests,
       countIf(status >= 400 AND status < 500 AND NOT throttled) AS client_errors,
       countIf(status >= 500 AND NOT throttled) AS server_errors,
       countIf(throttled) AS throttles,
       quantileTDigest(0.5)(latency_ms) AS p50_ms,
       quantileTDigest(0.99)(latency_ms) AS p99_ms,
       min(time) AS first_seen, max(time) AS last_seen
FROM api_access FINAL
WHERE {_RANGE} AND ({{stage:String}} = '' OR stage = {{stage:String}})
GROUP BY stage, deployment_id, canary
ORDER BY stage, canary NULLS FIRST, last_seen DESC
LIMIT {MAX_ROWS}"""

# The two releases of one stage: requests that ran (throttled ones never did), their failures and latencies.
_RELEASES = f"""
SELECT canary,
       groupUniqArray(10)(deployment_id) AS deployments,
       countIf(NOT throttled) AS ran,
       countIf(status >= 500 AND NOT throttled) AS errors,
       countIf(status = 504 AND NOT throttled) AS timeouts,
       countIf(throttled) AS throttles,
       quantileTDigestIf(0.99)(latency_ms, NOT throttled) AS p99_ms,
       countIf(latency_ms IS NOT NULL AND NOT throttled) AS timed,
       countIf(latency_ms > {{threshold:Float64}} AND NOT throttled) AS slow
FROM api_access FINAL
WHERE {_RANGE} AND stage = {{stage:String}} AND canary IS NOT NULL
GROUP BY canary"""


def stages(runner: QueryRunner, tenant: str, api: str, stage: str, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
    params = {"tenant": tenant, "api": api, "stage": stage, "lo": lo, "hi": hi}
    rows = runner.rows(_STAGES, params)
    for row in rows:
        row["release"] = {True: "canary", False: "base"}.get(row["canary"], "")
    return rows


def _figures(row: dict[str, Any], name: str) -> Figures:
    return Figures(
        version=name,
        invocations=row.get("ran", 0),
        errors=row.get("errors", 0),
        timeouts=row.get("timeouts", 0),
        throttles=row.get("throttles", 0),
        p99_ms=row.get("p99_ms"),
    )


def _name(row: dict[str, Any], release: str) -> str:
    deployments = sorted(d for d in row.get("deployments", []) if d)
    return f"{release} ({', '.join(deployments)})" if deployments else release


def stage_verdict(
    runner: QueryRunner, tenant: str, api: str, stage: str, lo: datetime, hi: datetime, policy: Policy
) -> dict[str, Any]:
    params = {"tenant": tenant, "api": api, "stage": stage, "lo": lo, "hi": hi, "threshold": 0.0}
    releases = {r["canary"]: r for r in runner.rows(_RELEASES, params)}
    base_row, canary_row = releases.get(False, {}), releases.get(True, {})
    base = _figures(base_row, _name(base_row, "base release")) if base_row else None
    new = _figures(canary_row, _name(canary_row, "canary release"))
    if base is not None and base.p99_ms is not None and canary_row:
        params["threshold"] = policy.slow_threshold_ms(base.p99_ms)
        counted = {r["canary"]: r for r in runner.rows(_RELEASES, params)}[True]
        new = Figures(**{**asdict(new), "slow": counted["slow"], "timed": counted["timed"]})
    judged = judge(new, base, policy)
    return {
        "api": api,
        "stage": stage,
        "since": iso_utc(lo),
        "until": iso_utc(hi),
        **judged.as_dict(),
        "new": asdict(new),
        "baseline_figures": asdict(base) if base else None,
        "policy": policy.model_dump(),
    }


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["deployments"])

    @router.get("/deployments/stages", summary="An API's stages, each release (base, canary) and deployment apart")
    async def api_stages(
        api: str, tenant: str = Depends(ctx.auth.read), stage: str = "", since: str = "1h", until: str | None = None
    ) -> dict[str, Any]:
        lo, hi = api_window(since, until, MAX_WINDOW)
        if not api:
            raise HTTPException(400, "api is required")
        rows = await run_in_threadpool(stages, ctx.runner, tenant, api, stage, lo, hi)
        return {"api": api, "since": iso_utc(lo), "until": iso_utc(hi), "stages": rows}

    @router.get(
        "/deployments/stages/verdict",
        summary="Is a stage's canary release worse than its base release? pass, fail or wait, with reasons",
    )
    async def api_stage_verdict(
        api: str,
        stage: str,
        tenant: str = Depends(ctx.auth.read),
        since: str = "10m",
        until: str | None = None,
    ) -> dict[str, Any]:
        lo, hi = api_window(since, until, MAX_VERDICT_WINDOW)
        if not api or not stage:
            raise HTTPException(400, "api and stage are required")
        return await run_in_threadpool(stage_verdict, ctx.runner, tenant, api, stage, lo, hi, ctx.settings.canary)

    return router
