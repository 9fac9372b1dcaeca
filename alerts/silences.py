"""Silences: hold back the notifications of matching alerts for a while (their state still changes).

Two kinds, matched the same way: those in ``fnscope.yaml`` (``alerts.silences``), and those made through the API or
the console, kept in the store (``alert_silences``, each holding only its own tenant's alerts) so that every process
that evaluates alerts reads them and a restart keeps them. The stored ones are read again whenever a notification is
about to go out, so one made a moment before an alert fires already holds it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fnscope.alerts.config import Silence

log = logging.getLogger("fnscope.alerts")


def matching_silence(silences: list[Silence], labels: dict[str, str], at: float) -> Silence | None:
    """The first silence in force at ``at`` whose matchers all equal the alert's labels (``rule`` included)."""
    when = datetime.fromtimestamp(at, UTC)
    for silence in silences:
        if silence.starts_at is not None and when < silence.starts_at:
            continue
        if silence.ends_at is not None and when >= silence.ends_at:
            continue
        if all(labels.get(k) == v for k, v in silence.matchers.items()):
            return silence
    return None


class Silences:
    """The configured silences and, from ``read_stored``, those in the store; the store's last good answer is kept
    when it does not answer (a notification is then held back as it last was, rather than the evaluation failing)."""

    def __init__(self, configured: list[Silence], read_stored: Callable[[], list[Silence]] | None = None) -> None:
        self.configured, self.read_stored = configured, read_stored
        self._stored: list[Silence] = []

    def current(self) -> list[Silence]:
        if self.read_stored is not None:
            try:
                self._stored = self.read_stored()
            except Exception:  # noqa: BLE001 - the store is down: the evaluator carries on with what it knew
                log.exception("could not read the stored silences")
        return [*self.configured, *self._stored]
