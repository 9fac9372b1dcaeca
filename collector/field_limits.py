"""Field sizes: an oversized string is cut to the limit and says so, rather than costing the whole record.

A 5 MB stack trace in one log line is still worth its first 256 KiB; refusing it would lose the line and the
request's other records would have to be retried by the sender for nothing. (Past the event model's own hard
cap of 1,000,000 characters the parser cannot build the event at all, and the record is dead-lettered with its
raw bytes instead.)
"""

from __future__ import annotations

from typing import Any

import orjson

from fnscope.events import Event

MARKER = "…[truncated by fnscope: {} more characters]"


def truncate_fields(events: list[Event], max_chars: int) -> int:
    """Cut every string field (dict values and list items too) longer than max_chars; returns how many were cut."""
    cut = 0
    for event in events:
        if _all_short(event, max_chars):
            continue
        for name in type(event).model_fields:
            value = getattr(event, name)
            new, n = _truncated(value, max_chars)
            if n:
                setattr(event, name, new)  # no validation on assignment; the value only shrank
                cut += n
    return cut


def _all_short(event: Event, max_chars: int) -> bool:
    """True when no string in the event can be longer than max_chars: its whole JSON is no longer than that.

    A string of n characters is at least n + 2 bytes of JSON, so this never skips a long one. It runs for every
    event of every request, and one C call is about a third of the cost of looking at each field in Python.
    """
    try:
        return len(orjson.dumps(event.__dict__)) <= max_chars
    except (TypeError, orjson.JSONEncodeError):  # bytes, a lone surrogate, a huge int: look field by field
        return False


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
