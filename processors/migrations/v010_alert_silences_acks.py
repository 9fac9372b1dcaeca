"""Alerts silenced and acknowledged from the console or the API, kept in the store so that every process that
evaluates alerts (``fnscope up``, each ``fnscope processor``) reads the same ones, and a restart keeps them.

- ``alert_silences``: one row per silence, the newest update wins (expiring one early writes it again with its
  new ``ends_at`` and who ended it). Kept as long as the alert history after it ends.
- ``alert_acks``: who acknowledged a firing alert, and when; keyed by the alert and the moment it became active,
  so an alert that resolves and fires again starts unacknowledged.
"""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "alerts: silences and acknowledgements made through the API"


def statements(r: Retention) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS alert_silences (
    tenant LowCardinality(String),
    id String,
    matchers Map(String, String),
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    comment String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    expired_by String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, id)
TTL toDateTime(ends_at) + INTERVAL {r.invocations} DAY""",
        f"""CREATE TABLE IF NOT EXISTS alert_acks (
    tenant LowCardinality(String),
    rule LowCardinality(String),
    fingerprint String,
    active_since DateTime64(3, 'UTC'),
    at DateTime64(3, 'UTC'),
    by String,
    comment String
) ENGINE = ReplacingMergeTree(at)
ORDER BY (tenant, fingerprint, active_since)
TTL toDateTime(at) + INTERVAL {r.invocations} DAY""",
    ]
