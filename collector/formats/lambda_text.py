"""Lambda log lines (CloudWatch Logs messages, Telemetry/Logs API `function` and `extension` records) into events.

Every line becomes a FunctionLog. Lines that state a platform fact (START, REPORT, INIT_REPORT, a timeout, an
out-of-memory exit, ...) additionally yield an Invocation whose id is derived from the line's id and the kind.
Lambda's JSON log format writes platform lines as Telemetry-API-shaped objects (`{"time","type","record"}`);
those go through the same record mapping the telemetry receiver uses (`platform_invocation`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fnscope.decoding.jsontext import as_text, compact_json
from fnscope.events import MAX_DURATION_MS, Event, FunctionLog, Invocation, log_line_id, stable_id
from fnscope.sink import IngestContext

_LEVELS = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "ERR": "ERROR",
    "FATAL": "FATAL",
    "CRITICAL": "FATAL",
}
_NUMERIC_LEVELS = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}  # pino / bunyan
_LEVEL_ALT = "|".join(sorted(_LEVELS, key=len, reverse=True))

_PLATFORM_PREFIXES = (
    "START RequestId:",
    "END RequestId:",
    "REPORT RequestId:",
    "INIT_START",
    "INIT_REPORT",
    "INIT_RUNTIME_DONE",
    "RESTORE_START",
    "RESTORE_REPORT",
    "RESTORE_RUNTIME_DONE",
    "EXTENSION",
    "TELEMETRY",
    "LOGS",
)
_PLATFORM_HEADS = frozenset(prefix.split()[0] for prefix in _PLATFORM_PREFIXES)
_HEAD_KIND = {
    "START": "start",
    "REPORT": "report",
    "INIT_REPORT": "init_report",
    "RESTORE_REPORT": "restore_report",
    "INIT_START": "init_start",
}
_REQUEST_ID = re.compile(r"RequestId:\s*(\S+)")
_START_VERSION = re.compile(r"Version:\s*(\S+)")
# REPORT / INIT_REPORT / RESTORE_REPORT fields; separators are tabs or runs of spaces, so match known keys only.
_PLATFORM_KV = re.compile(
    r"\b(Billed Restore Duration|Restore Duration|Billed Duration|Init Duration|Duration|Memory Size"
    r"|Max Memory Used|Status|Error Type|XRAY TraceId|Phase):[ \t]*(\S+)"
)
_EXTENSION_LINE = re.compile(r"(?:EXTENSION|TELEMETRY|LOGS)\s+Name:")

_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# node/python default formats: `<ts>\t<requestId>\t<LEVEL>\t<msg>` and `[LEVEL]\t<ts>\t<requestId>\t<msg>`;
# java log4j: `<ts> <requestId> LEVEL  msg`. The request-id token must contain a digit so prose is not taken for one.
# In the init phase there is no request yet: Node writes `undefined` there, Python leaves the field empty.
_RID = r"(?P<rid>undefined|(?=\S{8})\S*\d\S*)"
_TS_FIRST = re.compile(
    rf"(?P<ts>{_TS})[ \t]+{_RID}(?:[ \t]+(?P<lvl>{_LEVEL_ALT})(?![\w.]))?[ \t]*(?P<msg>.*)",
    re.DOTALL,
)
_LEVEL_FIRST = re.compile(
    rf"\[(?P<lvl>{_LEVEL_ALT})\][ \t]+(?:(?P<ts>{_TS})(?:[ \t]+{_RID}[ \t]+|\t\t))?(?P<msg>.*)",
    re.DOTALL | re.IGNORECASE,
)
# bare level tokens only in upper case ("Notice that ..." is prose); bracketed ones in any case
_LEADING_LEVEL = re.compile(rf"\[(?i:({_LEVEL_ALT}))\]|({_LEVEL_ALT})\b")
_TIMEOUT = re.compile(r"Task timed out after\s+([\d.]+)\s*seconds")
_OOM_MARKERS = ("signal: killed", "Runtime.OutOfMemory")
# what runtimes themselves write when the heap is exhausted (Node.js, the JVM, Python)
_RUNTIME_OOM = ("JavaScript heap out of memory", "java.lang.OutOfMemoryError", "MemoryError")

_JSON_LEVEL_KEYS = ("level", "logLevel", "log_level", "levelname", "severity", "lvl")
_JSON_MESSAGE_KEYS = ("message", "msg", "event")
_JSON_REQUEST_KEYS = (
    "requestId",
    "function_request_id",
    "aws_request_id",
    "awsRequestId",
    "correlationIds.awsRequestId",
    "request_id",
)
_JSON_TRACE_KEYS = ("xray_trace_id", "xrayTraceId", "traceId", "trace_id", "correlationIds.xRayTraceId")
_JSON_TIME_KEYS = ("timestamp", "time", "@timestamp", "ts")


@dataclass(frozen=True, slots=True)
class LineSource:
    """What is known about the lines of one batch before reading them: owner, function, stream."""

    function: str
    source: str
    tenant: str = "default"
    account: str = ""
    region: str = ""
    version: str = ""
    log_group: str = ""
    log_stream: str = ""
    log_type: str = "function"
    fields: dict[str, str] = field(default_factory=dict)
    # the invocation the lines fall in, when the delivery shows it (between its START and END): a line that names
    # no request id of its own (a bare print()) is attributed to it
    request_id: str = ""

    @classmethod
    def from_ctx(cls, ctx: IngestContext, *, function: str, source: str, **kw: Any) -> LineSource:
        kw.setdefault("account", ctx.param("account"))
        kw.setdefault("region", ctx.param("region"))
        kw.setdefault("version", ctx.param("version"))
        return cls(function=function, source=source, tenant=ctx.tenant, **kw)

    def invocation(self, **kw: Any) -> Invocation:
        kw.setdefault("version", self.version)
        return Invocation(
            tenant=self.tenant,
            account=self.account,
            region=self.region,
            source=self.source,
            function=self.function,
            **kw,
        )

    def log(self, *, fields: dict[str, str] | None = None, **kw: Any) -> FunctionLog:
        kw.setdefault("version", self.version)
        kw.setdefault("log_type", self.log_type)
        if self.fields:
            fields = {**fields, **self.fields} if fields else dict(self.fields)
        return FunctionLog(
            tenant=self.tenant,
            account=self.account,
            region=self.region,
            source=self.source,
            function=self.function,
            log_group=self.log_group,
            log_stream=self.log_stream,
            fields=fields or {},
            **kw,
        )


def is_platform_line(message: str) -> bool:
    """A platform text line (START, END, REPORT, INIT_*, RESTORE_*, EXTENSION ...), written to CloudWatch only:
    the Telemetry API states the same facts as platform records, never as these lines."""
    if not message.startswith(_PLATFORM_PREFIXES):
        return False
    head = message.split(None, 1)[0]
    if head in ("EXTENSION", "TELEMETRY", "LOGS"):
        return _EXTENSION_LINE.match(message) is not None
    return head in _PLATFORM_HEADS


def line_identity(message: str | dict[str, Any]) -> str:
    """A log line as every path that delivers it can write it: without its line break, and a JSON object line as
    compact JSON with sorted keys (the Telemetry API hands an object, CloudWatch the text the runtime wrote)."""
    if isinstance(message, dict):
        return compact_json(message, sort_keys=True)
    line = message.rstrip("\r\n")
    if line[:1] == "{" and line.endswith("}"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line
        if isinstance(obj, dict):
            return compact_json(obj, sort_keys=True)
    return line


class CurrentInvocation:
    """Which invocation a delivery's lines fall in: from a START to its END, in one execution environment.

    An environment runs one invocation at a time, so a line between them belongs to it. If a second START comes
    before the first one's END (an environment serving several requests at once), nothing is attributed from
    then on: lines must name their request themselves.
    """

    def __init__(self) -> None:
        self.request_id = ""
        self._interleaved = False

    def start(self, request_id: str) -> None:
        if self.request_id and request_id != self.request_id:
            self._interleaved = True
        self.request_id = "" if self._interleaved else request_id

    def end(self, request_id: str) -> None:
        if request_id == self.request_id:
            self.request_id = ""

    def follow(self, line: str) -> None:
        """Track START/END text lines (a CloudWatch log stream)."""
        if line.startswith(("START RequestId:", "END RequestId:")):
            found = _REQUEST_ID.search(line)
            if found:
                (self.start if line[0] == "S" else self.end)(found.group(1))

    def attribute(self, src: LineSource) -> LineSource:
        return replace(src, request_id=self.request_id) if self.request_id else src


class LineIds:
    """Content ids (``log_line_id``) for the lines of one delivery.

    The same line twice in one millisecond is two lines: the n-th repeat within a delivery gets ordinal n, and a
    re-delivered batch repeats the same ordinals. (Identical lines without a request id, written by two execution
    environments of one function in the same millisecond, cannot be told apart and are stored once.)
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, function: str, time: datetime, message: str | dict[str, Any]) -> str:
        base = log_line_id(function, time, line_identity(message))
        count = self._seen.get(base, 0)
        self._seen[base] = count + 1
        return stable_id(base, count) if count else base


