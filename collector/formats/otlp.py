"""OTLP/HTTP logs (``POST /v1/logs``) in, FunctionLogs out (and, from the OpenTelemetry Lambda layer's telemetryapi
receiver, the invocations its records state: otel_lambda.py).

Protobuf bodies are decoded with the generated ``ExportLogsServiceRequest``; JSON bodies follow the OTLP/JSON
mapping, which differs from plain proto3 JSON in one way that matters: ``traceId``/``spanId`` are hex, not
base64. Records that cannot be used are counted for the OTLP partial-success answer
(``meta["rejected_log_records"]``, ``meta["error_message"]``) and kept as dead letters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from fnscope.collector.formats import otel_lambda
from fnscope.collector.formats.base import Parsed, error_reason
from fnscope.decoding.budget import take_records
from fnscope.decoding.compression import inflate_body, is_gzip
from fnscope.decoding.errors import UnusableBody
from fnscope.decoding.jsontext import compact_json, load_body
from fnscope.events import FunctionLog, stable_id
from fnscope.sink import IngestContext

SOURCE = "otlp"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf", "application/octet-stream"})
_REQUEST_ID_KEYS = ("faas.invocation_id", "aws.request_id", "faas.execution")
# OTLP SeverityNumber ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
_SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REASONS = 5


@dataclass
class _Scoped:
    """The records of one scope, with the resource and scope they belong to."""

    resource: Resource
    scope: InstrumentationScope
    records: list[LogRecord]


@dataclass
class _Rejections:
    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, parsed: Parsed, ctx: IngestContext, reason: str, raw: bytes | str, count: int = 1) -> None:
        self.count += count
        if reason not in self.reasons and len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)
        parsed.reject(ctx, SOURCE, reason, raw)


# --- AnyValue -------------------------------------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    """An AnyValue as plain Python (bytes as base64 text, as in OTLP/JSON)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def _scalar_text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("kvlist_value", "array_value"):
        return compact_json(any_value(value))
    result = any_value(value)
    return "" if result is None else str(result)


def flatten_attributes(attributes: Iterable[KeyValue], prefix: str = "") -> dict[str, str]:
    """Attributes as strings; maps nest into dotted keys, arrays become JSON text."""
    flat: dict[str, str] = {}
    for kv in attributes:
        key = prefix + kv.key
        if kv.value.WhichOneof("value") == "kvlist_value":
            flat.update(flatten_attributes(kv.value.kvlist_value.values, key + "."))
        else:
            flat[key] = _scalar_text(kv.value)
    return flat


# --- decoding -------------------------------------------------------------------------------------------------


def _is_json(content_type: str, body: bytes) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return True
    if media in _PROTOBUF_TYPES:
        return False
    return body.lstrip()[:1] == b"{"  # no or unknown content type: sniff


def _from_protobuf(body: bytes) -> list[_Scoped]:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise UnusableBody(f"not an OTLP protobuf ExportLogsServiceRequest: {exc}") from exc
    if body and not request.ListFields():
        raise UnusableBody("not an OTLP protobuf ExportLogsServiceRequest: no resourceLogs in a non-empty body")
    request.DiscardUnknownFields()  # so the same record hashes alike whether it came as protobuf or JSON
    return [
        _Scoped(resource_logs.resource, scope_logs.scope, list(scope_logs.log_records))
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    ]


