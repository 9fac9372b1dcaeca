"""The alert service in a process that stores events (`up`, `processor`): fed by the writer's listener hook."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from alerts.config import AlertSettings, Target
from alerts.evaluator import Evaluator
from alerts.instances import Instance, Notice
from alerts.notify import Notifier
from alerts.signals import Signals
from alerts.store import AlertStore
from fnscope.events import Event

if TYPE_CHECKING:
    from fnscope.config import Settings
    from processors.writer import EventWriter

log = logging.getLogger("fnscope.alerts")


def targets_of(settings: Settings) -> list[Target]:
    """FNSCOPE_ALERT_WEBHOOK_URL first (Slack's own hooks get Slack's format), then the configured targets."""
    out = list(settings.alerts.targets)
    url = settings.alert_webhook_url
    if url and all(t.url != url for t in out):
        out.insert(0, Target(url=url, format="slack" if "hooks.slack.com" in url else "json"))
    return out


def base_url_of(settings: Settings) -> str:
    return settings.alerts.public_url or f"http://{settings.host}:{settings.port}"


class AlertService:
    """Batches arrive on a queue (the writer never waits for evaluation); one thread evaluates and stores state."""

    def __init__(self, config: AlertSettings, evaluator: Evaluator, store: AlertStore, notifier: Notifier) -> None:
        self.config, self.evaluator, self.store, self.notifier = config, evaluator, store, notifier
        self._queue: queue.Queue[list[Event] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-evaluator", daemon=True)

    def start(self) -> AlertService:
        try:
            self.evaluator.restore(self.store.load_active())
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
        while True:
            try:
                batch = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                batch = []
            if batch is None:
                return
            try:
                if batch:
                    self._apply(*self.evaluator.ingest(batch))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.config.tick_s
                    self._apply(*self.evaluator.tick())
            except Exception:
                log.exception("alert evaluation failed")

    def _apply(self, changed: list[Instance], notices: list[Notice]) -> None:
        for notice in notices:  # notify first: a page should not wait on the state write
            self.notifier.submit(notice)
        try:
            self.store.save_states(changed)
        except Exception:
            log.exception("could not save alert state")


def start_alerts(settings: Settings, writer: EventWriter) -> AlertService:
    """Build the service over its own store connection and hook it onto the writer."""
    from processors.store import connect

    config = settings.alerts
    rules = config.effective_rules()
    keep_s = max((r.window_s for r in rules if r.enabled), default=60.0) + 60
    evaluator = Evaluator(
        rules, Signals(keep_s, settings.account_concurrency_limit, config.audit_max_age_s), config.silences
    )
    store = AlertStore(connect(settings.clickhouse_dsn()))
    notifier = Notifier(
        targets_of(settings), store, base_url_of(settings), config.delivery_attempts, config.delivery_timeout_s
    )
    service = AlertService(config, evaluator, store, notifier).start()
    writer.listeners.append(service.listener)
    atexit.register(service.close)  # stop using the store before the interpreter (and chDB) shuts down
    return service
