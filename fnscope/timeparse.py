"""User-facing times: relative durations (15m, 1h, 7d, 90d) or ISO-8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# Times a query may name: what the store's DateTime64 columns and partitions hold sensibly.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_DURATION = timedelta(days=100 * 366)


def iso_utc(value: datetime, timespec: str = "auto") -> str:
    """A time as fnscope writes it (API answers, records, notices): ISO-8601 in UTC with a Z. A naive time is UTC,
    as the store's DateTime64(3, 'UTC') columns may come back."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 7d)")
    try:
        value = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        value = MAX_DURATION * 2
    if value > MAX_DURATION:
        raise ValueError(f"duration {text.strip()!r} is longer than a hundred years")
    return value


def parse_iso_utc(text: str) -> datetime:
    """An ISO-8601 timestamp as an aware datetime; one without an offset is UTC. Raises ValueError."""
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """'15m' means 15 minutes before now; anything else must be ISO-8601 (UTC if no offset)."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        value = now - parse_duration(text)
        if value < EARLIEST:
            raise ValueError(f"{text.strip()!r} reaches back before {EARLIEST.year}")
        return value
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (use 15m, 1h, 7d or ISO-8601 like 2026-11-27T05:00:00Z)") from exc
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{text.strip()!r} is out of range ({EARLIEST.year} to {LATEST.year})")
    return value
