"""Alerting: the state of every alert instance (so a restart neither re-fires nor forgets a firing alert)
and the history of every transition and notification delivery."""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "alerts: instance state and delivery history"


def statements(r: Retention) -> list[str]:
    return [
        # One row per rule and label group; the newest update wins. state: pending | firing | resolved | inactive.
        """CREATE TABLE IF NOT EXISTS alert_state (
    tenant LowCardinality(String),
    rule LowCardinality(String),
    fingerprint String,
    labels Map(String, String),
    state LowCardinality(String),
    value Float64,
    values String,
    summary String,
    active_since DateTime64(3, 'UTC'),
    last_true DateTime64(3, 'UTC'),
    fired_at Nullable(DateTime64(3, 'UTC')),
    last_notified Nullable(DateTime64(3, 'UTC')),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, rule, fingerprint)""",
        # One row per notification and target: delivered | failed | silenced | no_target.
        f"""CREATE TABLE IF NOT EXISTS alert_history (
    time DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    tenant LowCardinality(String),
    rule LowCardinality(String),
    fingerprint String,
    kind LowCardinality(String),
    severity LowCardinality(String),
    labels Map(String, String),
    value Float64,
    values String,
    summary String,
    target String,
    format LowCardinality(String),
    delivery LowCardinality(String),
    attempts UInt8,
    http_status UInt16,
    error String,
    delivery_ms Float64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time)
TTL toDateTime(time) + INTERVAL {r.invocations} DAY""",
    ]
