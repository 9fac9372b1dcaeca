"""JSON text in and out: the documents in a body, compact serialisation, and value coercions shared by parsers.

A body may hold one document, NDJSON, or documents back to back. Two readers split it, and they differ on
purpose: ``iter_documents_lenient`` (CloudTrail) reports each undecodable stretch and carries on after it,
accepting raw control characters and invalid UTF-8; ``decode_documents_strict`` (CloudWatch Logs, Firehose)
stops at the first byte that is not JSON and hands back the rest, so the caller can decide what it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fnscope.decoding.errors import BadPayload, UnusableBody

# Where a document may start after an undecodable stretch: a line opening an object or array.
_RESYNC = re.compile(r"\n(?=[\[{])")
_WS = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


def load_body(body: bytes, failure: str) -> Any:
    """The body as one JSON document; ``UnusableBody("{failure}: {why}")`` when it is not one."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:  # JSON orjson refuses but the stdlib reads: a number beyond a double (1e400), costing only its record
            return json.loads(body)
        except (ValueError, RecursionError):
            raise UnusableBody(f"{failure}: {exc}") from exc


# --- writing --------------------------------------------------------------------------------------------------


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON text; falls back to the stdlib for what orjson refuses (integers beyond 64 bits)."""
    try:
        if sort_keys:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        return orjson.dumps(value).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=False, default=str)
        except (RecursionError, ValueError):  # nested deeper than any encoder goes: keep it as text
            return repr(value)


def json_bytes(value: Any) -> bytes:
    """A decoded value as bytes for a dead letter's raw: its JSON, or its repr where orjson refuses it."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return repr(value).encode()


def as_text(value: Any) -> str:
    """A JSON value as a plain string field: None is empty, strings as they are, anything else ``str()``."""
    return value if isinstance(value, str) else "" if value is None else str(value)


# --- reading documents ----------------------------------------------------------------------------------------


@dataclass
class Undecodable:
    """A stretch of the body that is not JSON."""

    text: str
    error: str


def iter_documents_lenient(body: bytes) -> Iterator[Any | Undecodable]:
    """Every JSON document in the body: one document, NDJSON, or documents back to back.

    Undecodable stretches (a truncated record, a line of text) come back as ``Undecodable`` reaching up to the
    next line that opens an object or array, so one broken block is one dead letter and the rest survives.
    """
    try:
        yield orjson.loads(body)
        return
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    try:  # fast path: clean NDJSON
        docs = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        yield from _scan_documents(text)
    else:
        yield from docs


def _scan_documents(text: str) -> Iterator[Any | Undecodable]:
    # strict=False: doc examples and hand-edited files carry raw control characters inside strings.
    decoder = json.JSONDecoder(strict=False)
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= end:
            return
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or an integer of 4300+ digits
            match = _RESYNC.search(text, pos + 1)
            stop = match.start() if match else end
            if isinstance(exc, json.JSONDecodeError):
                detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            else:
                detail = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long"
            yield Undecodable(text[pos:stop], f"not JSON ({detail})")
            pos = stop
            continue
        yield doc


def decode_documents_strict(data: bytes) -> tuple[list[Any], tuple[str, bytes] | None]:
    """All JSON values of `{...}{...}` / NDJSON / one document, plus (reason, rest) for undecodable trailing bytes.

    Raises ``BadPayload`` for text that is not UTF-8 and for a body with no document at all.
    """
    try:
        return [orjson.loads(data)], None
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"not UTF-8 text: {exc}") from None
    values: list[Any] = []
    pos, end = _WS.match(text, 0).end(), len(text)
    while pos < end:
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:  # also an integer of 4300+ digits, or absurd nesting
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number too long or nesting too deep"
            return values, (f"not JSON at offset {pos}: {why}", text[pos:].encode())
        values.append(value)
        pos = _WS.match(text, pos).end()
    if not values:
        raise BadPayload("empty body")
    return values, None
