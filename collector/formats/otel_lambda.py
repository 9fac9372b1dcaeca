"""The OpenTelemetry Lambda collector layer's ``telemetryapi`` receiver, read back into Telemetry API elements.

The layer (open-telemetry/opentelemetry-lambda, collector/receiver/telemetryapireceiver/receiver.go) subscribes to
the Telemetry API and exports each batch it receives as OTLP log records: one per event, attribute ``type`` the
event type, ``faas.invocation_id`` its request, the time the event's ``time`` (a JSON function line's own
``timestamp``), and a body that is the function's line, or for a platform event a text line in formats of its own
(``START RequestId: %s Version: %s``, ``REPORT RequestId: %s Duration: %.2f ms ...``). Its resource names the
function (``faas.name``, ``faas.version``, ``faas.invoked_region``).

Those records are turned back into the ``{time, type, record}`` elements they came from, as far as the receiver
kept them, and mapped by the native Telemetry path (``telemetry.parse_elements``): the same function logs and the
same invocation facts (duration, billed duration, memory, init, status, cold start), with the same ids, so a
function whose telemetry also arrives by the native extension or a CloudWatch subscription is stored once.
What the receiver drops stays unknown: a runtimeDone's status and duration, X-Ray tracing, digits past the
hundredth of a millisecond, and the original text of a JSON-format function line (whose Telemetry time the
receiver replaces with the line's own timestamp, so such a line gets an id of its own here).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fnscope.collector.formats import telemetry
from fnscope.collector.formats.base import Parsed
from fnscope.sink import IngestContext

SCOPE_NAME = "github.com/open-telemetry/opentelemetry-lambda/collector/receiver/telemetryapi"
_PLAIN_ATTRIBUTES = frozenset({"type", "faas.invocation_id"})
_NUM = r"\d+(?:\.\d+)?"
_NUMBER = f"({_NUM})"

# receiver.go's platform*LogFmt formats, read back. REPORT's parts are each written only when known.
# Every group but a line's last is a run of non-spaces (or, in a Go list, of non-"]"), so it cannot stretch over
# the literal that follows it: a line matches or fails in one pass. Several ``(.*)`` groups under fullmatch
# backtrack polynomially, which a long crafted body turns into minutes of CPU held under the GIL.
_WORD = r"\S*"
_REPORT = re.compile(
    r"REPORT RequestId: (?P<requestId>\S+)"
    rf"(?: Duration: {_NUMBER} ms)?(?: Billed Duration: {_NUMBER} ms)?(?: Memory Size: {_NUMBER} MB)?"
    rf"(?: Max Memory Used: {_NUMBER} MB)?(?: Init Duration: {_NUMBER} ms)?(?: Status: (?P<status>\S+))?"
)
_REPORT_METRICS = ("durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs")
_FORMATS: dict[str, re.Pattern[str]] = {
    "platform.start": re.compile(r"START RequestId: (?P<requestId>\S+) Version: (?P<version>.*)"),
    "platform.runtimeDone": re.compile(r"END RequestId: (?P<requestId>\S+) Version: .*"),
    "platform.initStart": re.compile(
        rf"INIT_START Runtime Version: (?P<runtimeVersion>{_WORD}) Runtime Version ARN: (?P<runtimeVersionArn>.*)"
    ),
    "platform.initRuntimeDone": re.compile(r"INIT_RUNTIME_DONE Status: (?P<status>.*)"),
    "platform.initReport": re.compile(
        rf"INIT_REPORT Initialization Type: (?P<initializationType>{_WORD}) Phase: (?P<phase>{_WORD}) "
        rf"Status: (?P<status>{_WORD}) Duration: (?P<durationMs>{_NUM}) ms"
    ),
    "platform.restoreStart": re.compile(
        rf"RESTORE_START Runtime Version: (?P<runtimeVersion>{_WORD}) Runtime Version ARN: (?P<runtimeVersionArn>.*)"
    ),
    "platform.restoreRuntimeDone": re.compile(r"RESTORE_RUNTIME_DONE Status: (?P<status>.*)"),
    "platform.restoreReport": re.compile(
        rf"RESTORE_REPORT Status: (?P<status>{_WORD}) Duration: (?P<durationMs>{_NUM}) ms"
    ),
    "platform.telemetrySubscription": re.compile(r"TELEMETRY: (?P<name>\S*) Subscribed Types: \[(?P<types>[^\]]*)\]"),
    "platform.extension": re.compile(
        r"EXTENSION Name: (?P<name>\S*) State: (?P<state>\S*) Events: \[(?P<events>[^\]]*)\]"
    ),
    "platform.logsDropped": re.compile(
        rf"LOGS_DROPPED DroppedRecords: (?P<droppedRecords>{_NUM}) DroppedBytes: (?P<droppedBytes>{_NUM}) Reason: (?P<reason>.*)"
    ),
}
# A platform line the receiver writes is a few hundred bytes; a longer one is not read as a platform event.
MAX_PLATFORM_BODY = 1024
_METRICS = frozenset({"durationMs"})
_NUMBERS = frozenset({"droppedRecords", "droppedBytes"})
_LISTS = frozenset({"types", "events"})  # Go's %v of a list: "[a b c]"


def telemetry_time(time: datetime) -> str:
    """An event time as the Telemetry API writes it (milliseconds, ``Z``): the text the native path ids with."""
    return f"{time:%Y-%m-%dT%H:%M:%S}.{time.microsecond // 1000:03d}Z"


def platform_record(type_: str, body: str) -> dict[str, Any]:
    """The Telemetry API record a platform line was written from, as far as the line states it."""
    if len(body) > MAX_PLATFORM_BODY:
        return {}
    if type_ == "platform.report":
        match = _REPORT.fullmatch(body)
        if not match:
            return {}
        values = match.groups()[1:6]
        metrics = {name: float(value) for name, value in zip(_REPORT_METRICS, values) if value is not None}
        return {"requestId": match["requestId"], "status": match["status"] or "success", "metrics": metrics}
    pattern = _FORMATS.get(type_)
    match = pattern.fullmatch(body) if pattern else None
    if not match:
        return {}
    record: dict[str, Any] = {}
    for key, value in match.groupdict().items():
        if key in _METRICS:
            record["metrics"] = {key: float(value)}
        elif key in _NUMBERS:
            record[key] = float(value)
        elif key in _LISTS:
            record[key] = value.split()
        else:
            record[key] = value
    return record


def element(type_: str, time: datetime, body: str, attributes: dict[str, Any], level: str) -> dict[str, Any]:
    """One log record of the receiver as the Telemetry API element it was made from."""
    record: Any
    if type_.startswith("platform."):
        record = platform_record(type_, body)
    elif set(attributes) <= _PLAIN_ATTRIBUTES and not level:
        record = body  # a text line, exactly as the runtime wrote it
    else:  # a JSON-format line: its level became the severity, its other fields attributes
        record = {k: v for k, v in attributes.items() if k not in _PLAIN_ATTRIBUTES}
        record |= {"timestamp": telemetry_time(time), "level": level.upper(), "message": body}
        if attributes.get("faas.invocation_id"):
            record["requestId"] = attributes["faas.invocation_id"]
    return {"time": telemetry_time(time), "type": type_, "record": record}


def parse(
    records: list[tuple[datetime, str, dict[str, Any], str]], resource: dict[str, str], ctx: IngestContext
) -> Parsed:
    """One receiver batch ((time, body, attributes, level) per record) of the function its resource names."""
    elements = [element(str(attrs.get("type", "")), time, body, attrs, level) for time, body, attrs, level in records]
    described = {
        "version": resource.get("faas.version", ""),
        "region": resource.get("faas.invoked_region") or resource.get("cloud.region", ""),
        "account": resource.get("cloud.account.id", ""),
    }
    function = resource.get("faas.name") or resource.get("service.name") or ctx.param("function")
    return telemetry.parse_elements(
        elements, ctx, function=function, source="otlp", **{k: v for k, v in described.items() if v}
    )
