"""ClickHouse schema: one table per signal, applied as versioned, idempotent migrations.

Retention counts from arrival (``ingested_at``), not from the event's own time, so a backfill of old
CloudTrail files or replayed logs is kept for the full period instead of expiring on insert.

Each migration is a module ``processors/migrations/vNNN_what.py``; add a new one, never edit an applied one.
Tables are ReplacingMergeTree keyed so that a re-delivered event (same deterministic ``event_id``) collapses
into one row; queries read them with ``FINAL`` (or de-duplicate by ``event_id``) so duplicates are never seen.
The table names are ``fnscope.store.TABLES``; the column names are the field names of the pydantic models in
``fnscope.events``.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from fnscope.processors.migrations import all_migrations
from fnscope.processors.retention import Retention


def migrate(client: Client, retention: Retention | None = None, until: int | None = None) -> int:
    """Apply every migration not yet recorded (below version ``until`` if given: the store as an older release
    left it, for upgrade tests); returns the schema version now in force."""
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
            if callable(statement):  # a step that looks at the store first (a table rebuilt only once)
                statement(client)
            else:
                client.command(statement)
        client.insert(
            "schema_migrations", [[migration.version, migration.description]], column_names=["version", "description"]
        )
        current = migration.version
    return current
