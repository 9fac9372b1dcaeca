"""The alert service in a process that stores events (`up`, `processor`): fed by the writer's listener hook."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from fnscope.alerts.config import AlertSettings, Target
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.notify import Notifier
from fnscope.alerts.signals import Signals
from fnscope.alerts.silences import Silences
from fnscope.alerts.store import AlertStore
from fnscope.canary import Policy
from fnscope.events import Event

log = logging.getLogger("fnscope.alerts")


# A pending or firing alert's new value is written at most this often, the latest of every alert in one insert:
# under load each batch the writer stores moves some alert's value, and an insert per batch was ~6 % of
# `fnscope up`'s CPU (chDB's cost per statement). A transition (pending, firing, resolved, or notified again) is
# written at once, so that a restart after a crash knows what was notified.
SAVE_EVERY_S = 1.0
# Stored batches are evaluated together at most this often. A pass measures every function a batch touched over
# each rule's window, so its cost is per pass, not per event: under load the writer stores several batches a
# second, and evaluating each alone cost more than a core for a 64-function fleet at 1,400 calls a second
# (bench/alert_signals.py). A throttle is paged this much later at most, well inside the 5 s promise.
EVALUATE_EVERY_S = 0.5


class AlertService:
    """Batches arrive on a queue (the writer never waits for evaluation); one thread evaluates and stores state."""

    def __init__(self, config: AlertSettings, evaluator: Evaluator, store: AlertStore, notifier: Notifier) -> None:
        self.config, self.evaluator, self.store, self.notifier = config, evaluator, store, notifier
        self._queue: queue.Queue[list[Event] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-evaluator", daemon=True)
        self._unsaved: dict[tuple[str, str, str], Instance] = {}
        # what a restart must know of each alert, as last written: its state and when it was notified
        self._saved_state: dict[tuple[str, str, str], tuple[str, float | None]] = {}
        self._transition = False
        self._saved_at = 0.0

    def start(self) -> AlertService:
        try:
            active = self.store.load_active()
            self.evaluator.restore(active)
            self.notifier.restore(active)
            self.evaluator.signals.reserved.update(self.store.load_limits())
        except Exception:
            log.exception("could not restore alert state")
        self.notifier.start()
        self._thread.start()
        return self

    def listener(self, events: list[Event]) -> None:
        """The writer's hook: called after each successful insert; cheap."""
        self._queue.put(events)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(10)
        self.notifier.close()

    def _run(self) -> None:
        next_tick = time.monotonic() + self.config.tick_s
        evaluated_at = float("-inf")
        closing = False
        while not closing:
            wake = min(next_tick, self._saved_at + SAVE_EVERY_S) if self._unsaved else next_tick
            try:
                batch = self._queue.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                batch = []
            if batch is None:
                break
            if batch:
                time.sleep(max(0.0, evaluated_at + EVALUATE_EVERY_S - time.monotonic()))
                batch, closing = self._with_queued(batch)
            try:
                if batch:
                    self._apply(*self.evaluator.ingest(batch))
                    evaluated_at = time.monotonic()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.config.tick_s
                    self._apply(*self.evaluator.tick())
            except Exception:
                log.exception("alert evaluation failed")
            self._save()
        self._save(force=True)

    def _with_queued(self, first: list[Event]) -> tuple[list[Event], bool]:
        """``first`` and every batch queued behind it, as one; and whether ``close`` came meanwhile."""
        events = list(first)
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return events, False
            if more is None:
                return events, True
            events.extend(more)

    def _apply(self, changed: list[Instance], notices: list[Notice]) -> None:
        for notice in notices:  # notify first: a page should not wait on the state write
            self.notifier.submit(notice)
        for instance in changed:
            key = (instance.tenant, instance.rule, instance.fingerprint)
            self._unsaved[key] = instance
            self._transition = self._transition or self._saved_state.get(key) != _notified(instance)

    def _save(self, force: bool = False) -> None:
        due = force or self._transition or time.monotonic() >= self._saved_at + SAVE_EVERY_S
        if not self._unsaved or not due:
            return
        try:
            self.store.save_states(list(self._unsaved.values()))
        except Exception:
            log.exception("could not save alert state")  # kept, and tried again at the next save
        else:
            for key, instance in self._unsaved.items():  # a resolved alert's next change is a new pending one
                if instance.state in ("resolved", "inactive"):
                    self._saved_state.pop(key, None)
                else:
                    self._saved_state[key] = _notified(instance)
            self._unsaved.clear()
            self._transition = False
        self._saved_at = time.monotonic()


def _notified(instance: Instance) -> tuple[str, float | None]:
    return instance.state, instance.last_notified


def start_alerts(
    config: AlertSettings,
    targets: list[Target],
    base_url: str,
    account_concurrency_limit: int,
    client: Client,
    listeners: list[Callable[[list[Event]], None]],
    canary_policy: Policy | None = None,
) -> AlertService:
    """Build the service over a store connection of its own and hook it onto the writer's ``listeners``."""
    rules = config.effective_rules()
    signals = Signals.for_rules(rules, account_concurrency_limit, config.audit_max_age_s)
    store = AlertStore(client)
    # the configured silences, and those made through the API (in the store, read as notifications are due)
    silences = Silences(config.silences, store.active_silences)
    evaluator = Evaluator(rules, signals, silences, canary_policy=canary_policy)
    notifier = Notifier(targets, store, base_url, config.delivery_attempts, config.delivery_timeout_s)
    service = AlertService(config, evaluator, store, notifier).start()
    listeners.append(service.listener)
    atexit.register(service.close)  # stop using the store before the interpreter (and chDB) shuts down
    return service
