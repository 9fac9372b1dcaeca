"""Opening the store: a ClickHouse server or chDB in-process, through the same clickhouse-connect API."""

from __future__ import annotations

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from processors.schema import Retention, migrate


def connect(dsn: str) -> Client:
    """``chdb:///path`` opens the embedded store; ``http(s)://user:pass@host:8123/db`` a server."""
    if dsn.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=dsn)
    return clickhouse_connect.get_client(dsn=dsn, compress="lz4", connect_timeout=5, send_receive_timeout=60)


def open_store(dsn: str, retention: Retention | None = None) -> Client:
    """Connect and bring the schema up to date (idempotent)."""
    client = connect(dsn)
    migrate(client, retention)
    return client
