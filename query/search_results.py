"""What search hands back besides rows: opaque cursors/refs to a line, and the spans of matched terms."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import re2

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


class Highlighter:
    """Marks every positive term the way the query matched it (ASCII-only case folding).

    A user's ``/regex/`` runs on RE2, as ClickHouse's ``match`` does: linear time whatever the pattern, so a
    pathological one (``/(a+)+b/``) costs no more than any other. Words and phrases are escaped literals, with
    Python's ``re`` for the word-boundary lookarounds RE2 lacks.
    """

    def __init__(self, terms: list[Text | Regex]) -> None:
        words: list[str] = []
        patterns: list[str] = []
        for term in terms:
            if isinstance(term, Regex):
                patterns.append(f"(?{'i' if term.ignore_case else '-i'}:{term.pattern})")
            elif not term.phrase and tokens(term.text) == [term.text]:
                words.append(f"(?<!{_TOKEN_CHAR}){re.escape(term.text)}(?!{_TOKEN_CHAR})")
            else:
                words.append(re.escape(term.text))
        self._words = re.compile("|".join(f"(?:{w})" for w in words), re.IGNORECASE | re.ASCII) if words else None
        self._regex = _re2("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def spans(self, message: str, limit: int = 100) -> list[list[int]]:
        """[start, end) character offsets of the matched terms, non-overlapping, in order."""
        found: list[tuple[int, int]] = []
        for pattern in (self._words, self._regex):
            if pattern is not None:
                for match in pattern.finditer(message):
                    if match.end() > match.start():
                        found.append((match.start(), match.end()))
                        if len(found) >= limit * 2:
                            break
        out: list[list[int]] = []
        for start, end in sorted(found):
            if out and start < out[-1][1]:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        return out[:limit]


def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error:
        return None  # a construct RE2 lacks: the line matched in the store, it just isn't marked


def highlighter(terms: list[Text | Regex]) -> Highlighter | None:
    return Highlighter(terms) if terms else None


def spans(marks: Highlighter | None, message: str, limit: int = 100) -> list[list[int]]:
    return marks.spans(message, limit) if marks is not None else []


def row_out(row: dict[str, Any], marks: Highlighter | None) -> dict[str, Any]:
    """A result line as the API shows it; ``_ms`` (the exact time) becomes the line's ``ref``."""
    ms = row.pop("_ms")
    row["ref"] = encode_ref(ms, row["event_id"])
    row["highlights"] = spans(marks, row["message"])
    return row
