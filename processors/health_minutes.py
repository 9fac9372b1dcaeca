"""Per-minute health of each function version, and throttles per function per minute, as whole buckets.

A minute is rebuilt from the raw facts, grouped by request so that every copy of a fact counts once and
every fact about one request (its report, a ``Task timed out`` line, an out-of-memory line) lands on the same
request. A request belongs to the minute of its earliest report time. Latency is kept as a t-digest state,
so any range merges its minutes with ``quantilesTDigestMerge`` instead of re-reading raw rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from fnscope.store import LEVELS

# How far around a minute its rebuild reads facts: every fact about a request that the minute counts (its report's
# copies, a timeout or out-of-memory line, runtime_done) within a minute of the request's end is found.
REQUEST_SPREAD_S = 60

# Each request's facts, grouped so that every copy counts once (``real`` = 1), and beside them one empty row (``real``
# = 0) for every bucket stored with invocations in the window: a bucket whose requests have all left it (an earlier
# copy of a report moved one to the previous minute) is written back empty, so a stale row never outlives the
# rebuild. One pass over the facts: the empty rows were once the stored buckets NOT IN the fresh ones, and ClickHouse
# inlines a WITH query at each use, so every rebuild grouped the facts twice.
_REQUESTS = f"""
SELECT function,
    minIf(time, kind = 'report') AS t,
    max(account) AS acct,
    max(version) AS ver,
    coalesce(anyIf(duration_ms, kind = 'report'), 0) AS dur,
    coalesce(anyIf(billed_duration_ms, kind = 'report'), 0) AS billed,
    toFloat64(coalesce(anyIf(memory_size_mb, kind = 'report'), 0)) AS memory,
    toFloat64(coalesce(anyIf(max_memory_used_mb, kind = 'report'), 0)) AS used,
    coalesce(anyIf(init_duration_ms, kind = 'report'), 0) AS init,
    maxIf(cold_start, kind = 'report') AS cold,
    max(status IN ('error', 'failure', 'timeout', 'oom') OR kind IN ('fault', 'timeout', 'oom')) AS failed,
    max(status = 'timeout' OR kind = 'timeout' OR error_type = 'Sandbox.Timedout') AS timed_out,
    max(status = 'oom' OR kind = 'oom' OR error_type = 'Runtime.OutOfMemory') AS oom,
    toUInt8(1) AS real
FROM invocations
WHERE tenant = {{tenant:String}} AND function IN {{functions:Array(String)}}
  AND kind IN ('report', 'timeout', 'oom', 'fault', 'runtime_done')
  AND time >= {{lo:DateTime64(3)}} - toIntervalSecond({REQUEST_SPREAD_S})
  AND time < {{hi:DateTime64(3)}} + toIntervalSecond({REQUEST_SPREAD_S})
GROUP BY function, if(request_id != '', request_id, event_id)
HAVING countIf(kind = 'report') > 0 AND t >= {{lo:DateTime64(3)}} AND t < {{hi:DateTime64(3)}}
UNION ALL
SELECT function, toDateTime64(bucket, 3, 'UTC'), any(account), version, 0., 0., 0., 0., 0., false, false, false, false,
    toUInt8(0)
FROM function_minutes FINAL
WHERE tenant = {{tenant:String}} AND function IN {{functions:Array(String)}} AND invocations > 0
  AND bucket >= {{lo:DateTime64(3)}} AND bucket < {{hi:DateTime64(3)}}
