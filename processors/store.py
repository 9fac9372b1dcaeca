"""Opening the store for writing: connect and bring the schema up to date."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from fnscope.processors.cluster import on_cluster
from fnscope.processors.retention import Retention
from fnscope.processors.schema import migrate
from fnscope.store import connect


def open_store(dsn: str, retention: Retention | None = None, cluster: str = "") -> Client:
    """Connect and bring the schema up to date (idempotent). On a ClickHouse cluster (``cluster``: its name in the
    servers' ``remote_servers``) the handle's DDL is rewritten for it (``fnscope.processors.cluster``)."""
    client = on_cluster(connect(dsn), cluster)
    migrate(client, retention)
    return client
