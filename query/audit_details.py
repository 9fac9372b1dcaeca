"""What a CloudTrail call asked for and what it answered, beside each audit row: ``request_parameters``,
``response_elements`` and ``additional_event_data``, taken from the stored record (``audit_events.raw``).

An answer stays small whatever a record holds: a part over ``MAX_PART_BYTES`` is not read out of the store at all,
and what is read is cut to ``MAX_NODES`` values, ``MAX_ITEMS`` keys or items per object or list, ``MAX_DEPTH``
levels and ``MAX_STRING`` characters per string; each cut leaves a marker saying what was left out
(``CUT_KEY`` in an object, a last string item in a list, a suffix on a string). The values are JSON data, never
markup: the console shows them as text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from fnscope.query.runner import QueryRunner

PARTS = {
    "request_parameters": "requestParameters",
    "response_elements": "responseElements",
    "additional_event_data": "additionalEventData",
}
MAX_PART_BYTES = 64 * 1024
MAX_NODES = 400
MAX_ITEMS = 50
MAX_DEPTH = 8
MAX_STRING = 1000
CUT_KEY = "…"

_EXTRACTS = ", ".join(
    f"JSONExtractRaw(raw, '{key}') AS {name}_raw, "
    f"if(length({name}_raw) <= {MAX_PART_BYTES}, {name}_raw, '') AS {name}, length({name}_raw) AS {name}_bytes"
    for name, key in PARTS.items()
)
# Each version's parts (an identical re-delivery has the same record), found by the event id's bloom filter inside
# the page's time span.
_DETAILS_SQL = (
    f"SELECT event_id, content, {_EXTRACTS} FROM audit_events WHERE tenant = {{tenant:String}} "
    "AND time >= {lo:DateTime64(3)} AND time <= {hi:DateTime64(3)} AND event_id IN {ids:Array(String)} "
    "LIMIT 1 BY event_id, content"
)


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes


def bounded(value: Any, budget: _Budget | None = None, depth: int = 0) -> Any:
    """``value`` (parsed JSON) cut to the limits above, with markers where something was left out."""
    budget = budget or _Budget(MAX_NODES)
    budget.nodes -= 1
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else f"{value[:MAX_STRING]}… [cut: {len(value):,} characters]"
    if not isinstance(value, (dict, list)):
        return value
    if depth >= MAX_DEPTH or budget.nodes <= 0:
        return f"[cut: {_size(value)} not shown]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS or budget.nodes <= 0:
                out[CUT_KEY] = f"{len(value) - i:,} more keys not shown"
                break
            out[str(key)[:MAX_STRING]] = bounded(item, budget, depth + 1)
        return out
    items: list[Any] = []
    for i, item in enumerate(value):
        if i >= MAX_ITEMS or budget.nodes <= 0:
            items.append(f"{CUT_KEY} {len(value) - i:,} more items not shown")
            break
        items.append(bounded(item, budget, depth + 1))
    return items


def _size(value: dict[str, Any] | list[Any]) -> str:
    return f"{len(value):,} {'keys' if isinstance(value, dict) else 'items'}"


def part(text: str, size: int) -> Any:
    """One part of a record from the store: its JSON bounded, null when the record has none."""
    if size > MAX_PART_BYTES:
        return {CUT_KEY: f"{size:,} bytes, too large to show here: the whole record is in the store"}
    if not text:
        return None
    try:
        return bounded(orjson.loads(text))
    except orjson.JSONDecodeError:
        return bounded(text)


def with_details(runner: QueryRunner, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event row (with ``event_id``, ``content`` and ``time``) with the three parts of its record."""
    events = [row for row in rows if "event_id" in row and "content" in row and row.get("time")]
    if not events:
        return rows
    times = [datetime.fromisoformat(row["time"]) if isinstance(row["time"], str) else row["time"] for row in events]
    params = {"tenant": tenant, "lo": min(times), "hi": max(times), "ids": sorted({r["event_id"] for r in events})}
    found = {(d["event_id"], d["content"]): d for d in runner.rows(_DETAILS_SQL, params)}
    for row in events:
        detail = found.get((row["event_id"], row["content"]), {})
        for name in PARTS:
            row[name] = part(detail.get(name, ""), detail.get(f"{name}_bytes", 0))
    return rows
