"""Firehose HTTP-endpoint deliveries: `{requestId, timestamp, records: [{data: base64}]}`.

A record is a CloudWatch Logs subscription payload (usually gzip), or JSON / plain-text log lines sent straight
to the stream. Firehose->Lambda transformation events (`invocationId`, records with `recordId`) have the same
records list and are accepted the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fnscope.collector.formats import cloudwatch
from fnscope.collector.formats.base import Parsed
from fnscope.collector.formats.lambda_text import LineSource, parse_with
from fnscope.decoding.budget import take_records
from fnscope.decoding.compression import inflate_base64
from fnscope.decoding.errors import BadPayload, UnusableBody
from fnscope.decoding.jsontext import as_text, compact_json, decode_documents_strict, json_bytes, load_body
from fnscope.events import stable_id
from fnscope.sink import IngestContext

SOURCE = "firehose"


class _BadRecord(ValueError):
    """One record cannot be used; the rest of the delivery is kept."""


def parse(body: bytes, ctx: IngestContext) -> Parsed:
    doc = load_body(body, "Firehose body is not JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise UnusableBody("Firehose body is not an object with a `records` array")
    request_id = as_text(doc.get("requestId")) or as_text(doc.get("invocationId"))
    delivered = _epoch_ms(doc.get("timestamp")) or datetime.now(UTC)
    take_records(len(doc["records"]))
    parsed = Parsed(meta={"request_id": request_id, "records": len(doc["records"])})
    src = LineSource.from_ctx(ctx, function=ctx.param("function"), source=SOURCE)
    for index, record in enumerate(doc["records"]):
        try:
            _record(record, index, request_id, delivered, src, ctx, parsed)
        except _BadRecord as exc:
            parsed.reject(ctx, SOURCE, f"Firehose record {index}: {exc}", json_bytes(record))
    return parsed


def _record(
    record: Any, index: int, request_id: str, delivered: datetime, src: LineSource, ctx: IngestContext, parsed: Parsed
) -> None:
    if not isinstance(record, dict):
        raise _BadRecord("not an object")
    data = record.get("data")
    if isinstance(data, dict):  # already-decoded payload, as in the Firehose docs' CloudWatch example
        _merge(parsed, cloudwatch.parse_payload(data, ctx, SOURCE))
        return
    if not isinstance(data, str):
        raise _BadRecord("missing or non-string `data`")
    try:
        raw = inflate_base64(data, "`data` is not valid base64")
    except BadPayload as exc:
        raise _BadRecord(str(exc)) from None
    time = _epoch_ms(record.get("approximateArrivalTimestamp")) or delivered
    base_id = (request_id, index)
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            values, trailing = decode_documents_strict(raw)
        except BadPayload:
            values, trailing = [], ("", b"")
        if trailing is None:
            _json_values(values, base_id, time, src, ctx, parsed)
            return
    _text_lines(raw, base_id, time, src, ctx, parsed)


def _json_values(
    values: list[Any], base_id: tuple[str, int], time: datetime, src: LineSource, ctx: IngestContext, parsed: Parsed
) -> None:
    if len(values) == 1 and isinstance(values[0], list):  # one JSON array of lines
        values = values[0]
    take_records(len(values))
    for line_index, value in enumerate(values):
        if isinstance(value, dict) and ("messageType" in value or "logEvents" in value or "awslogs" in value):
            _merge(parsed, cloudwatch.parse_payload(value, ctx, SOURCE))
        else:
            line = value if isinstance(value, dict) else compact_json(value)
            event_id = stable_id(*base_id, line_index)
            parsed.collect(ctx, SOURCE, json_bytes(value), lambda: parse_with(src, line, time, event_id))  # noqa: B023


def _text_lines(
    raw: bytes, base_id: tuple[str, int], time: datetime, src: LineSource, ctx: IngestContext, parsed: Parsed
) -> None:
    text = raw.decode("utf-8", "replace")
    take_records(text.count("\n") + 1)  # before splitting: a record may inflate to a million lines
    for line_index, line in enumerate(text.splitlines()):
        if line.strip():
            event_id = stable_id(*base_id, line_index)
            parsed.collect(ctx, SOURCE, line, lambda: parse_with(src, line, time, event_id))  # noqa: B023


def _merge(parsed: Parsed, other: Parsed) -> None:
    parsed.extend(other)
    cloudwatch.merge_meta(parsed.meta, other.meta)


def _epoch_ms(value: Any) -> datetime | None:
    """Firehose timestamps are epoch milliseconds, as a number or (sometimes) a string."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
