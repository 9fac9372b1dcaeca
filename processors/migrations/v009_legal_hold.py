"""Legal holds: every hold and lift of a tenant's audit retention, as recorded (never expires: it is evidence too)."""

from __future__ import annotations

from fnscope.processors.retention import Retention

DESCRIPTION = "legal holds on audit retention, each hold and lift recorded"


def statements(r: Retention) -> list[str]:
    return [
        """CREATE TABLE IF NOT EXISTS audit_holds (
    tenant LowCardinality(String),
    held Bool,
    at DateTime64(3, 'UTC') DEFAULT now64(3),
    by String,
    reason String
) ENGINE = MergeTree
ORDER BY (tenant, at)"""
    ]
