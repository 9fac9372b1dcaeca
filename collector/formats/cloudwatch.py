"""CloudWatch Logs subscription payloads: DATA_MESSAGE / CONTROL_MESSAGE, as delivered directly, via Firehose
(gzip or zlib, several JSON objects back to back) or in the Lambda-trigger form `{"awslogs": {"data": ...}}`.

A trail that delivers to a CloudWatch Logs group writes one CloudTrail record per log event; from a sender whose
token may send audit events, those become audit events mapped exactly as the trail's S3 files are
(``cloudtrail.record_to_event``), so the same record arriving both ways is stored once. API Gateway access-log
lines in the JSON format that names ``apiId`` (deploy/aws, `fnscope aws template`) become API requests as
``POST /ingest/apigateway`` maps them. AppSync groups' lines stay log lines, and their request summaries are API
requests too (``appsync``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fnscope.collector.formats import apigateway, appsync, cloudtrail
from fnscope.collector.formats.base import Parsed
from fnscope.collector.formats.lambda_text import (
    CurrentInvocation,
    LineIds,
    LineSource,
    flatten,
    is_platform_line,
    parse_with,
)
from fnscope.decoding.budget import take_records
from fnscope.decoding.compression import inflate, inflate_base64, is_compressed
from fnscope.decoding.errors import BadPayload, UnusableBody
from fnscope.decoding.jsontext import as_text, decode_documents_strict, json_bytes
from fnscope.events import stable_id
from fnscope.sink import IngestContext

SOURCE = "cloudwatch"
# Lambda@Edge groups are `/aws/lambda/us-east-1.NAME`; function names cannot contain dots, so the prefix is safe.
_LAMBDA_GROUP = re.compile(r"/aws/lambda/(?:[a-z]{2}(?:-[a-z]+)+-\d\.)?([^/]+)$")
_STREAM_VERSION = re.compile(r"\d{4}/\d\d/\d\d/\[([^\]]+)\]")
_LAMBDA_STREAM = re.compile(r"\d{4}/\d\d/\d\d/\[")  # how Lambda names a stream, whatever the group's name


def parse(body: bytes, ctx: IngestContext) -> Parsed:
    parsed = Parsed(meta=_zero_meta())
    compressed = is_compressed(body)
    try:
        values, trailing = decode_documents_strict(inflate(body) if compressed else body)
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


def decode_awslogs(data: Any) -> bytes:
    """The base64 + gzip `awslogs.data` string into the JSON bytes it wraps."""
    if not isinstance(data, str):
        raise BadPayload("awslogs.data is not a string")
    return inflate_base64(data, "awslogs.data is not valid base64 (truncated?)")


def _parse_values(values: list[Any], ctx: IngestContext, source: str, parsed: Parsed) -> None:
    for value in values:
        for obj in value if isinstance(value, list) else (value,):
            _parse_value(obj, ctx, source, parsed)


def _parse_value(obj: Any, ctx: IngestContext, source: str, parsed: Parsed) -> None:
    if isinstance(obj, dict) and "awslogs" in obj:
        awslogs = obj["awslogs"]
        try:
            values, trailing = decode_documents_strict(
                decode_awslogs(awslogs.get("data") if isinstance(awslogs, dict) else None)
            )
        except BadPayload as exc:
            parsed.reject(ctx, source, str(exc), json_bytes(obj))
            return
        if trailing is not None:
            parsed.reject(ctx, source, f"awslogs.data: {trailing[0]}", json_bytes(obj))
        _parse_values(values, ctx, source, parsed)
        return
    if not isinstance(obj, dict) or not ("messageType" in obj or "logEvents" in obj):
        parsed.reject(
            ctx, source, "not a CloudWatch Logs subscription message (no messageType/logEvents)", json_bytes(obj)
        )
        return
    message_type = obj.get("messageType", "DATA_MESSAGE")
    if message_type == "CONTROL_MESSAGE":
        parsed.meta["control_messages"] += 1
        return
    if message_type != "DATA_MESSAGE" or not isinstance(obj.get("logEvents"), list):
        parsed.reject(ctx, source, f"unknown messageType {message_type!r} or logEvents not a list", json_bytes(obj))
        return
    parsed.meta["data_messages"] += 1
    _data_message(obj, ctx, source, parsed)


def _data_message(obj: dict[str, Any], ctx: IngestContext, source: str, parsed: Parsed) -> None:
    log_group = as_text(obj.get("logGroup"))
    log_stream = as_text(obj.get("logStream"))
    group = _LAMBDA_GROUP.match(log_group)
    version = _STREAM_VERSION.match(log_stream)
    owner = as_text(obj.get("owner"))
    src = LineSource.from_ctx(
        ctx,
        function=group.group(1) if group else "",
        source=source,
        log_group=log_group,
        log_stream=log_stream,
        **({"account": owner} if owner.isdigit() else {}),
        **({"version": version.group(1)} if version else {}),
    )
    take_records(len(obj["logEvents"]))
    # A trail's log group: one CloudTrail record per log event. A Lambda group's lines are what its code printed,
    # never audit records or API access logs, whatever they look like; so are a Lambda stream's (YYYY/MM/DD/[...])
    # in a group of another name (a function's custom log group).
    # An AppSync group's lines are what AppSync wrote (with the callers' queries and variables in them): never
    # audit records or access logs either.
    graphql = appsync.api_id(log_group)
    trail = ctx.audit and group is None and not graphql and not _LAMBDA_STREAM.match(log_stream)
    line_ids, current = LineIds(), CurrentInvocation()  # one message holds one log stream: one environment
    requests = appsync.Requests()
    # a request's summary may come before the lines that name its operation and errors: read them all first
    read = [
        requests.read(e["message"])
        if graphql and isinstance(e, dict) and isinstance(e.get("message"), str)
        else ("", None)
        for e in obj["logEvents"]
    ]
    for index, log_event in enumerate(obj["logEvents"]):
        if not isinstance(log_event, dict):
            parsed.reject(ctx, source, f"log event in {log_group!r} is not an object", json_bytes(log_event))
            continue
        message, timestamp = log_event.get("message"), log_event.get("timestamp")
        if not isinstance(message, str) or not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
            parsed.reject(
                ctx,
                source,
                f"log event in {log_group!r} lacks a string message or numeric timestamp",
                json_bytes(log_event),
            )
            continue
        try:
            time = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            parsed.reject(ctx, source, f"log event timestamp {timestamp!r} is out of range", json_bytes(log_event))
            continue
        if src.function and not is_platform_line(message):
            # a function's own line: the id its Telemetry API copy gets too (log_line_id)
            event_id = line_ids(src.function, time, message)
        else:
            # CloudWatch's event id is unique within its log group only: two groups may both have id X
            cw_id = as_text(log_event.get("id"))
            event_id = stable_id(log_group, cw_id) if cw_id else stable_id(log_group, log_stream, timestamp, message)
        parsed.meta["log_events"] += 1
        if trail and (record := cloudtrail.record_in_text(message)) is not None:
            # the same audit event (id, content) the trail's S3 file gives: the two deliveries are stored once
            parsed.collect(ctx, source, message, lambda: [cloudtrail.record_to_event(record, ctx)])  # noqa: B023
            continue
        if group is None and not graphql and (access := apigateway.access_log_in_text(message)) is not None:
            parsed.collect(ctx, source, message, lambda: [apigateway.record_to_event(access, message, ctx)])  # noqa: B023
            continue
        current.follow(message)
        line_src = current.attribute(_with_extracted(src, log_event))
        if graphql:
            request_id, fields = read[index]
            line_src = replace(line_src, request_id=request_id) if request_id else line_src
            if fields is not None and fields.get("logType") == "RequestSummary":
                where = (graphql, line_src.account, line_src.region)
                summary = partial(appsync.request_events, fields, time, ctx, where, requests)
                parsed.collect(ctx, source, message, summary)
        parsed.collect(
            ctx,
            source,
            json_bytes(log_event),
            lambda: parse_with(line_src, message, time, event_id),  # noqa: B023
        )


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