def _id_base64(value: Any, size: int, name: str) -> str:
    """OTLP/JSON ids are hex (either case); proto3 JSON wants base64. Base64 input is tolerated."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        if len(value) == size * 2:
            try:
                return base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                pass
        try:
            if len(base64.b64decode(value, validate=True)) == size:
                return value
        except (binascii.Error, ValueError):
            pass
    raise ValueError(f"{name} is not {size * 2} hex digits: {value!r}")


def _json_message(obj: Any, message: Message, what: str) -> Message:
    if obj is None:
        return message
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is a JSON {type(obj).__name__}, not an object")
    try:
        return json_format.ParseDict(obj, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise ValueError(f"invalid {what}: {exc or 'nested too deeply'}") from exc


def _json_record(obj: Any) -> LogRecord:
    if isinstance(obj, dict):
        obj = dict(obj)
        for camel, snake, size in (("traceId", "trace_id", 16), ("spanId", "span_id", 8)):
            for key in (camel, snake):
                if key in obj:
                    obj[key] = _id_base64(obj[key], size, camel)
    return _json_message(obj, LogRecord(), "logRecord")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_request(body: bytes) -> list[Any]:
    doc = load_body(body, "not OTLP/JSON")
    if not isinstance(doc, dict):
        raise UnusableBody(f"not OTLP/JSON: the body is a JSON {type(doc).__name__}, expected an object")
    resource_logs = _get(doc, "resourceLogs", "resource_logs")
    if resource_logs is None:
        other = next((key for key in ("resourceSpans", "resourceMetrics") if key in doc), None)
        if other:
            raise UnusableBody(f"this is an OTLP {other[8:].lower()} request: send it to its own endpoint")
        if doc:
            raise UnusableBody("not an OTLP logs request: no resourceLogs")
        return []
    if not isinstance(resource_logs, list):
        raise UnusableBody("not OTLP/JSON: resourceLogs is not a list")
    return resource_logs


def _from_json(body: bytes, parsed: Parsed, ctx: IngestContext, rejected: _Rejections) -> list[_Scoped]:
    batches: list[_Scoped] = []
    for resource_logs in _json_request(body):
        resource_logs = resource_logs if isinstance(resource_logs, dict) else {}
        scope_logs_list = _list(_get(resource_logs, "scopeLogs", "scope_logs"))
        try:
            resource = _json_message(resource_logs.get("resource"), Resource(), "resource")
        except ValueError as exc:
            count = sum(
                len(_list(_get(s, "logRecords", "log_records"))) for s in scope_logs_list if isinstance(s, dict)
            )
            rejected.add(parsed, ctx, str(exc), compact_json(resource_logs), count)
            continue
        for scope_logs in scope_logs_list:
            batch = _json_scope(scope_logs, resource, parsed, ctx, rejected)
            if batch is not None:
                batches.append(batch)
    return batches


def _json_scope(
    scope_logs: Any, resource: Resource, parsed: Parsed, ctx: IngestContext, rejected: _Rejections
) -> _Scoped | None:
    scope_logs = scope_logs if isinstance(scope_logs, dict) else {}
    records = _list(_get(scope_logs, "logRecords", "log_records"))
    try:
        scope = _json_message(scope_logs.get("scope"), InstrumentationScope(), "scope")
    except ValueError as exc:
        rejected.add(parsed, ctx, str(exc), compact_json(scope_logs), len(records))
        return None
    batch = _Scoped(resource, scope, [])
    for record in records:
        try:
            batch.records.append(_json_record(record))
        except ValueError as exc:
            rejected.add(parsed, ctx, str(exc), compact_json(record))
    return batch


# --- mapping --------------------------------------------------------------------------------------------------


def _time(record: LogRecord) -> datetime:
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if not nanos:
        return datetime.now(UTC)
    try:
        return _EPOCH + timedelta(microseconds=nanos // 1000)
    except OverflowError as exc:
        raise ValueError(f"timeUnixNano out of range: {nanos}") from exc


def _level(record: LogRecord) -> str:
    if record.severity_text:
        return record.severity_text
    number = int(record.severity_number)
    return _SEVERITY_NAMES[(number - 1) // 4] if 1 <= number <= 24 else ""


def _message(record: LogRecord) -> str:
    if not record.HasField("body"):
        return ""
    if record.body.WhichOneof("value") == "string_value":
        return record.body.string_value
    return _scalar_text(record.body)


def _hex_id(value: bytes) -> str:
    return value.hex() if value.strip(b"\x00") else ""


def _first(attributes: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((attributes[key] for key in keys if attributes.get(key)), "")


def _log_name(resource: dict[str, str], key: str) -> str:
    """``aws.log.group.names`` is an array attribute (JSON text here): its first entry."""
    value = resource.get(key, "")
    if value.startswith("["):
        try:
            names = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return str(names[0]) if isinstance(names, list) and names else ""
    return value


def _scope_fields(scope: InstrumentationScope) -> dict[str, str]:
    fields = flatten_attributes(scope.attributes)
    if scope.name:
        fields["otel.scope.name"] = scope.name
    if scope.version:
        fields["otel.scope.version"] = scope.version
    return fields


def record_to_event(
    record: LogRecord,
    resource_fields: dict[str, str],
    scope_fields: dict[str, str],
    resource_bytes: bytes,
    ctx: IngestContext,
) -> FunctionLog:
    record_fields = flatten_attributes(record.attributes)
    fields = {**resource_fields, **scope_fields, **record_fields}
    if record.event_name:
        fields.setdefault("event.name", record.event_name)
    if _hex_id(record.span_id):
        fields.setdefault("span_id", record.span_id.hex())
    return FunctionLog(
        event_id=stable_id(record.SerializeToString(deterministic=True).hex(), resource_bytes.hex()),
        time=_time(record),
        tenant=ctx.tenant,
        account=resource_fields.get("cloud.account.id") or ctx.param("account"),
        region=resource_fields.get("cloud.region") or ctx.param("region"),
        source=SOURCE,
        function=_first(resource_fields, ("faas.name", "service.name")) or ctx.param("function"),
        version=resource_fields.get("faas.version") or ctx.param("version"),
        request_id=_first(fields, _REQUEST_ID_KEYS),
        level=_level(record),
        message=_message(record),
        log_group=_log_name(resource_fields, "aws.log.group.names"),
        log_stream=_log_name(resource_fields, "aws.log.stream.names"),
        trace_id=_hex_id(record.trace_id),
        fields=fields,
    )


def _map(batches: list[_Scoped], parsed: Parsed, ctx: IngestContext, rejected: _Rejections) -> None:
    for batch in batches:
        resource_fields = flatten_attributes(batch.resource.attributes)
        if batch.scope.name == otel_lambda.SCOPE_NAME:
            _map_lambda_layer(batch, resource_fields, parsed, ctx, rejected)
            continue
        scope_fields = _scope_fields(batch.scope)
        resource_bytes = batch.resource.SerializeToString(deterministic=True)
        take_records(len(batch.records))
        for record in batch.records:
            try:
                parsed.events.append(record_to_event(record, resource_fields, scope_fields, resource_bytes, ctx))
            except ValueError as exc:  # pydantic's ValidationError and out-of-range times
                rejected.add(parsed, ctx, error_reason(exc), record.SerializeToString(deterministic=True))


def _map_lambda_layer(
    batch: _Scoped, resource_fields: dict[str, str], parsed: Parsed, ctx: IngestContext, rejected: _Rejections
) -> None:
    """A batch of the OpenTelemetry Lambda layer's telemetryapi receiver: mapped as the Telemetry API batch it was."""
    take_records(len(batch.records))
    records = []
    for record in batch.records:
        try:
            time = _time(record)
        except ValueError as exc:
            rejected.add(parsed, ctx, error_reason(exc), record.SerializeToString(deterministic=True))
            continue
        attributes = {kv.key: any_value(kv.value) for kv in record.attributes}
        records.append((time, _message(record), attributes, _level(record)))
    mapped = otel_lambda.parse(records, resource_fields, ctx)
    parsed.events.extend(mapped.events)
    for letter in mapped.dead:
        rejected.add(parsed, ctx, letter.reason, letter.raw)


def parse(body: bytes, ctx: IngestContext, content_type: str) -> Parsed:
    """Parse an OTLP/HTTP logs request; raises ``UnusableBody`` when the body cannot be decoded at all."""
    if is_gzip(body):  # OTLP/HTTP knows gzip only: no zlib sniffing
        body = inflate_body(body)
    parsed = Parsed()
    rejected = _Rejections()
    if _is_json(content_type, body):
        batches = _from_json(body, parsed, ctx, rejected)
    else:
        batches = _from_protobuf(body)
    _map(batches, parsed, ctx, rejected)
    parsed.meta["rejected_log_records"] = rejected.count
    parsed.meta["error_message"] = "; ".join(rejected.reasons)
    return parsed
