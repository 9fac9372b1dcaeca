"""Running a parameterised query: every user value is bound as a ClickHouse parameter, never spliced."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from fnscope.sink import StoreUnavailable
from fnscope.timeparse import iso_utc

# Column types whose Python values are already JSON-ready: no per-value conversion.
_READY = frozenset(
    {"Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Map", "Array", "Tuple"}
)


# Every query's time budget: a search that would run longer (a regex over months of lines) is stopped, not left
# holding a store handle that other queries wait for.
MAX_QUERY_SECONDS = 20
RETRY_OPEN_AFTER_S = 1.0  # a store that did not answer is asked again by the first query after this


class QueryTooSlow(Exception):
    """A query ran out of its time budget."""


class QueryRunner:
    """Runs queries on a few store handles at once (clickhouse-connect runs one query at a time per handle), so a
    slow query holds up only its own handle, and each query within a time budget.

    Given ``open_handles`` instead of handles, it opens them at its first query, and again at a later one while the
    store does not answer (a role started before its store): meanwhile each query fails with ``StoreUnavailable``
    at once rather than waiting out a connect timeout per request."""

    def __init__(self, *handles: Client, open_handles: Callable[[], Sequence[Client]] | None = None) -> None:
        self._free: queue.SimpleQueue[Client] = queue.SimpleQueue()
        self._open_handles = open_handles
        self._opening = threading.Lock()
        self._retry_at = 0.0
        self.client: Client | None = None  # for callers that need a handle of their own (migrations in tests)
        self._add(handles)

    def _add(self, handles: Sequence[Client]) -> None:
        for handle in handles:
            self._free.put(handle)
        self.client = self.client or (handles[0] if handles else None)

    def _take(self) -> Client:
        if self._open_handles is not None:
            self._open()
        return self._free.get()

    def _open(self) -> None:
        with self._opening:
            if self._open_handles is None:
                return
            if time.monotonic() < self._retry_at:
                raise StoreUnavailable("the store does not answer yet")
            try:
                handles = self._open_handles()
            except Exception as exc:
                self._retry_at = time.monotonic() + RETRY_OPEN_AFTER_S
                raise StoreUnavailable(f"the store does not answer: {exc}") from exc
            self._add(handles)
            self._open_handles = None

    def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        handle = self._take()
        try:
            result = handle.query(sql, parameters=params, settings={"max_execution_time": MAX_QUERY_SECONDS})
        except Exception as exc:
            if "TIMEOUT_EXCEEDED" in str(exc) or "Timeout exceeded" in str(exc):
                raise QueryTooSlow(f"the query ran longer than {MAX_QUERY_SECONDS} s: narrow it") from exc
            raise
        finally:
            self._free.put(handle)
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
        return iso_utc(value, "milliseconds")
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
