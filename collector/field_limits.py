"""Field sizes: an oversized string is cut to the limit and says so, rather than costing the whole record.

A 5 MB stack trace in one log line is still worth its first 256 KiB; refusing it would lose the line and the
request's other records would have to be retried by the sender for nothing. (Past the event model's own hard
cap of 1,000,000 characters the parser cannot build the event at all, and the record is dead-lettered with its
raw bytes instead.)
"""

from __future__ import annotations

from typing import Any

from fnscope.events import Event

MARKER = "…[truncated by fnscope: {} more characters]"


def truncate_fields(events: list[Event], max_chars: int) -> int:
    """Cut every string field (dict values and list items too) longer than max_chars; returns how many were cut."""
    cut = 0
    for event in events:
        for name in type(event).model_fields:
            value = getattr(event, name)
            new, n = _truncated(value, max_chars)
            if n:
                setattr(event, name, new)  # no validation on assignment; the value only shrank
                cut += n
    return cut


def _truncated(value: Any, max_chars: int) -> tuple[Any, int]:
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value, 0
        return value[:max_chars] + MARKER.format(len(value) - max_chars), 1
    if isinstance(value, dict):
        pairs = {k: _truncated(v, max_chars) for k, v in value.items()}
        n = sum(c for _, c in pairs.values())
        return ({k: v for k, (v, _) in pairs.items()}, n) if n else (value, 0)
    if isinstance(value, list):
        items = [_truncated(v, max_chars) for v in value]
        n = sum(c for _, c in items)
        return ([v for v, _ in items], n) if n else (value, 0)
    return value, 0
