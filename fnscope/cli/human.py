"""Numbers and times as a person reads them: `1,204`, `$0.000029` (never `2.9e-05`), `1.36 s`, `5.9 %`,
`2 min ago`. Each takes what the API answers (None included) and gives the text a table cell shows."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fnscope.timeparse import parse_iso_utc


def count(value: Any) -> str:
    if value is None or value == "":
        return ""
    return f"{int(value):,}"


def number(value: Any) -> str:
    """About three significant digits, in fixed notation however small."""
    if value is None or value == "":
        return ""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def usd(value: Any) -> str:
    """Cents from a cent up; below that two significant digits (`$0.000029`), since per-function costs are tiny."""
    if value is None or value == "":
        return ""
    value = float(value)
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.{1 - math.floor(math.log10(abs(value)))}f}"


def millis(value: Any) -> str:
    """A duration given in milliseconds, in the unit that keeps it short: `43.2 ms`, `469 ms`, `1.36 s`, `2.5 min`."""
    if value is None or value == "":
        return ""
    ms = float(value)
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    return f"{ms / 60_000:.1f} min"


def percent(value: Any) -> str:
    """A ratio (0.0588) as a percentage (5.9 %)."""
    if value is None or value == "":
        return ""
    return f"{number(float(value) * 100)} %"


def ago(value: Any, now: datetime | None = None) -> str:
    """An ISO-8601 time relative to now: `just now`, `2 min ago`, `3 h ago`, `5 d ago`, `in 4 min`."""
    if value is None or value == "":
        return ""
    try:
        then = parse_iso_utc(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    span = abs(seconds)
    if span < 10:
        return "just now"
    unit, size = next((u, n) for u, n in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)) if span >= n)
    amount = int(span // size)
    return f"{amount} {unit} ago" if seconds > 0 else f"in {amount} {unit}"
