"""Audit history is append-only: every version of an event is kept, the first never replaced by a later one.

Until v007, ``audit_events`` collapsed rows by (tenant, day, action, time, eventID): a record re-sent with the same
id, time and action but another user replaced what was stored, and what the lookups showed. From here the sorting key
ends with ``content`` (the event's content hash, the one the hash chain seals): an identical re-delivery still
collapses into one row, keeping its first arrival (``first_kept`` falls as arrival rises: ReplacingMergeTree keeps
the largest), while a re-delivery with other content is a version of its own, shown beside the first. A bloom filter
over the eventID finds an event's versions.
``audit_lookup`` and ``audit_seal_entries`` get the same key end, so every lookup returns the same versions and the
chain seals each version (two versions arriving in one insert no longer collapse into one manifest row).

A sorting key can't take an expression column added later, so each table is rebuilt: created anew, filled from the
old one, exchanged with it. Each step checks what is already done, so a migration cut short runs again safely.
The content expression is a literal here (migrations are frozen); a test holds it equal to
``fnscope.audit_chain.CONTENT_SQL``.
"""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from fnscope.processors.retention import Retention

DESCRIPTION = "append-only audit history: every version of an event kept and sealed (content in the sorting keys)"

CONTENT_SQL = (
    "lower(hex(SHA256(concat(toString(length(tenant)), ':', tenant, toString(length(event_id)), ':', event_id, "
    "toString(length(account)), ':', account, toString(length(region)), ':', region, toString(length(source)), ':', "
    "source, toString(length(service)), ':', service, toString(length(action)), ':', action, "
    "toString(length(principal_type)), ':', principal_type, toString(length(principal_arn)), ':', principal_arn, "
    "toString(length(principal_name)), ':', principal_name, toString(length(principal_account)), ':', "
    "principal_account, toString(length(session_issuer)), ':', session_issuer, toString(length(access_key)), ':', "
    "access_key, toString(length(if(isNull(mfa), '', if(assumeNotNull(mfa), '1', '0')))), ':', "
    "if(isNull(mfa), '', if(assumeNotNull(mfa), '1', '0')), toString(length(source_ip)), ':', source_ip, "
    "toString(length(user_agent)), ':', user_agent, toString(length(error_code)), ':', error_code, "
    "toString(length(error_message)), ':', error_message, "
    "toString(length(if(isNull(read_only), '', if(assumeNotNull(read_only), '1', '0')))), ':', "
    "if(isNull(read_only), '', if(assumeNotNull(read_only), '1', '0')), toString(length(event_type)), ':', "
    "event_type, toString(length(event_category)), ':', event_category, toString(length(event_version)), ':', "
    "event_version, toString(length(function)), ':', function, "
    "toString(length(arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), resources)))), ':', "
    "arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), resources)), toString(length(raw)), ':', "
    "raw))))"
)

_EVENT_COLUMNS = """
    tenant LowCardinality(String),
    event_id String,
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    account LowCardinality(String),
    region LowCardinality(String),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
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
    raw String CODEC(ZSTD(3))"""
_COPIED = ", ".join(line.split()[0] for line in _EVENT_COLUMNS.strip().splitlines())

# v006's lookup columns (query.audit.AUDIT_COLUMNS with audit_events' types), the version column, and content.
_SHOWN = """
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id String,
    account LowCardinality(String),
    region LowCardinality(String),
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
    error_message String CODEC(ZSTD(1)),
    read_only Nullable(Bool),
    event_type LowCardinality(String),
    event_category LowCardinality(String),
    function LowCardinality(String),
    resources Array(String),
    ingested_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    content String"""
_SHOWN_NAMES = ", ".join(line.split()[0] for line in _SHOWN.strip().splitlines())
_NAME = "splitByRegexp('[:/]', x)[-1]"
_KEYS = (
    "arrayConcat([('p', principal_arn)], if(function = '', [], [('f', toString(function))]), "
    "if(corrects = '', [], [('c', corrects)]), "
    "arrayMap(x -> ('r', x), arrayDistinct(arrayFilter(x -> x != '', resources))), "
    f"arrayMap(x -> ('n', x), arrayDistinct(arrayFilter(x -> x != '' AND x != function, "
    f"arrayMap(x -> {_NAME}, arrayFilter(x -> match(x, '[:/]'), resources))))))"
)
_LOOKUP_SELECT = f"SELECT tenant, k.1 AS kind, k.2 AS key, {_SHOWN_NAMES} FROM audit_events ARRAY JOIN {_KEYS} AS k"
_PRINCIPALS_SELECT = (
    "SELECT tenant, principal_arn, principal_name, access_key, session_issuer, max(ingested_at) AS last_seen "
    "FROM audit_events GROUP BY tenant, principal_arn, principal_name, access_key, session_issuer"
)


