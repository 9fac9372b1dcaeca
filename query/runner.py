"""Running a parameterised query: every user value is bound as a ClickHouse parameter, never spliced."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

# Column types whose Python values are already JSON-ready: no per-value conversion.
_READY = frozenset(
    {"Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Map", "Array", "Tuple"}
)


class QueryRunner:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            result = self.client.query(sql, parameters=params)
        # column by column: the conversion a column's type may need is decided once, not per value
        columns = [_column(column, kind.base_type) for column, kind in zip(result.result_columns, result.column_types)]
        names = result.column_names
        return [dict(zip(names, values)) for values in zip(*columns)]


def _column(values: Sequence[Any], base_type: str) -> Sequence[Any]:
    if base_type in _READY:
        return values
    if base_type == "String" and all(value.__class__ is str for value in values):
        return values  # the usual case: valid UTF-8 (invalid bytes come back as bytes, decoded below)
    return list(map(_jsonable, values))


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
