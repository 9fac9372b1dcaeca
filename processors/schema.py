"""ClickHouse schema: one table per signal, applied as versioned, idempotent migrations.

Retention counts from arrival (``ingested_at``), not from the event's own time, so a backfill of old
CloudTrail files or replayed logs is kept for the full period instead of expiring on insert.

Tables are ReplacingMergeTree keyed so that a re-delivered event (same deterministic ``event_id``) collapses
into one row; queries read them with ``FINAL`` (or de-duplicate by ``event_id``) so duplicates are never seen.
The column names are the field names of the pydantic models in ``fnscope.events``.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from fnscope.events import Signal

TABLES: dict[Signal, str] = {
    Signal.INVOCATION: "invocations",
    Signal.LOG: "function_logs",
    Signal.API: "api_access",
    Signal.AUDIT: "audit_events",
    Signal.DEAD_LETTER: "dead_letters",
}


@dataclass(frozen=True)
class Retention:
    """Default retention per data kind, in days."""

    logs: int = 30
    invocations: int = 90
    api: int = 90
    audit: int = 7 * 365
    dead_letters: int = 30


_COMMON = """
    tenant LowCardinality(String),
    event_id String,
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    account LowCardinality(String),
    region LowCardinality(String),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))"""


def _migrations(r: Retention) -> list[tuple[int, str, list[str]]]:
    """(version, description, statements). Append new versions; never edit an applied one."""
    return [
        (1, "one table per signal", [
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
        ]),
    ]


def migrate(client: Client, retention: Retention | None = None) -> int:
    """Apply every migration not yet recorded; returns the schema version now in force."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, description String, "
        "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    current = max(applied, default=0)
    for version, description, statements in _migrations(retention or Retention()):
        if version in applied:
            continue
        for statement in statements:
            client.command(statement)
        client.insert("schema_migrations", [[version, description]], column_names=["version", "description"])
        current = version
    return current
