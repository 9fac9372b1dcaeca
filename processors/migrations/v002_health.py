"""Function health: exact concurrency peaks, per-minute aggregate states, throttles, limits and aliases.

The processor recomputes the buckets a batch touched from the de-duplicated raw facts (see
``processors/health_aggregates.py``) and writes whole buckets, versioned by the time the recompute started:
ReplacingMergeTree(computed_at) keeps the newest recompute, which has seen every fact inserted before it.
Reserved concurrency and alias routing are versioned by the CloudTrail event's own time instead, so
materialized views over ``audit_events`` keep them right whatever order the events arrive in.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "function health: concurrency peaks, minute aggregate states, throttles, limits, aliases"

# Quantile levels stored in every t-digest state (a state merges only with states of the same type).
LEVELS = "0.5, 0.9, 0.95, 0.99"


def statements(r: Retention) -> list[str]:
    # Like the raw tables, retention counts from arrival (the last recompute), not from the bucket's own time.
    ttl = f"TTL toDateTime(computed_at) + INTERVAL {r.invocations} DAY"
    return [
        # scope: 'function' (key = function), 'account' (key = account id), 'total' (key = '').
        # resolution: 1, 60 or 3600 seconds; peak = most executions running at one instant in the bucket.
        f"""CREATE TABLE IF NOT EXISTS concurrency_peaks (
    tenant LowCardinality(String),
    scope LowCardinality(String),
    key LowCardinality(String),
    resolution UInt32,
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    peak UInt32,
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY (resolution, toYYYYMM(bucket))
ORDER BY (tenant, resolution, scope, key, bucket)
{ttl}""",
        f"""CREATE TABLE IF NOT EXISTS function_minutes (
    tenant LowCardinality(String),
    function LowCardinality(String),
    version LowCardinality(String),
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    account LowCardinality(String),
    invocations UInt64,
    errors UInt64,
    timeouts UInt64,
    out_of_memory UInt64,
    cold_starts UInt64,
    duration AggregateFunction(quantilesTDigest({LEVELS}), Float64),
    duration_max Float64,
    duration_sum Float64,
    init_duration AggregateFunction(quantilesTDigest({LEVELS}), Float64),
    init_sum Float64,
    init_count UInt64,
    billed_ms Float64,
    gb_seconds Float64,
    memory_ratio_sum Float64,
    memory_ratio_max Float64,
    memory_count UInt64,
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, function, version, bucket)
{ttl}""",
        # The same, per hour: a day's latency merges 24 states per function version instead of 1,440.
        "CREATE TABLE IF NOT EXISTS function_hours AS function_minutes",
        f"""CREATE TABLE IF NOT EXISTS throttle_minutes (
    tenant LowCardinality(String),
    function LowCardinality(String),
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    source LowCardinality(String),
    reason LowCardinality(String),
    throttles UInt64,
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, function, bucket, source, reason)
{ttl}""",
        # reserved = -1 after DeleteFunctionConcurrency: the function is back on the account's pool.
        """CREATE TABLE IF NOT EXISTS concurrency_limits (
    tenant LowCardinality(String),
    function String,
    account LowCardinality(String),
    reserved Int64,
    changed_at DateTime64(3, 'UTC'),
    event_id String
) ENGINE = ReplacingMergeTree(changed_at)
ORDER BY (tenant, function)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS concurrency_limits_mv TO concurrency_limits AS
{_LIMITS_SELECT}""",
        f"INSERT INTO concurrency_limits {_LIMITS_SELECT}",
        """CREATE TABLE IF NOT EXISTS function_aliases (
    tenant LowCardinality(String),
    function String,
    alias String,
    version String,
    last_seen DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant, function, alias, version)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS function_aliases_mv TO function_aliases AS
{_ALIASES_SELECT}""",
        f"INSERT INTO function_aliases {_ALIASES_SELECT}",
    ]


_LIMITS_SELECT = """SELECT tenant, function, account,
    if(action LIKE 'PutFunctionConcurrency%',
       JSONExtractInt(raw, 'requestParameters', 'reservedConcurrentExecutions'), -1) AS reserved,
    time AS changed_at, event_id
FROM audit_events
WHERE error_code = '' AND function != ''
  AND (action LIKE 'PutFunctionConcurrency%' OR action LIKE 'DeleteFunctionConcurrency%')"""

# An Invoke data event names the qualifier it was called with (alias, version or none) and the version that ran.
_ALIASES_SELECT = """SELECT tenant, function, alias, version, time AS last_seen FROM (
    SELECT tenant, function, time,
        splitByChar(':', JSONExtractString(raw, 'requestParameters', 'functionName')) AS ref,
        if(length(ref) = 8 OR (length(ref) = 2 AND ref[1] != 'arn'), ref[-1], '') AS alias,
        splitByChar(':', JSONExtractString(raw, 'additionalEventData', 'functionVersion'))[-1] AS version
    FROM audit_events
    WHERE action LIKE 'Invoke%' AND function != '' AND error_code = ''
)
WHERE alias != '' AND version != '' AND NOT match(alias, '^([0-9]+|\\\\$LATEST)$')"""
