"""Lambda Telemetry API (and the older Logs API) batches: `POST /ingest/telemetry?function=NAME[&version=..]`.

The body is a JSON array of `{time, type, record}`. Platform records become Invocations (and, for the types that
state no invocation, platform log lines); `function`/`extension` records are log lines parsed by lambda_text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fnscope.collector.formats.base import Parsed, error_reason
from fnscope.collector.formats.lambda_text import (
    CurrentInvocation,
    LineIds,
    LineSource,
    flatten,
    parse_with,
    platform_invocation,
)
from fnscope.decoding.budget import take_records
from fnscope.decoding.errors import UnusableBody
from fnscope.decoding.jsontext import compact_json, json_bytes, load_body
from fnscope.events import Event, stable_id
from fnscope.sink import IngestContext

SOURCE = "telemetry"
_LOG_TYPES = {"function": "function", "extension": "extension"}
_WARN_TYPES = frozenset(("platform.logsDropped",))


class _BadElement(ValueError):
    """One element of the batch cannot be used; the rest of the batch is kept."""


def parse(body: bytes, ctx: IngestContext) -> Parsed:
    data = load_body(body, "telemetry body is not JSON")
    if isinstance(data, dict):
        data = [data]
    elif not isinstance(data, list):
        raise UnusableBody(f"telemetry body must be a JSON array of {{time, type, record}} objects, not {_kind(data)}")
    return parse_elements(data, ctx, function=ctx.param("function"))


def parse_elements(data: list[Any], ctx: IngestContext, *, function: str, source: str = SOURCE, **kw: Any) -> Parsed:
    """A batch of Telemetry API elements (``{time, type, record}``) of one function into events; ``kw`` names
    what the batch says of its function (version, region, account) beyond the request's parameters."""
    platform = LineSource.from_ctx(ctx, function=function, source=source, log_type="platform", **kw)
    sources = {
        name: LineSource.from_ctx(ctx, function=function, source=source, log_type=name, **kw) for name in _LOG_TYPES
    }
    take_records(len(data))
    parsed = Parsed(meta={"records": len(data)})
    line_ids, current = LineIds(), CurrentInvocation()
    for index, element in enumerate(data):
        try:
            parsed.events.extend(_element(element, platform, sources, line_ids, current))
        except (ValueError, OverflowError, RecursionError) as exc:  # _BadElement, a value the event refuses
            parsed.reject(ctx, source, f"telemetry element {index}: {error_reason(exc)}", json_bytes(element))
    return parsed


def _element(
    element: Any, platform: LineSource, sources: dict[str, LineSource], line_ids: LineIds, current: CurrentInvocation
) -> list[Event]:
    if not isinstance(element, dict):
        raise _BadElement(f"not an object but {_kind(element)}")
    raw_time, type_ = element.get("time"), element.get("type")
    if not isinstance(raw_time, str):
        raise _BadElement("missing `time`" if raw_time is None else f"`time` is {_kind(raw_time)}, not a string")
    try:
        time = datetime.fromisoformat(raw_time)
    except ValueError:
        raise _BadElement(f"`time` {raw_time!r} is not an ISO 8601 timestamp") from None
    if not isinstance(type_, str) or not type_:
        raise _BadElement("missing or non-string `type`")
    record = element.get("record")
    log_type = _LOG_TYPES.get(type_)
    if log_type == "function":  # extensions' lines are not the invocation's
        return _log_record(current.attribute(sources[log_type]), type_, time, record, line_ids)
    if log_type is not None:
        return _log_record(sources[log_type], type_, time, record, line_ids)
    request_id = record.get("requestId") if isinstance(record, dict) else None
    if isinstance(request_id, str) and type_ in ("platform.start", "platform.runtimeDone"):
        (current.start if type_ == "platform.start" else current.end)(request_id)
    return _platform_record(platform, type_, raw_time, time, record)


def _log_record(src: LineSource, type_: str, time: datetime, record: Any, line_ids: LineIds) -> list[Event]:
    if isinstance(record, (str, dict)):
        line = record
    elif record is None:
        raise _BadElement(f"{type_} record is missing")
    else:
        line = compact_json(record)
    # the id a CloudWatch subscription computes for the same line too, so a line sent both ways is stored once
    return parse_with(src, line, time, line_ids(src.function, time, line))


def _platform_record(src: LineSource, type_: str, raw_time: str, time: datetime, record: Any) -> list[Event]:
    request_id = record.get("requestId", "") if isinstance(record, dict) else ""
    request_id = request_id if isinstance(request_id, str) else str(request_id)
    event_id = stable_id(src.function, type_, request_id, raw_time)
    try:
        invocation = platform_invocation(src, type_, record, time, event_id)
    except ValueError as exc:
        raise _BadElement(error_reason(exc)) from None
    if invocation is not None and type_ != "platform.fault":
        return [invocation]
    status = record.get("status") if isinstance(record, dict) else None
    failed = type_ == "platform.fault" or status in ("failure", "error", "timeout")
    log = src.log(
        event_id=stable_id(event_id, "log") if invocation is not None else event_id,
        time=time,
        message=record if isinstance(record, str) else compact_json(record),
        request_id=invocation.request_id if invocation is not None else request_id,
        level="ERROR" if failed else "WARN" if type_ in _WARN_TYPES else "INFO",
        fields={"type": type_, **flatten(record)} if isinstance(record, dict) else {"type": type_},
    )
    return [log] if invocation is None else [invocation, log]


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
