"""Audit: the tamper-evident seal (hash chain), addendum corrections, and indexes for who-did-what queries.

- ``audit_seal_entries``: one row per sealed event (its arrival time, event time and content hash), grouped by
  the digest (``seq``) that covers it. Same retention as the events, counted from the same ``ingested_at``.
- ``audit_digests``: one per tenant per sealed window; each links the previous digest's hash, optionally signed.
  Never expires: it is tiny and keeps the chain whole. Both are ReplacingMergeTree because sealing is
  deterministic: two sealers (distributed processors) writing the same digest collapse into one row.
- ``corrects``: the ``addendum.originalEventID`` of a CloudTrail correction (reason UPDATED_DATA), which has its
  own eventID. Queries hide an original that a correction names, whichever of the two arrived first; the
  table's version column (``ingested_at``) cannot do that, it only makes the latest delivery of one eventID win.
- ``ingested_idx``: min/max of arrival per granule, so the sealer reads only the newest granules.
- bloom filters over the principal's name and access key, beside v001's one over its ARN.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "audit seal (hash chain), addendum corrections, principal indexes"

_INDEXES = {
    "ingested_idx": "ingested_at TYPE minmax GRANULARITY 1",
    "principal_name_idx": "principal_name TYPE bloom_filter GRANULARITY 4",
    "access_key_idx": "access_key TYPE bloom_filter GRANULARITY 4",
    "corrects_idx": "corrects TYPE minmax GRANULARITY 1",  # almost all empty: granules without one are skipped
}


def statements(r: Retention) -> list[str]:
    out = [
        "ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS corrects String "
        "MATERIALIZED JSONExtractString(raw, 'addendum', 'originalEventID')",
        "ALTER TABLE audit_events MATERIALIZE COLUMN corrects",
    ]
    for name, definition in _INDEXES.items():
        out.append(f"ALTER TABLE audit_events ADD INDEX IF NOT EXISTS {name} {definition}")
        out.append(f"ALTER TABLE audit_events MATERIALIZE INDEX {name}")
    out += [
        f"""CREATE TABLE IF NOT EXISTS audit_seal_entries (
    tenant LowCardinality(String),
    seq UInt64,
    ingested_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id String,
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    content FixedString(64)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant, seq, ingested_at, event_id)
TTL toDateTime(ingested_at) + INTERVAL {r.audit} DAY""",
        """CREATE TABLE IF NOT EXISTS audit_digests (
    tenant LowCardinality(String),
    seq UInt64,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    event_count UInt64,
    events_hash String,
    prev_hash String,
    digest_hash String,
    algorithm LowCardinality(String),
    key_id String,
    signature String,
    sealed_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (tenant, seq)""",
    ]
    return out
