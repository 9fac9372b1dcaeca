"""Columnar inserts of normalized events: one insert per table per batch, never row by row."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

from clickhouse_connect.driver.client import Client

from fnscope.events import Event, Signal
from processors.health_aggregates import HealthAggregator
from processors.schema import TABLES

_COLUMNS: dict[type[Event], list[str]] = {}


def _columns(model: type[Event]) -> list[str]:
    if model not in _COLUMNS:
        _COLUMNS[model] = list(model.model_fields)
    return _COLUMNS[model]


class EventWriter:
    """Writes batches of events of any signal; the caller decides when a batch is big enough."""

    def __init__(self, client: Client, health_client: Client | None = None) -> None:
        self.client = client
        self._lock = threading.Lock()
        # Rebuilds, in the background, the health buckets each batch touched. clickhouse-connect serialises calls
        # per client handle: a handle of its own keeps those rebuilds from queueing in front of inserts.
        self.health = HealthAggregator(health_client or client)
        # called with each batch after its insert returned, outside the lock (the alert evaluator hooks in here)
        self.listeners: list[Callable[[list[Event]], None]] = []

    def write(self, events: Iterable[Event]) -> dict[Signal, int]:
        by_model: dict[type[Event], list[Event]] = defaultdict(list)
        for event in events:
            by_model[type(event)].append(event)
        written: dict[Signal, int] = {}
        with self._lock:
            for model, batch in by_model.items():
                names = _columns(model)
                columns = [[getattr(e, name) for e in batch] for name in names]
                self.client.insert(TABLES[model.signal], columns, column_names=names, column_oriented=True)
                written[model.signal] = len(batch)
            self.health.mark(e for batch in by_model.values() for e in batch)
        if self.listeners:
            stored = [e for batch in by_model.values() for e in batch]
            for listener in self.listeners:
                listener(stored)
        return written