def _columns(client: Client, table: str) -> set[str]:
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        parameters={"t": table},
    ).result_rows
    return {name for (name,) in rows}


def _events(r: Retention) -> Callable[[Client], None]:
    def rebuild(client: Client) -> None:
        if "content" not in _columns(client, "audit_events"):
            client.command(f"""CREATE TABLE IF NOT EXISTS audit_events_v8 ({_EVENT_COLUMNS},
    corrects String MATERIALIZED JSONExtractString(raw, 'addendum', 'originalEventID'),
    content String MATERIALIZED {CONTENT_SQL},
    first_kept UInt64 MATERIALIZED toUInt64(greatest(0, 4102444800000 - toUnixTimestamp64Milli(ingested_at))),
    INDEX event_idx event_id TYPE bloom_filter GRANULARITY 4,
    INDEX principal_idx principal_arn TYPE bloom_filter GRANULARITY 4,
    INDEX function_idx function TYPE bloom_filter GRANULARITY 4,
    INDEX ingested_idx ingested_at TYPE minmax GRANULARITY 1,
    INDEX principal_name_idx principal_name TYPE bloom_filter GRANULARITY 4,
    INDEX access_key_idx access_key TYPE bloom_filter GRANULARITY 4,
    INDEX corrects_idx corrects TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(first_kept)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, toStartOfDay(time), action, time, event_id, content)
TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY""")
            # the views feeding the lookups read audit_events: they are made again below, on the new table
            client.command("DROP VIEW IF EXISTS audit_lookup_mv")
            client.command("DROP VIEW IF EXISTS audit_principals_mv")
            client.command(f"INSERT INTO audit_events_v8 ({_COPIED}) SELECT {_COPIED} FROM audit_events")
            client.command("EXCHANGE TABLES audit_events AND audit_events_v8")
        client.command("DROP TABLE IF EXISTS audit_events_v8")

    return rebuild


def _lookups(r: Retention) -> Callable[[Client], None]:
    def rebuild(client: Client) -> None:
        fresh = "content" not in _columns(client, "audit_lookup")
        if fresh:
            client.command("DROP VIEW IF EXISTS audit_lookup_mv")
            client.command("DROP TABLE IF EXISTS audit_lookup")
            client.command(f"""CREATE TABLE audit_lookup (
    tenant LowCardinality(String),
    kind LowCardinality(String),
    key String,{_SHOWN}
) ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (tenant, kind, key, time, event_id, content)
TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 16384""")
        client.command(f"CREATE MATERIALIZED VIEW IF NOT EXISTS audit_lookup_mv TO audit_lookup AS {_LOOKUP_SELECT}")
        client.command(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS audit_principals_mv TO audit_principals AS {_PRINCIPALS_SELECT}"
        )
        if fresh:
            client.command(f"INSERT INTO audit_lookup {_LOOKUP_SELECT}")

    return rebuild


def _seal_entries(r: Retention) -> Callable[[Client], None]:
    def rebuild(client: Client) -> None:
        keys = client.query(
            "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'audit_seal_entries'"
        ).result_rows
        if keys and "content" not in keys[0][0]:
            client.command(f"""CREATE TABLE IF NOT EXISTS audit_seal_entries_v8 (
    tenant LowCardinality(String),
    seq UInt64,
    ingested_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id String,
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    content FixedString(64)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant, seq, ingested_at, event_id, content)
TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY""")
            client.command("INSERT INTO audit_seal_entries_v8 SELECT * FROM audit_seal_entries")
            client.command("EXCHANGE TABLES audit_seal_entries AND audit_seal_entries_v8")
        client.command("DROP TABLE IF EXISTS audit_seal_entries_v8")

    return rebuild


def statements(r: Retention) -> list[str | Callable[[Client], None]]:
    return [_events(r), _lookups(r), _seal_entries(r)]
