"""The embedded group commit against the real store: which requests share a write, and that every one is stored."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from fnscope.events import Event, FunctionLog, Signal
from fnscope.processors.group_commit import GroupCommitWriter
from fnscope.processors.writer import EventWriter
from tests.test_audit_support import chdb_store


class ObservedWriter(EventWriter):
    """The real writer, recording which requests (by function name) each write carried; it can hold its first
    write until told to go on, so a test can send while a write is running."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.writes: list[list[str]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def write(self, events: Iterable[Event]) -> dict[Signal, int]:
        events = list(events)
        self.writes.append(sorted({e.function for e in events if isinstance(e, FunctionLog)}))
        if len(self.writes) == 1:
            self.first_started.set()
            assert self.release_first.wait(10)
        return super().write(events)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[ObservedWriter]:
    with chdb_store(tmp_path / "store") as client:
        observed = ObservedWriter(client)
        yield observed
        observed.health.close()


def request(n: int) -> list[Event]:
    """One sender's request: three log lines of its own function."""
    now = datetime.now(UTC)
    return [
        FunctionLog(event_id=f"req-{n}-{i}", time=now, source="telemetry", function=f"req-{n}", message=f"line {i}")
        for i in range(3)
    ]


def stored_functions(client: Client) -> list[str]:
    rows = client.query("SELECT DISTINCT function FROM function_logs ORDER BY function").result_rows
    return [function for (function,) in rows]


def test_requests_arriving_during_a_lone_write_share_the_next_write(writer: ObservedWriter) -> None:
    """Senders spread out in time (Lambda extensions posting at moments of their own): one that arrives while a
    lone request is being written means others are at work, so the writer lets the next few gather."""
    sink = GroupCommitWriter(writer)
    try:
        first = sink.submit(request(0))
        assert writer.first_started.wait(10)
        second = sink.submit(request(1))  # arrives during the first write
        threading.Timer(0.05, writer.release_first.set).start()
        first.result(10)
        third = sink.submit(request(2))  # arrives just after it: within the rest, so it joins the second
        second.result(10)
        third.result(10)
    finally:
        sink.close()
    assert writer.writes == [["req-0"], ["req-1", "req-2"]]
    assert stored_functions(writer.client) == ["req-0", "req-1", "req-2"]