def parse_line(
    message: str | dict[str, Any],
    *,
    time: datetime,
    function: str,
    event_id: str,
    ctx: IngestContext,
    source: str,
    version: str = "",
    log_group: str = "",
    log_stream: str = "",
    log_type: str = "function",
    account: str | None = None,
    region: str | None = None,
    fields: dict[str, str] | None = None,
) -> list[Event]:
    """One log line (or an already-decoded JSON log object) into a FunctionLog plus any Invocation it states."""
    kw: dict[str, Any] = {
        "version": version or ctx.param("version"),
        "log_group": log_group,
        "log_stream": log_stream,
        "log_type": log_type,
        "fields": fields or {},
    }
    if account is not None:
        kw["account"] = account
    if region is not None:
        kw["region"] = region
    return parse_with(LineSource.from_ctx(ctx, function=function, source=source, **kw), message, time, event_id)


def parse_with(src: LineSource, message: str | dict[str, Any], time: datetime, event_id: str) -> list[Event]:
    """parse_line with the per-batch facts already bundled (the fast path for batch parsers)."""
    if isinstance(message, dict):
        return _json_line(src, message, None, time, event_id)
    line = message.rstrip("\r\n")
    if is_platform_line(line):
        return _platform_line(src, line, time, event_id)
    if line[:1] == "{" and line.endswith("}"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return _json_line(src, obj, line, time, event_id)
    return _text_line(src, line, time, event_id)


def parse_text_block(
    text: str,
    *,
    time: datetime,
    function: str,
    ctx: IngestContext,
    source: str = "text",
    block_id: str = "",
    **kw: Any,
) -> list[Event]:
    """A pasted multi-line block (as in the Lambda docs) into events, one log line per text line.

    An `XRAY TraceId:` line is joined to the REPORT line before it, as Lambda writes them as one message.
    """
    src = LineSource.from_ctx(ctx, function=function, source=source, **kw)
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if raw.startswith("XRAY TraceId:") and lines and lines[-1].startswith("REPORT RequestId:"):
            lines[-1] = f"{lines[-1]}\n{raw}"
        else:
            lines.append(raw)
    base = block_id or stable_id(function, text)
    events: list[Event] = []
    for index, line in enumerate(lines):
        events.extend(parse_with(src, line, time, stable_id(base, index)))
    return events


# --- platform text lines -------------------------------------------------------------------------------------


def _platform_line(src: LineSource, line: str, time: datetime, event_id: str) -> list[Event]:
    """START/END/REPORT/INIT_*/RESTORE_*/EXTENSION lines (the caller checked is_platform_line).

    Forwarders often turn the tabs between fields into the two characters ``\\t``; those read as tabs here,
    while the stored message keeps the text as it came.
    """
    text = line.replace("\\t", "\t")
    head = text.split(None, 1)[0]
    rid_match = _REQUEST_ID.search(text)
    rid = rid_match.group(1) if rid_match else ""
    inv_id = stable_id(event_id, _HEAD_KIND.get(head, head))
    invocation: Invocation | None = None
    if head == "START":
        ver = _START_VERSION.search(text)
        invocation = src.invocation(
            event_id=inv_id,
            time=time,
            kind="start",
            request_id=rid,
            start_time=time,
            **({"version": ver.group(1)} if ver else {}),
        )
    elif head in ("REPORT", "INIT_REPORT", "RESTORE_REPORT"):
        invocation = _report_line(src, head, text, time, inv_id, rid)
    elif head == "INIT_START":
        invocation = src.invocation(event_id=inv_id, time=time, kind="init_start")
    failed = invocation is not None and invocation.status not in ("", "success")
    log = src.log(
        event_id=event_id,
        time=time,
        message=line,
        request_id=rid,
        log_type="platform",
        level="ERROR" if failed else "INFO",
        trace_id=invocation.trace_id if invocation else "",
    )
    return [log] if invocation is None else [log, invocation]


def _report_line(src: LineSource, head: str, line: str, time: datetime, inv_id: str, rid: str) -> Invocation:
    kv = dict(_PLATFORM_KV.findall(line))
    duration = _num(kv.get("Duration"))
    init = _num(kv.get("Init Duration"))
    restore = _num(kv.get("Restore Duration"))
    kind = _HEAD_KIND[head]
    if kind == "restore_report":
        restore, duration = restore if restore is not None else duration, None
    if kind == "init_report" and kv.get("Phase") == "invoke":
        init = None  # an init Lambda re-ran inside an invocation: that invocation already holds its environment
    return src.invocation(
        event_id=inv_id,
        time=time,
        kind=kind,
        request_id=rid,
        status=kv.get("Status", "success"),
        error_type=kv.get("Error Type", ""),
        start_time=_started(time, duration),
        duration_ms=duration,
        billed_duration_ms=_num(kv.get("Billed Duration")),
        memory_size_mb=_int(kv.get("Memory Size")),
        max_memory_used_mb=_int(kv.get("Max Memory Used")),
        init_duration_ms=init,
        restore_duration_ms=restore,
        cold_start=init is not None and kind == "report",
        trace_id=kv.get("XRAY TraceId", ""),
    )


# --- function lines ------------------------------------------------------------------------------------------


def _text_line(src: LineSource, line: str, time: datetime, event_id: str) -> list[Event]:
    level, rid, msg, when = "", "", line, time  # a line's time is its delivery's, not the runtime's text
    first = line[:1]
    m = _TS_FIRST.match(line) if first.isdigit() else _LEVEL_FIRST.match(line) if first == "[" else None
    if m:
        level = _LEVELS.get((m.group("lvl") or "").upper(), "")
        rid = "" if m.group("rid") == "undefined" else m.group("rid") or ""
        msg = m.group("msg")
    else:
        lead = _LEADING_LEVEL.match(line)
        if lead:
            level = _LEVELS[(lead.group(1) or lead.group(2)).upper()]
    if not rid and "RequestId:" in line:
        found = _REQUEST_ID.search(line)
        rid = found.group(1) if found else ""
    rid = rid or src.request_id
    failure = _failure(src, line, when, event_id, rid)
    if failure is not None:
        level = "ERROR"
    log = src.log(event_id=event_id, time=when, message=msg, request_id=rid, level=level)
    return [log] if failure is None else [log, failure]


def _json_line(src: LineSource, obj: dict[str, Any], text: str | None, time: datetime, event_id: str) -> list[Event]:
    platform = obj.get("type")
    if isinstance(platform, str) and platform.startswith("platform.") and "record" in obj:
        return _json_platform_line(src, obj, platform, text, time, event_id)
    fields = flatten(obj)
    message = _first(obj, _JSON_MESSAGE_KEYS)
    if message is None:
        message = text if text is not None else _compact(obj)
    elif not isinstance(message, str):
        message = _compact(message)
    level = _json_level(_first(obj, _JSON_LEVEL_KEYS))
    rid = _first_field(fields, _JSON_REQUEST_KEYS) or src.request_id
    when = time  # the delivery's time; the line's own timestamp stays among its fields
    failure = _failure(src, message, when, event_id, rid)
    if failure is None and obj.get("errorType") == "Runtime.OutOfMemory":
        failure = _oom(src, when, event_id, rid, "Runtime.OutOfMemory")
    log = src.log(
        event_id=event_id,
        time=when,
        message=message,
        request_id=rid,
        level="ERROR" if failure is not None and not level else level,
        trace_id=_xray_root(_first_field(fields, _JSON_TRACE_KEYS)),
        fields=fields,
    )
    return [log] if failure is None else [log, failure]


def _json_platform_line(
    src: LineSource, obj: dict[str, Any], kind: str, text: str | None, time: datetime, event_id: str
) -> list[Event]:
    """A platform event written by Lambda's JSON log format: the log line plus the Invocation it states."""
    when = time
    record = obj["record"]
    try:
        invocation = platform_invocation(src, kind, record, when, stable_id(event_id, kind))
    except ValueError:  # a malformed platform record is still a log line
        invocation = None
    rid = record.get("requestId", "") if isinstance(record, dict) else ""
    failed = invocation is not None and invocation.status not in ("", "success")
    log = src.log(
        event_id=event_id,
        time=when,
        message=text if text is not None else _compact(obj),
        request_id=rid if isinstance(rid, str) else str(rid),
        log_type="platform",
        level="ERROR" if failed else "INFO",
        trace_id=invocation.trace_id if invocation else "",
        fields=flatten(obj),
    )
    return [log] if invocation is None else [log, invocation]


# --- failures stated by log text -----------------------------------------------------------------------------


def _failure(src: LineSource, text: str, time: datetime, event_id: str, rid: str) -> Invocation | None:
    if "Task timed out after" in text:
        m = _TIMEOUT.search(text)
        secs = _num(m.group(1)) if m else None
        duration = secs * 1000 if secs is not None else None
        return src.invocation(
            event_id=stable_id(event_id, "timeout"),
            time=time,
            kind="timeout",
            status="timeout",
            request_id=rid,
            error_type="Sandbox.Timedout",
            duration_ms=duration,
            start_time=_started(time, duration),
        )
    if "signal: killed" in text or "Runtime.OutOfMemory" in text:  # _OOM_MARKERS, spelt out: this runs per line
        error = "Runtime.OutOfMemory" if "Runtime.OutOfMemory" in text else "Runtime.ExitError"
        return _oom(src, time, event_id, rid, error)
    if "Memory" in text or "memory" in text:  # cheap before the markers
        for marker in _RUNTIME_OOM:
            if marker in text:
                return _oom(src, time, event_id, rid, marker)
    return None


def _oom(src: LineSource, time: datetime, event_id: str, rid: str, error_type: str) -> Invocation:
    return src.invocation(
        event_id=stable_id(event_id, "oom"),
        time=time,
        kind="oom",
        status="oom",
        request_id=rid,
        error_type=error_type,
    )


# --- Telemetry-API platform records (shared with the telemetry receiver) -------------------------------------

_PLATFORM_KINDS = {
    "platform.start": "start",
    "platform.report": "report",
    "platform.runtimeDone": "runtime_done",
    "platform.initStart": "init_start",
    "platform.initReport": "init_report",
    "platform.restoreReport": "restore_report",
}


def platform_invocation(src: LineSource, type_: str, record: Any, time: datetime, event_id: str) -> Invocation | None:
    """The Invocation a Telemetry/Logs API platform record states, or None if the type states none.

    Raises ValueError when a type that carries an invocation has a record that is not an object.
    """
    if type_ == "platform.fault":
        text = record if isinstance(record, str) else _compact(record)
        m = _REQUEST_ID.search(text)
        return src.invocation(
            event_id=event_id, time=time, kind="fault", status="error", request_id=m.group(1) if m else ""
        )
    kind = _PLATFORM_KINDS.get(type_)
    if kind is None:
        return None
    if not isinstance(record, dict):
        raise ValueError(f"{type_} record is not an object")
    metrics = record.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    duration = _num(metrics.get("durationMs"))
    kw: dict[str, Any] = {}
    if kind == "report":
        init = _num(metrics.get("initDurationMs"))
        kw = {
            "duration_ms": duration,
            "start_time": _started(time, duration),
            "billed_duration_ms": _num(metrics.get("billedDurationMs")),
            "memory_size_mb": _int(metrics.get("memorySizeMB")),
            "max_memory_used_mb": _int(metrics.get("maxMemoryUsedMB")),
            "init_duration_ms": init,
            "restore_duration_ms": _num(metrics.get("restoreDurationMs")),
            "cold_start": init is not None,
            "status": as_text(record.get("status")) or "success",
        }
    elif kind == "start":
        kw = {"start_time": time}
    elif kind == "runtime_done":
        kw = {"duration_ms": duration, "status": as_text(record.get("status"))}
    elif kind == "init_report":
        # phase "invoke": an init re-run inside an invocation, which already holds its environment
        init = None if record.get("phase") == "invoke" else duration
        kw = {"init_duration_ms": init, "status": as_text(record.get("status")) or "success"}
    elif kind == "restore_report":
        kw = {"restore_duration_ms": duration, "status": as_text(record.get("status")) or "success"}
    version = as_text(record.get("version")) or as_text(record.get("functionVersion"))
    if version:
        kw["version"] = version
    tracing = record.get("tracing")
    return src.invocation(
        event_id=event_id,
        time=time,
        kind=kind,
        request_id=as_text(record.get("requestId")),
        error_type=as_text(record.get("errorType")),
        trace_id=_xray_root(as_text(tracing.get("value"))) if isinstance(tracing, dict) else "",
        **kw,
    )


# --- small helpers -------------------------------------------------------------------------------------------


def flatten(obj: dict[str, Any]) -> dict[str, str]:
    """Nested JSON to dotted keys with string values; lists stay JSON text, scalars are their JSON text."""
    out: dict[str, str] = {}
    _flatten_into(out, "", obj)
    return out


def _flatten_into(out: dict[str, str], prefix: str, obj: dict[str, Any]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, dict) and value:
            _flatten_into(out, f"{name}.", value)
        else:
            out[name] = _compact(value)


def _compact(value: Any) -> str:
    return compact_json(value)


def _json_level(value: Any) -> str:
    if isinstance(value, str):
        upper = value.upper()
        return _LEVELS.get(upper, upper)
    if isinstance(value, int) and not isinstance(value, bool):
        return _NUMERIC_LEVELS.get(value, "")
    return ""


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _first_field(fields: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = fields.get(key)
        if value:
            return value
    return ""


def _xray_root(value: str) -> str:
    """`Root=1-abc;Parent=..;Sampled=1` -> `1-abc`, the form REPORT lines and Powertools write."""
    if "Root=" not in value:
        return value
    return value.split("Root=", 1)[1].split(";", 1)[0]


def _parse_time(value: Any) -> datetime | None:
    """A log's own timestamp: ISO 8601 (also with comma milliseconds and +HHMM), or epoch seconds/ms."""
    if isinstance(value, str):
        if len(value) < 10 or not value[:4].isdigit():
            return None
        try:
            return datetime.fromisoformat(value.replace(",", ".", 1))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | float | None:
    """A whole number; infinity and NaN stay floats, for the event's validation to refuse with their record."""
    number = _num(value)
    return None if number is None or not math.isfinite(number) else int(number)


def _started(end: datetime, duration_ms: float | None) -> datetime | None:
    """When an invocation that ended at ``end`` started; None for a duration the event will refuse anyway."""
    if duration_ms is None or not 0 <= duration_ms <= MAX_DURATION_MS:
        return None
    return end - timedelta(milliseconds=duration_ms)


__all__ = [
    "LineIds",
    "LineSource",
    "flatten",
    "line_identity",
    "parse_line",
    "parse_text_block",
    "parse_with",
    "platform_invocation",
]
