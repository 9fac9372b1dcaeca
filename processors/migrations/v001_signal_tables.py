"""The four signal tables and the dead-letter store."""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "one table per signal, and dead letters"

_COMMON = """
    tenant LowCardinality(String),
    event_id String,
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    account LowCardinality(String),
    region LowCardinality(String),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))"""


def statements(r: Retention) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS invocations ({_COMMON},
    function LowCardinality(String),
    version LowCardinality(String),
    request_id String,
    kind LowCardinality(String),
    status LowCardinality(String),
    error_type LowCardinality(String),
    start_time Nullable(DateTime64(3, 'UTC')),
    duration_ms Nullable(Float64),
    billed_duration_ms Nullable(Float64),
    memory_size_mb Nullable(UInt32),
    max_memory_used_mb Nullable(UInt32),
    init_duration_ms Nullable(Float64),
    restore_duration_ms Nullable(Float64),
    cold_start Bool,
    trace_id String CODEC(ZSTD(1)),
    INDEX request_idx request_id TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(time)
ORDER BY (tenant, function, time, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.invocations} DAY""",
        f"""CREATE TABLE IF NOT EXISTS function_logs ({_COMMON},
    function LowCardinality(String),
    version LowCardinality(String),
    request_id String,
    level LowCardinality(String),
    message String CODEC(ZSTD(3)),
    log_type LowCardinality(String),
    log_group LowCardinality(String),
    log_stream String CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    fields Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    INDEX message_idx message TYPE text(tokenizer = 'splitByNonAlpha'),
    INDEX request_idx request_id TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(time)
ORDER BY (tenant, function, time, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.logs} DAY""",
        f"""CREATE TABLE IF NOT EXISTS api_access ({_COMMON},
    api_id LowCardinality(String),
    stage LowCardinality(String),
    request_id String,
    function LowCardinality(String),
    method LowCardinality(String),
    path String,
    route LowCardinality(String),
    protocol LowCardinality(String),
    status UInt16,
    integration_status UInt16,
    latency_ms Nullable(Float64),
    integration_latency_ms Nullable(Float64),
    response_length Nullable(Int64),
    source_ip String,
    user_agent String CODEC(ZSTD(1)),
    error_message String,
    throttled Bool,
    raw String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(time)
ORDER BY (tenant, api_id, time, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.api} DAY""",
        f"""CREATE TABLE IF NOT EXISTS audit_events ({_COMMON},
    service LowCardinality(String),
    action LowCardinality(String),
    principal_type LowCardinality(String),
    principal_arn String,
    principal_name String,
    principal_account LowCardinality(String),
    session_issuer String,
    access_key String,
    mfa Nullable(Bool),
    source_ip String,
    user_agent String CODEC(ZSTD(1)),
    error_code LowCardinality(String),
    error_message String,
    read_only Nullable(Bool),
    event_type LowCardinality(String),
    event_category LowCardinality(String),
    event_version LowCardinality(String),
    function LowCardinality(String),
    resources Array(String),
    raw String CODEC(ZSTD(3)),
    INDEX principal_idx principal_arn TYPE bloom_filter GRANULARITY 4,
    INDEX function_idx function TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, toStartOfDay(time), action, time, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY""",
        f"""CREATE TABLE IF NOT EXISTS dead_letters ({_COMMON},
    reason String,
    raw String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMMDD(time)
ORDER BY (tenant, source, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.dead_letters} DAY""",
    ]
