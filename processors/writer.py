"""Columnar inserts of normalized events: one insert per table per batch, never row by row."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from operator import attrgetter

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from fnscope.events import DeadLetter, Event, Signal, dead_letter
from fnscope.processors.health_aggregates import HealthAggregator
from fnscope.store import TABLES

# An event the store refused to hold, and the dead letter (with the store's reason) it was kept as instead.
Refused = tuple[Event, DeadLetter]

_COLUMNS: dict[type[Event], list[str]] = {}

# JSONEachRow as orjson writes it: RFC 3339 times with offsets, and floats parsed exactly back to what was sent.
_JSON_INSERT_SETTINGS = {"date_time_input_format": "best_effort", "precise_float_parsing": 1}


def _columns(model: type[Event]) -> list[str]:
    if model not in _COLUMNS:
        _COLUMNS[model] = list(model.model_fields)
    return _COLUMNS[model]


class EventWriter:
    """Writes batches of events of any signal; the caller decides when a batch is big enough."""

    def __init__(self, client: Client, health_clients: tuple[Client, Client] | None = None) -> None:
        self.client = client
        self._lock = threading.Lock()
        # Rebuilds, in the background, the health buckets each batch touched. clickhouse-connect serialises calls
        # per client handle: handles of their own (one per rebuilding thread) keep those rebuilds from queueing in
        # front of inserts, or of each other.
        self.health = HealthAggregator(*(health_clients or (client,)))
        # called with each batch after its insert returned, outside the lock (the alert evaluator hooks in here)
        self.listeners: list[Callable[[list[Event]], None]] = []

    def write(self, events: Iterable[Event]) -> dict[Signal, int]:
        by_model: dict[type[Event], list[Event]] = defaultdict(list)
        for event in events:
            by_model[type(event)].append(event)
        written: dict[Signal, int] = {}
        with self._lock:
            for model, batch in by_model.items():
                self._insert(model, batch)
                written[model.signal] = len(batch)
            self.health.mark(e for batch in by_model.values() for e in batch)
        if self.listeners:
            stored = [e for batch in by_model.values() for e in batch]
            for listener in self.listeners:
                listener(stored)
        return written

    def write_isolating(self, groups: list[list[Event]]) -> list[list[Refused]]:
        """Write several senders' events together; if the store refuses the write, find the events it refuses
        (halving the batch), store all the others, and store each refused event as a dead letter with the store's
        reason. Returns, for each group, its own refused events with the dead letters they became.

        Raises only when the store takes nothing, not even a dead letter: an outage, not a bad record.
        """
        events = [event for group in groups for event in group]
        try:
            self.write(events)
            return [[] for _ in groups]
        except Exception as exc:
            if not _is_data_error(exc):
                raise  # the store is down, full or lacks a table: nobody's record is at fault
        refused: dict[int, DeadLetter] = {}
        self._store_or_split(events, refused)
        return [[(e, refused[id(e)]) for e in group if id(e) in refused] for group in groups]

    def _store_or_split(self, events: list[Event], refused: dict[int, DeadLetter]) -> None:
        try:
            self.write(events)
            return
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            if len(events) > 1:
                middle = len(events) // 2
                self._store_or_split(events[:middle], refused)
                self._store_or_split(events[middle:], refused)
                return
            error = exc
        (event,) = events
        # json (not orjson) writes any string, a lone surrogate included, as an escape
        raw = json.dumps(event.model_dump(mode="json"), default=str)
        letter = dead_letter(
            event.source, f"the store refused this record: {_first_line(error)}", raw, tenant=event.tenant
        )
        self.write([letter])  # if even this fails, the store is down: the caller answers 503
        refused[id(event)] = letter

    def _insert(self, model: type[Event], batch: list[Event]) -> None:
        table, names = TABLES[model.signal], _columns(model)
        if model is not DeadLetter:  # raw bytes have no JSON form
            try:
                # The fields as they are, serialised by orjson (C) and parsed by ClickHouse (C++): less CPU than
                # clickhouse-connect building Native columns in Python (10-20 % of the insert, measured here), and
                # the same rows (JSON has no NaN: a NaN float is stored as NULL).
                body = orjson.dumps([event.__dict__ for event in batch])
            except orjson.JSONEncodeError:
                pass  # a lone surrogate in some string: the Native path below stores it as it always did
            else:
                self.client.raw_insert(table, names, body, fmt="JSONEachRow", settings=_JSON_INSERT_SETTINGS)
                return
        columns = list(zip(*map(attrgetter(*names), batch), strict=True))
        self.client.insert(table, columns, column_names=names, column_oriented=True)


# What the store (or the client, serialising) says when a value can't be held, as opposed to an outage: ClickHouse's
# error names for bad input, and the Python errors of turning a value into a column.
_DATA_ERRORS = (
    "CANNOT_PARSE", "VALUE_IS_OUT_OF_RANGE", "INCORRECT_DATA", "TYPE_MISMATCH", "CANNOT_CONVERT_TYPE",
    "TOO_LARGE_STRING_SIZE", "CANNOT_READ_ARRAY_FROM_TEXT", "ARGUMENT_OUT_OF_BOUND", "DECIMAL_OVERFLOW",
    "INCORRECT_NUMBER_OF_COLUMNS", "ILLEGAL_TYPE_OF_ARGUMENT", "BAD_ARGUMENTS",
)  # fmt: skip


def _is_data_error(error: BaseException) -> bool:
    if isinstance(error, (DataError, ValueError, TypeError, OverflowError)):  # UnicodeEncodeError: a ValueError
        return True
    text = str(error)
    return any(name in text for name in _DATA_ERRORS)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def stored_counts(events: list[Event], refused: list[list[Refused]]) -> dict[Signal, int]:
    """Events stored per signal: every event, less the refused ones, plus the dead letters they became."""
    out: dict[Signal, int] = {}
    for event in events:
        out[event.signal] = out.get(event.signal, 0) + 1
    for pairs in refused:
        for event, _ in pairs:
            out[event.signal] -= 1
            out[Signal.DEAD_LETTER] = out.get(Signal.DEAD_LETTER, 0) + 1
    return out
