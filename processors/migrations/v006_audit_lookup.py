"""Audit lookups: "all actions of principal P" and "every change to function X" without reading every granule.

``audit_events`` is ordered by (tenant, day, action, time): one principal's or one function's events lie in every
granule of a range, so no skip index helps and ``FINAL`` over months of rows was the cost. Companion tables,
filled by materialized views on every insert into ``audit_events`` and backfilled here for the rows already there:

- ``audit_lookup``: the columns the audit API shows, once per key an event can be found by, ordered by
  (tenant, kind, key, time). ``kind`` is ``p`` (the principal's ARN, empty included), ``f`` (the function name),
  ``r`` (each resource ARN) or ``n`` (the name at the end of a resource ARN, after its last ``:`` or ``/``, unless
  that is the function name already), so a resource name is one key range rather than one per account and region;
  and ``c``, the eventID a CloudTrail correction replaces, so hiding corrected originals reads a few rows.
  A ReplacingMergeTree on the same version column as ``audit_events``, so re-deliveries collapse in merges; until
  then a query keeps each event's latest delivery among the few rows it reads. Unpartitioned (monthly partitions
  split every key into a dozen ranges), with small granules and compression blocks: a lookup reads a few short
  ranges, and each range costs a granule and a compressed block per column.
- ``audit_principals``: each distinct (ARN, name, access key, session issuer). A principal search is a substring
  match: it runs over this small table, then reads only the matching ARNs' ranges of ``audit_lookup``.

An eventID is assumed to keep its principal and resources across deliveries (CloudTrail re-delivers identical
records; a correction is a new eventID). Views are created before the backfill: an event inserted in between is
written twice and collapses, so running this again is harmless.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "audit lookups by principal, function, resource and correction (companion tables fed by views)"

# query.audit.AUDIT_COLUMNS with audit_events' types, and the version column.
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
    ingested_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))"""

_SHOWN_NAMES = ", ".join(line.split()[0] for line in _SHOWN.strip().splitlines())

# The last segment of a resource ARN (after its last ':' or '/'); query.audit.resource_name is the same in Python.
_NAME = "splitByRegexp('[:/]', x)[-1]"
_KEYS = (
    "arrayConcat([('p', principal_arn)], if(function = '', [], [('f', toString(function))]), "
    "if(corrects = '', [], [('c', corrects)]), "
    "arrayMap(x -> ('r', x), arrayDistinct(arrayFilter(x -> x != '', resources))), "
    f"arrayMap(x -> ('n', x), arrayDistinct(arrayFilter(x -> x != '' AND x != function, "
    f"arrayMap(x -> {_NAME}, arrayFilter(x -> match(x, '[:/]'), resources))))))"
)

LOOKUP_SELECT = f"SELECT tenant, k.1 AS kind, k.2 AS key, {_SHOWN_NAMES} FROM audit_events ARRAY JOIN {_KEYS} AS k"
PRINCIPALS_SELECT = (
    "SELECT tenant, principal_arn, principal_name, access_key, session_issuer, max(ingested_at) AS last_seen "
    "FROM audit_events GROUP BY tenant, principal_arn, principal_name, access_key, session_issuer"
)


def statements(r: Retention) -> list[str]:
    ttl = f"TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY"
    return [
        f"""CREATE TABLE IF NOT EXISTS audit_lookup (
    tenant LowCardinality(String),
    kind LowCardinality(String),
    key String,{_SHOWN}
) ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (tenant, kind, key, time, event_id)
{ttl}
SETTINGS index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 16384""",
        f"""CREATE TABLE IF NOT EXISTS audit_principals (
    tenant LowCardinality(String),
    principal_arn String,
    principal_name String,
    access_key String,
    session_issuer String,
    last_seen DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant, principal_arn, principal_name, access_key, session_issuer)
TTL toDateTime(last_seen) + INTERVAL {r.audit} DAY""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS audit_lookup_mv TO audit_lookup AS {LOOKUP_SELECT}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS audit_principals_mv TO audit_principals AS {PRINCIPALS_SELECT}",
        f"INSERT INTO audit_lookup {LOOKUP_SELECT}",
        f"INSERT INTO audit_principals {PRINCIPALS_SELECT}",
    ]
