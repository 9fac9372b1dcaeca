"""Opening the store for writing: connect and bring the schema up to date."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from fnscope.processors.retention import Retention
from fnscope.processors.schema import migrate
from fnscope.store import connect


def open_store(dsn: str, retention: Retention | None = None) -> Client:
    """Connect and bring the schema up to date (idempotent)."""
    client = connect(dsn)
    migrate(client, retention)
    return client