GROUP BY function, version, bucket
"""

_COLUMNS = (
    "function, version, bucket, account, invocations, errors, timeouts, out_of_memory, cold_starts, duration, "
    "duration_max, duration_sum, init_duration, init_sum, init_count, billed_ms, gb_seconds, memory_ratio_sum, "
    "memory_ratio_max, memory_count"
)

_MINUTES = f"""
INSERT INTO function_minutes (tenant, {_COLUMNS}, computed_at)
SELECT {{tenant:String}}, function, ver, toStartOfMinute(toDateTime(t, 'UTC')) AS bucket,
    if(sum(real) > 0, maxIf(acct, real = 1), max(acct)),  -- a bucket left empty keeps the account it had
    countIf(real = 1), countIf(failed AND real = 1), countIf(timed_out AND real = 1), countIf(oom AND real = 1),
    countIf(cold AND real = 1),
    quantilesTDigestStateIf({LEVELS})(dur, real = 1), maxIf(dur, real = 1), sumIf(dur, real = 1),
    quantilesTDigestStateIf({LEVELS})(init, init > 0 AND real = 1), sumIf(init, init > 0 AND real = 1),
    countIf(init > 0 AND real = 1),
    sumIf(billed, real = 1), sumIf(billed / 1000 * memory / 1024, real = 1),
    sumIf(used / memory, memory > 0 AND real = 1), maxIf(used / memory, memory > 0 AND real = 1),
    countIf(memory > 0 AND real = 1),
    now64(6)
FROM ({_REQUESTS})
GROUP BY function, ver, bucket
"""


_HOURS = f"""
INSERT INTO function_hours (tenant, {_COLUMNS}, computed_at)
SELECT tenant, function, version, toStartOfHour(bucket) AS hour, any(account), sum(invocations), sum(errors),
    sum(timeouts), sum(out_of_memory), sum(cold_starts), quantilesTDigestMergeState({LEVELS})(duration),
    max(duration_max), sum(duration_sum), quantilesTDigestMergeState({LEVELS})(init_duration), sum(init_sum),
    sum(init_count), sum(billed_ms), sum(gb_seconds), sum(memory_ratio_sum), max(memory_ratio_max),
    sum(memory_count), now64(6)
FROM function_minutes FINAL
WHERE tenant = {{tenant:String}} AND function IN {{functions:Array(String)}}
  AND bucket >= toStartOfHour({{lo:DateTime64(3)}}) AND bucket < toStartOfHour({{hi:DateTime64(3)}}) + INTERVAL 1 HOUR
GROUP BY tenant, function, version, hour
"""

# Every source that shows a throttle, kept apart: the same throttled call usually shows in more than one.
_THROTTLES = """
INSERT INTO throttle_minutes (tenant, function, bucket, source, reason, throttles, computed_at)
SELECT {tenant:String}, function, toStartOfMinute(toDateTime(time, 'UTC')) AS bucket, source, reason,
       uniqExact(event_id), now64(6)
FROM (
    SELECT function, time, event_id, 'apigateway' AS source,
        multiIf(error_message != '', error_message, status = 429, 'HTTP 429',
                integration_status = 429, 'integration 429', 'throttled') AS reason
    FROM api_access
    WHERE tenant = {tenant:String} AND throttled AND function IN {functions:Array(String)}
      AND time >= {lo:DateTime64(3)} AND time < {hi:DateTime64(3)}
    UNION ALL
    SELECT function, time, event_id, 'cloudtrail' AS source,
        if(JSONExtractString(raw, 'additionalEventData', 'Reason') != '',
           JSONExtractString(raw, 'additionalEventData', 'Reason'), error_code) AS reason
    FROM audit_events
    WHERE tenant = {tenant:String} AND error_code = 'TooManyRequestsException' AND function IN {functions:Array(String)}
      AND time >= {lo:DateTime64(3)} AND time < {hi:DateTime64(3)}
)
GROUP BY function, bucket, source, reason
"""


def _params(tenant: str, functions: set[str], first_minute: int, last_minute: int) -> dict[str, object]:
    return {
        "tenant": tenant,
        "functions": sorted(functions),
        "lo": datetime.fromtimestamp(first_minute * 60, UTC),
        "hi": datetime.fromtimestamp((last_minute + 1) * 60, UTC),
    }


def recompute_minutes(client: Client, tenant: str, functions: set[str], first_minute: int, last_minute: int) -> None:
    """Rebuild the minutes ``first_minute..last_minute`` (epoch minutes, inclusive) of these functions, and their hours."""
    params = _params(tenant, functions, first_minute, last_minute)
    client.command(_MINUTES, parameters=params)
    client.command(_HOURS, parameters=params)


def recompute_throttles(client: Client, tenant: str, functions: set[str], first_minute: int, last_minute: int) -> None:
    client.command(_THROTTLES, parameters=_params(tenant, functions, first_minute, last_minute))
