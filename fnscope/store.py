"""The store as every part sees it: how to open it (a ClickHouse server or chDB in-process, through the same
clickhouse-connect API), the table each signal is stored in, and the quantile levels of its t-digest states.

The write side creates the tables (``fnscope.processors``); the read side only needs these names.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from fnscope.events import Signal

TABLES: dict[Signal, str] = {
    Signal.INVOCATION: "invocations",
    Signal.LOG: "function_logs",
    Signal.API: "api_access",
    Signal.AUDIT: "audit_events",
    Signal.DEAD_LETTER: "dead_letters",
}

# Quantile levels stored in every t-digest state (a state merges only with states of the same type); migration
# v002 writes the same literal into its tables, and a test holds the two together.
LEVELS = "0.5, 0.9, 0.95, 0.99"


def connect(dsn: str, settings: dict[str, Any] | None = None) -> Client:
    """``chdb:///path`` opens the embedded store; ``http(s)://user:pass@host:8123/db`` a server. ``settings`` go with
    every query of this client."""
    if dsn.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=dsn, settings=settings)
    return clickhouse_connect.get_client(
        dsn=dsn, compress="lz4", connect_timeout=5, send_receive_timeout=60, settings=settings
    )
