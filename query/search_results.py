"""What search hands back besides rows: opaque cursors/refs to a line, and the spans of matched terms."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from fnscope.query.search_language import Regex, Text, tokens

# a token character as ClickHouse's splitByNonAlpha sees it: ASCII letters/digits or anything non-ASCII
_TOKEN_CHAR = r"[A-Za-z0-9\u0080-\U0010ffff]"


class BadCursor(ValueError):
    pass


def encode_ref(time_ms: int, event_id: str) -> str:
    """An opaque pointer to one line: its time and event id (the last sort key of a page)."""
    return base64.urlsafe_b64encode(orjson.dumps([time_ms, event_id])).decode().rstrip("=")


def decode_ref(ref: str) -> tuple[int, str]:
    try:
        time_ms, event_id = orjson.loads(base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4)))
    except (ValueError, TypeError) as exc:
        raise BadCursor("not a cursor this server gave out") from exc
    if not isinstance(time_ms, int) or not isinstance(event_id, str) or not 0 <= time_ms < 2**53:
        raise BadCursor("not a cursor this server gave out")
    return time_ms, event_id


def highlighter(terms: list[Text | Regex]) -> re.Pattern[str] | None:
    """One pattern marking every positive term the way the query matched it (ASCII-only case folding)."""
    parts: list[str] = []
    for term in terms:
        if isinstance(term, Regex):
            try:
                re.compile(term.pattern)
            except re.error:
                continue  # an RE2 construct Python lacks: the line matched, it just isn't marked
            parts.append(f"(?{'i' if term.ignore_case else '-i'}:{term.pattern})")
        elif not term.phrase and tokens(term.text) == [term.text]:
            parts.append(f"(?<!{_TOKEN_CHAR}){re.escape(term.text)}(?!{_TOKEN_CHAR})")
        else:
            parts.append(re.escape(term.text))
    if not parts:
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE | re.ASCII)
    except re.error:
        return None


def spans(pattern: re.Pattern[str] | None, message: str, limit: int = 100) -> list[list[int]]:
    """[start, end) character offsets of the matched terms, non-overlapping, in order."""
    if pattern is None:
        return []
    out: list[list[int]] = []
    for match in pattern.finditer(message):
        if match.end() > match.start():
            out.append([match.start(), match.end()])
            if len(out) >= limit:
                break
    return out


def row_out(row: dict[str, Any], pattern: re.Pattern[str] | None) -> dict[str, Any]:
    """A result line as the API shows it; ``_ms`` (the exact time) becomes the line's ``ref``."""
    ms = row.pop("_ms")
    row["ref"] = encode_ref(ms, row["event_id"])
    row["highlights"] = spans(pattern, row["message"])
    return row
