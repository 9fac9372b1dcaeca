"""Running a parameterised query: every user value is bound as a ClickHouse parameter, never spliced."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client


class QueryRunner:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            result = self.client.query(sql, parameters=params)
        return [dict(zip(result.column_names, map(_jsonable, row))) for row in result.result_rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "") + "Z"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value != value:
        return None
    return value


class Where:
    """Builds a WHERE clause from conditions whose values are all bound parameters."""

    def __init__(self, tenant: str) -> None:
        self.clauses = ["tenant = {tenant:String}"]
        self.params: dict[str, Any] = {"tenant": tenant}

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.clauses)
