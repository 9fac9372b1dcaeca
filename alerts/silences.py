"""Silences: hold back the notifications of matching alerts for a while (their state still changes)."""

from __future__ import annotations

from datetime import UTC, datetime

from fnscope.alerts.config import Silence


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
