"""Field-size limits: every string longer than the limit is cut and says so, wherever it sits in the event."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fnscope.collector.field_limits import MARKER, truncate_fields
from fnscope.events import AuditEvent, FunctionLog

LIMIT = 600  # larger than the rest of an event's JSON, so a long string decides alone
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

# Lengths around the limit, and characters that JSON escapes or writes in several bytes.
texts = st.text(alphabet=st.sampled_from('ab"\\\n\x01é€😀'), max_size=8) | st.builds(
    lambda n, c: c * n, st.integers(LIMIT - 2, LIMIT + 2), st.sampled_from(["x", '"', "é", "😀"])
)


def cut(value: str) -> str:
    return value if len(value) <= LIMIT else value[:LIMIT] + MARKER.format(len(value) - LIMIT)


@settings(max_examples=300, deadline=None)
@given(message=texts, request_id=texts, fields=st.dictionaries(st.text(max_size=5), texts, max_size=3))
def test_log_line_strings_are_cut_exactly_at_the_limit(message: str, request_id: str, fields: dict[str, str]) -> None:
    event = FunctionLog(event_id="e", time=NOW, source="test", message=message, request_id=request_id, fields=fields)
    long = [v for v in (message, request_id, *fields.values()) if len(v) > LIMIT]
    assert truncate_fields([event], LIMIT) == len(long)
    assert event.message == cut(message)
    assert event.request_id == cut(request_id)
    assert event.fields == {k: cut(v) for k, v in fields.items()}


@settings(max_examples=200, deadline=None)
@given(resources=st.lists(texts, max_size=4), raw=texts)
def test_list_items_are_cut_too(resources: list[str], raw: str) -> None:
    event = AuditEvent(event_id="e", time=NOW, source="test", resources=resources, raw=raw)
    long = [v for v in (*resources, raw) if len(v) > LIMIT]
    assert truncate_fields([event], LIMIT) == len(long)
    assert event.resources == [cut(v) for v in resources]
    assert event.raw == cut(raw)


def test_a_lone_surrogate_does_not_hide_a_long_string() -> None:
    # JSON cannot encode a lone surrogate (a parser's lenient path can produce one): the event is looked at field
    # by field instead.
    event = FunctionLog(event_id="e", time=NOW, source="test", message="")
    event.message, event.request_id = "\ud800" + "x" * LIMIT, "\udfff"
    assert truncate_fields([event], LIMIT) == 1
    assert event.message == cut("\ud800" + "x" * LIMIT) and event.request_id == "\udfff"


def test_short_events_are_left_as_they_are() -> None:
    events = [
        FunctionLog(event_id=str(i), time=NOW, source="test", message="m" * LIMIT, fields={"k": "v" * LIMIT})
        for i in range(3)
    ]
    assert truncate_fields(events, LIMIT) == 0
    assert all(e.message == "m" * LIMIT and e.fields == {"k": "v" * LIMIT} for e in events)
