"""The alert service writes alert state to the real store: transitions at once, a moving value at most once a
second (an insert per batch of events was a visible share of `fnscope up`'s CPU under load)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from fnscope.alerts.config import AlertSettings
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.notify import Notifier
from fnscope.alerts.runtime import SAVE_EVERY_S, AlertService
from fnscope.alerts.signals import Signals
from fnscope.alerts.store import AlertStore
from fnscope.events import Event
from tests.test_alerts_rules import throttle
from tests.test_audit_support import chdb_store


class CountingStore(AlertStore):
    """The real store, counting its state inserts."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.saves: list[float] = []

    def save_states(self, instances: list[Instance]) -> None:
        super().save_states(instances)
        self.saves.append(time.monotonic())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    with chdb_store(tmp_path / "store") as client:
        yield CountingStore(client)


def stored(store: AlertStore, rule: str) -> list[tuple[str, float]]:
    rows = store.client.query(
        "SELECT state, value FROM alert_state FINAL WHERE rule = {rule:String}", parameters={"rule": rule}
    ).result_rows
    return [(state, value) for state, value in rows]


def test_transitions_are_written_at_once_and_moving_values_together_once_a_second(store: CountingStore) -> None:
    config = AlertSettings(builtins=True, rules=[{"name": "function-throttled", "for_s": 0, "window_s": 600}])
    evaluator = Evaluator(config.effective_rules(), Signals(3600, 1000), config.silences)
    service = AlertService(config, evaluator, store, Notifier([], store, "http://fnscope.invalid")).start()
    functions = [f"fn-{i}" for i in range(10)]
    try:
        service.listener(throttle(functions[0], 1, time.time()))
        deadline = time.monotonic() + 5
        while not stored(store, "function-throttled") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored(store, "function-throttled") == [("firing", 1.0)]  # firing at once (for_s is 0)
        for function in functions[1:]:
            service.listener(throttle(function, 1, time.time()))
        deadline = time.monotonic() + 5  # evaluated together, within EVALUATE_EVERY_S of the first pass
        while len(stored(store, "function-throttled")) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(stored(store, "function-throttled")) == 10
        # 3 s of batches, each moving one of the ten alerts' values (each is reported about once a second, at its
        # own moment): written together about once a second, not once per alert
        started = time.monotonic()
        for i in range(60):
            service.listener(throttle(functions[i % 10], 1, time.time()))
            time.sleep(0.05)
        during = [t for t in store.saves if t > started]
        assert 2 <= len(during) <= 3 / SAVE_EVERY_S + 2, during
        values = dict.fromkeys(functions, 0.0)
        rows = store.client.query("SELECT labels['function'], value FROM alert_state FINAL").result_rows
        values.update(dict(rows))
        assert all(value > 1 for value in values.values()), values  # every alert's moving value was written
    finally:
        service.close()


class SlowEvaluator(Evaluator):
    """The real evaluator, with each pass taking a while (as a large fleet's do), counting the events per pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes: list[int] = []

    def ingest(self, events: list[Event]) -> tuple[list[Instance], list[Notice]]:
        self.passes.append(len(events))
        time.sleep(0.2)
        return super().ingest(events)


def test_batches_stored_during_a_pass_are_evaluated_together_and_still_page(store: CountingStore) -> None:
    """Under load the writer stores batches faster than one pass each can take: the queue must not grow, and every
    batch's throttles still count. 30 batches, each throttling a function of its own, in a few passes."""
    config = AlertSettings(builtins=True, rules=[{"name": "function-throttled", "for_s": 0, "window_s": 600}])
    evaluator = SlowEvaluator(config.effective_rules(), Signals(3600, 1000), config.silences)
    service = AlertService(config, evaluator, store, Notifier([], store, "http://fnscope.invalid")).start()
    try:
        for i in range(30):
            service.listener(throttle(f"fn-{i}", 1, time.time()))
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while len(stored(store, "function-throttled")) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(stored(store, "function-throttled")) == [("firing", 1.0)] * 30
        assert sum(evaluator.passes) == sum(len(throttle(f"fn-{i}", 1, time.time())) for i in range(30))
        assert len(evaluator.passes) <= 4, evaluator.passes  # 30 batches a pass each: 6 s of passes
    finally:
        service.close()
