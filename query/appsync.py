"""`GET /api/appsync`: AppSync GraphQL APIs per API, operation and resolver: count, errors, latency.

Operations are the API requests AppSync's request summaries became (``collector.formats.appsync``): a request
errs when its status is 400 or more or one of its resolvers failed. Resolvers are read from the stored log lines
themselves: ``Tracing`` lines give each call and its duration (nanoseconds), mapping lines with ``fieldInError``
the failed calls, so a resolver's figures need field-level logging at ``ALL`` (``ERROR`` gives its errors only).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from fnscope.query.context import QueryContext, api_window
from fnscope.query.runner import QueryRunner

GROUP_PREFIX = "/aws/appsync/apis/"
MAX_WINDOW = timedelta(days=31)
MAX_ROWS = 500

_OPERATIONS = f"""
SELECT api_id, route AS operation,
       count() AS requests,
       countIf(status >= 400 OR error_message != '') AS errors,
       quantileTDigest(0.5)(latency_ms) AS p50_ms,
       quantileTDigest(0.99)(latency_ms) AS p99_ms
FROM api_access FINAL
WHERE tenant = {{tenant:String}} AND source = 'appsync' AND ({{api:String}} = '' OR api_id = {{api:String}})
  AND time >= {{lo:DateTime64(3)}} AND time < {{hi:DateTime64(3)}}
GROUP BY api_id, operation
ORDER BY requests DESC, api_id, operation
LIMIT {MAX_ROWS}"""

_RESOLVERS = f"""
SELECT substring(log_group, {len(GROUP_PREFIX) + 1}) AS api_id,
       concat(fields['parentType'], '.', fields['fieldName']) AS resolver,
       countIf(fields['logType'] = 'Tracing') AS calls,
       uniqExactIf(request_id, fields['logType'] IN ('RequestMapping', 'ResponseMapping')
                               AND fields['fieldInError'] = 'true') AS errors,
       quantileTDigestIf(0.5)(toFloat64OrNull(fields['duration']) / 1e6, fields['logType'] = 'Tracing') AS p50_ms,
       quantileTDigestIf(0.99)(toFloat64OrNull(fields['duration']) / 1e6, fields['logType'] = 'Tracing') AS p99_ms
FROM function_logs FINAL
WHERE tenant = {{tenant:String}} AND function = ''
  AND log_group = if({{api:String}} = '', log_group, concat('{GROUP_PREFIX}', {{api:String}}))
  AND startsWith(log_group, '{GROUP_PREFIX}')
  AND fields['logType'] IN ('Tracing', 'RequestMapping', 'ResponseMapping') AND fields['fieldName'] != ''
  AND time >= {{lo:DateTime64(3)}} AND time < {{hi:DateTime64(3)}}
GROUP BY api_id, resolver
ORDER BY calls DESC, errors DESC, api_id, resolver
LIMIT {MAX_ROWS}"""


def appsync_stats(runner: QueryRunner, tenant: str, api: str, lo: datetime, hi: datetime) -> dict[str, Any]:
    params = {"tenant": tenant, "api": api, "lo": lo, "hi": hi}
    return {"operations": runner.rows(_OPERATIONS, params), "resolvers": runner.rows(_RESOLVERS, params)}


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["stats"])

    @router.get("/appsync", summary="AppSync GraphQL APIs: each operation and resolver's count, errors and latency")
    async def api_appsync(
        tenant: str = Depends(ctx.auth.read), api: str = "", since: str = "1h", until: str | None = None
    ) -> dict[str, Any]:
        start, end = api_window(since, until, MAX_WINDOW)
        return await run_in_threadpool(appsync_stats, ctx.runner, tenant, api, start, end)

    return router
