"""CloudWatch Logs subscription payloads: DATA_MESSAGE / CONTROL_MESSAGE, as delivered directly, via Firehose
(gzip or zlib, several JSON objects back to back) or in the Lambda-trigger form `{"awslogs": {"data": ...}}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.formats.base import IngestContext, Parsed, UnusableBody
from collector.formats.lambda_text import LineSource, flatten, parse_with
from fnscope.events import stable_id

SOURCE = "cloudwatch"
# Lambda@Edge groups are `/aws/lambda/us-east-1.NAME`; function names cannot contain dots, so the prefix is safe.
_LAMBDA_GROUP = re.compile(r"/aws/lambda/(?:[a-z]{2}(?:-[a-z]+)+-\d\.)?([^/]+)$")
_STREAM_VERSION = re.compile(r"\d{4}/\d\d/\d\d/\[([^\]]+)\]")
_WS = re.compile(r"\s*")
_DECODER = json.JSONDecoder()
# Records inside a body were compressed separately, so the body-level bomb limit does not cover them.
MAX_INFLATED_BYTES = 64 * 1024 * 1024


class BadPayload(ValueError):
    """A payload (or a part of one) that cannot be decoded; it becomes a dead letter."""


def parse(body: bytes, ctx: IngestContext) -> Parsed:
    parsed = Parsed(meta=_zero_meta())
    compressed = is_compressed(body)
    try:
        values, trailing = decode_json_values(inflate(body) if compressed else body)
    except BadPayload as exc:
        if not compressed:
            raise UnusableBody(f"CloudWatch Logs body: {exc}") from None
        parsed.reject(ctx, SOURCE, f"CloudWatch Logs body: {exc}", body)
        return parsed
    if not values and trailing is not None and not compressed:
        raise UnusableBody(f"CloudWatch Logs body is not JSON: {trailing[0]}")
    _parse_values(values, ctx, SOURCE, parsed)
    if trailing is not None:
        reason, rest = trailing
        parsed.reject(ctx, SOURCE, f"CloudWatch Logs body: {reason}", rest)
    return parsed


def parse_payload(obj: Any, ctx: IngestContext, source: str = SOURCE) -> Parsed:
    """One decoded subscription message (or its `awslogs` Lambda-trigger wrapper) into events."""
    parsed = Parsed(meta=_zero_meta())
    _parse_value(obj, ctx, source, parsed)
    return parsed


def is_compressed(data: bytes) -> bool:
    """gzip magic, or a zlib header (CMF 0x78 and a valid FCHECK)."""
    return data[:2] == b"\x1f\x8b" or (len(data) > 1 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0)


def inflate(data: bytes, max_size: int = MAX_INFLATED_BYTES) -> bytes:
    """gzip or zlib data, including several gzip members back to back (Firehose may concatenate them)."""
    out: list[bytes] = []
    budget = max_size
    while data:
        stream = zlib.decompressobj(47)  # 32 + 15: detect gzip or zlib header
        try:
            chunk = stream.decompress(data, budget + 1)
        except zlib.error as exc:
            raise BadPayload(f"cannot decompress: {exc}") from None
        budget -= len(chunk)
        if budget < 0:
            raise BadPayload(f"decompresses to more than {max_size} bytes")
        out.append(chunk)
        if not stream.eof:
            raise BadPayload("compressed data is truncated")
        data = stream.unused_data
        if data and not is_compressed(data):
            raise BadPayload(f"{len(data)} bytes of garbage after the compressed data")
    return b"".join(out)


def decode_json_values(data: bytes) -> tuple[list[Any], tuple[str, bytes] | None]:
    """All JSON values of `{...}{...}` / NDJSON / one document, plus (reason, rest) for undecodable trailing bytes."""
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
        except json.JSONDecodeError as exc:
            return values, (f"not JSON at offset {pos}: {exc.msg}", text[pos:].encode())
        values.append(value)
        pos = _WS.match(text, pos).end()
    if not values:
        raise BadPayload("empty body")
    return values, None


def decode_awslogs(data: Any) -> bytes:
    """The base64 + gzip `awslogs.data` string into the JSON bytes it wraps."""
    if not isinstance(data, str):
        raise BadPayload("awslogs.data is not a string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadPayload(f"awslogs.data is not valid base64 (truncated?): {exc}") from None
    return inflate(raw) if is_compressed(raw) else raw


def _parse_values(values: list[Any], ctx: IngestContext, source: str, parsed: Parsed) -> None:
    for value in values:
        for obj in value if isinstance(value, list) else (value,):
            _parse_value(obj, ctx, source, parsed)


def _parse_value(obj: Any, ctx: IngestContext, source: str, parsed: Parsed) -> None:
    if isinstance(obj, dict) and "awslogs" in obj:
        awslogs = obj["awslogs"]
        try:
            values, trailing = decode_json_values(
                decode_awslogs(awslogs.get("data") if isinstance(awslogs, dict) else None)
            )
        except BadPayload as exc:
            parsed.reject(ctx, source, str(exc), _raw(obj))
            return
        if trailing is not None:
            parsed.reject(ctx, source, f"awslogs.data: {trailing[0]}", _raw(obj))
        _parse_values(values, ctx, source, parsed)
        return
    if not isinstance(obj, dict) or not ("messageType" in obj or "logEvents" in obj):
        parsed.reject(ctx, source, "not a CloudWatch Logs subscription message (no messageType/logEvents)", _raw(obj))
        return
    message_type = obj.get("messageType", "DATA_MESSAGE")
    if message_type == "CONTROL_MESSAGE":
        parsed.meta["control_messages"] += 1
        return
    if message_type != "DATA_MESSAGE" or not isinstance(obj.get("logEvents"), list):
        parsed.reject(ctx, source, f"unknown messageType {message_type!r} or logEvents not a list", _raw(obj))
        return
    parsed.meta["data_messages"] += 1
    _data_message(obj, ctx, source, parsed)


def _data_message(obj: dict[str, Any], ctx: IngestContext, source: str, parsed: Parsed) -> None:
    log_group = _str(obj.get("logGroup"))
    log_stream = _str(obj.get("logStream"))
    group = _LAMBDA_GROUP.match(log_group)
    version = _STREAM_VERSION.match(log_stream)
    owner = _str(obj.get("owner"))
    src = LineSource.from_ctx(
        ctx,
        function=group.group(1) if group else "",
        source=source,
        log_group=log_group,
        log_stream=log_stream,
        **({"account": owner} if owner.isdigit() else {}),
        **({"version": version.group(1)} if version else {}),
    )
    for log_event in obj["logEvents"]:
        if not isinstance(log_event, dict):
            parsed.reject(ctx, source, f"log event in {log_group!r} is not an object", _raw(log_event))
            continue
        message, timestamp = log_event.get("message"), log_event.get("timestamp")
        if not isinstance(message, str) or not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
            parsed.reject(
                ctx, source, f"log event in {log_group!r} lacks a string message or numeric timestamp", _raw(log_event)
            )
            continue
        try:
            time = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            parsed.reject(ctx, source, f"log event timestamp {timestamp!r} is out of range", _raw(log_event))
            continue
        event_id = _str(log_event.get("id")) or stable_id(log_group, log_stream, timestamp, message)
        parsed.meta["log_events"] += 1
        parsed.events.extend(parse_with(_with_extracted(src, log_event), message, time, event_id))


def _with_extracted(src: LineSource, log_event: dict[str, Any]) -> LineSource:
    """Cross-account delivery names the source account/region in extractedFields; they also go into fields."""
    extracted = log_event.get("extractedFields")
    if not isinstance(extracted, dict) or not extracted:
        return src
    fields = flatten(extracted)
    changes: dict[str, Any] = {"fields": fields}
    if fields.get("@aws.account"):
        changes["account"] = fields["@aws.account"]
    if fields.get("@aws.region"):
        changes["region"] = fields["@aws.region"]
    return replace(src, **changes)


def _zero_meta() -> dict[str, int]:
    return {"data_messages": 0, "control_messages": 0, "log_events": 0}


def merge_meta(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Add another Parsed's counters into `into` (Parsed.extend keeps only events and dead letters)."""
    for key, value in other.items():
        if isinstance(value, int):
            into[key] = into.get(key, 0) + value


def _raw(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return repr(value).encode()


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
