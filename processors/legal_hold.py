"""Legal hold: a tenant's audit trail is kept past its retention (7 years by default) until the hold is lifted.

TTL deletes expired audit rows as parts merge. A hold rewrites the TTL of every audit table so that it deletes only
rows of tenants not on hold (``DELETE WHERE tenant NOT IN (...)``); lifting it rewrites it again. Each hold and
lift is a row of ``audit_holds`` (who, when, why), which never expires. The new TTL applies at the next merges
(``materialize_ttl_after_modify = 0``: no table is rewritten when a hold changes).
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from fnscope.timeparse import iso_utc

# each audit table and the arrival column its retention counts from
_TABLES = (
    ("audit_events", "ingested_at"),
    ("audit_lookup", "ingested_at"),
    ("audit_seal_entries", "ingested_at"),
    ("audit_principals", "last_seen"),
)


def record(client: Client, tenant: str, held: bool, by: str, reason: str, retention_days: int) -> None:
    """Hold (or lift the hold on) ``tenant``'s audit trail, record it, and apply every tenant's holds."""
    client.insert("audit_holds", [[tenant, held, by, reason]], column_names=["tenant", "held", "by", "reason"])
    apply(client, retention_days)


def history(client: Client, tenant: str) -> list[dict[str, Any]]:
    rows = client.query(
        "SELECT held, at, by, reason FROM audit_holds WHERE tenant = {t:String} ORDER BY at",
        parameters={"t": tenant},
    ).named_results()
    return [{**row, "at": iso_utc(row["at"], "milliseconds")} for row in rows]


def held_tenants(client: Client) -> list[str]:
    rows = client.query("SELECT tenant FROM audit_holds GROUP BY tenant HAVING argMax(held, at)").result_rows
    return sorted(tenant for (tenant,) in rows)


def apply(client: Client, retention_days: int) -> None:
    held = held_tenants(client)
    keep = f" WHERE tenant NOT IN ({', '.join(_literal(t) for t in held)})" if held else ""
    for table, column in _TABLES:
        client.command(
            f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {int(retention_days)} DAY{keep}",
            settings={"materialize_ttl_after_modify": 0},
        )


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
