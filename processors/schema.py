"""ClickHouse schema: one table per signal, applied as versioned, idempotent migrations.

Retention counts from arrival (``ingested_at``), not from the event's own time, so a backfill of old
CloudTrail files or replayed logs is kept for the full period instead of expiring on insert.

Each migration is a module ``processors/migrations/vNNN_what.py``; add a new one, never edit an applied one.
Tables are ReplacingMergeTree keyed so that a re-delivered event (same deterministic ``event_id``) collapses
into one row; queries read them with ``FINAL`` (or de-duplicate by ``event_id``) so duplicates are never seen.
The column names are the field names of the pydantic models in ``fnscope.events``.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from fnscope.events import Signal

TABLES: dict[Signal, str] = {
    Signal.INVOCATION: "invocations",
    Signal.LOG: "function_logs",
    Signal.API: "api_access",
    Signal.AUDIT: "audit_events",
    Signal.DEAD_LETTER: "dead_letters",
}


class Retention(BaseModel):
    """Default retention per data kind, in days."""

    logs: int = 30
    invocations: int = 90
    api: int = 90
    audit: int = 7 * 365
    dead_letters: int = 30


def migrate(client: Client, retention: Retention | None = None, until: int | None = None) -> int:
    """Apply every migration not yet recorded (below version ``until`` if given: the store as an older release
    left it, for upgrade tests); returns the schema version now in force."""
    from processors.migrations import all_migrations

    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, description String, "
        "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    current = max(applied, default=0)
    for migration in all_migrations():
        if migration.version in applied or (until is not None and migration.version >= until):
            continue
        for statement in migration.statements(retention or Retention()):
            client.command(statement)
        client.insert(
            "schema_migrations", [[migration.version, migration.description]], column_names=["version", "description"]
        )
        current = migration.version
    return current
