"""Render simulated invocations into the wire formats AWS really sends.

Shapes follow what AWS documents and sends: Lambda Telemetry API batches, CloudWatch Logs
subscription DATA_MESSAGEs (gzip + base64 inside a Firehose HTTP-endpoint delivery), API Gateway HTTP API
JSON access logs, and CloudTrail log files. Every random choice comes from a ``random.Random`` seeded by a
string derived from the run's seed or the invocation's request id, so the same seed gives byte-identical
payloads whatever order the renderers run in.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from fnscope.simulator.scheduler import FunctionSpec, SimInvocation, Simulation

Kind = Literal["telemetry", "firehose", "apigateway", "cloudtrail"]

FIREHOSE_MAX_RECORDS = 500
CLOUDTRAIL_MAX_RECORDS = 1000
SUBSCRIPTION_FILTER = "fnscope-firehose"
DEFAULT_STAGE = "prod"


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request to send: an uncompressed body, due once ``due_s`` simulated seconds have elapsed."""

    kind: Kind
    path: str
    params: tuple[tuple[str, str], ...]
    body: bytes
    events: int
    due_s: int
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- small helpers


def iso_ms(dt: datetime) -> str:
    """``2026-11-27T05:00:00.123Z``, the timestamp format of Telemetry API events and Lambda log lines."""
    dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def iso_s(dt: datetime) -> str:
    return f"{dt.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def epoch_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0 keeps the bytes reproducible


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _upper_id(rng: random.Random, prefix: str, n: int = 17) -> str:
    return prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(n))


def _bucket(sim: Simulation, dt: datetime) -> int:
    return max(0, int((dt - sim.start).total_seconds()))


def _is_node(spec: FunctionSpec) -> bool:
    return spec.runtime.startswith("nodejs")


# ---------------------------------------------------------------- what the function itself logs

_SERVICE_MESSAGES: dict[str, tuple[str, str]] = {
    "orders": ("Order accepted", "Order validation failed"),
    "payments": ("Payment captured", "Card processor returned HTTP 502"),
    "inventory": ("Stock levels synchronised", "Warehouse API timed out"),
    "users": ("Profile loaded", "User record not found"),
    "notifications": ("Notification queued", "SNS publish failed"),
    "images": ("Thumbnail written", "Unsupported image format"),
    "search": ("Query served", "OpenSearch cluster unavailable"),
    "billing": ("Invoice generated", "Invoice total mismatch"),
}
_EXCEPTIONS = ("ValueError", "KeyError", "RuntimeError", "ConnectionError")


@dataclass(frozen=True)
class _Line:
    time: datetime
    text: str  # the line as the runtime writes it to stdout (CloudWatch message without the newline)
    record: str | dict[str, Any]  # the Telemetry API ``function`` record


def _powertools(
    inv: SimInvocation,
    spec: FunctionSpec,
    sim: Simulation,
    when: datetime,
    level: str,
    message: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    node = _is_node(spec)
    if node:  # Powertools for TypeScript: ISO timestamps, numbers written as strings
        ts: str = iso_ms(when)
        mem: int | str = str(spec.memory_mb)
    else:  # Powertools for Python: "2021-05-03 11:47:12,494+0000"
        ts = f"{when:%Y-%m-%d %H:%M:%S},{when.microsecond // 1000:03d}+0000"
        mem = spec.memory_mb
    rec: dict[str, Any] = {"level": level}
    if not node:
        rec["location"] = "handler:42"
    rec |= {
        "message": message,
        "timestamp": ts,
        "service": spec.service,
        "cold_start": inv.cold_start,
        "function_name": spec.name,
        "function_memory_size": mem,
        "function_arn": spec.arn(sim.region, sim.account_id),
        "function_request_id": inv.request_id,
        "xray_trace_id": inv.trace_id,
    }
    if node:
        rec["sampling_rate"] = 0
    rec.update(extra)
    return rec


def _runtime_line(
    inv: SimInvocation,
    spec: FunctionSpec,
    when: datetime,
    level: str,
    message: str,
    extra: dict[str, Any] | None = None,
) -> _Line:
    """A line from the runtime's logger (console.log / logging): tab format in Text mode, an object in JSON."""
    if spec.log_format == "JSON":
        obj: dict[str, Any] = {
            "timestamp": iso_ms(when),
            "level": level,
            "requestId": inv.request_id,
            "message": message,
        }
        if not _is_node(spec):
            obj["logger"] = "root"
        obj.update(extra or {})
        return _Line(when, dumps(obj).decode(), obj)
    if _is_node(spec):
        text = f"{iso_ms(when)}\t{inv.request_id}\t{level}\t{message}"
    else:
        text = f"[{level}]\t{iso_ms(when)}\t{inv.request_id}\t{message}"
    return _Line(when, text, text)


def function_lines(inv: SimInvocation, spec: FunctionSpec, sim: Simulation) -> list[_Line]:
    """The function's own log output for one (executed) invocation, in time order."""
    rng = _rng("logs", inv.request_id)
    t0, dur = inv.handler_start, inv.duration_ms
    at = lambda frac: t0 + timedelta(milliseconds=dur * frac)  # noqa: E731
    ok_msg, err_msg = _SERVICE_MESSAGES.get(spec.service, ("Request handled", "Downstream call failed"))
    order_id = f"ord_{_hex(rng, 10)}"
    lines: list[_Line] = [_runtime_line(inv, spec, at(0.02), "INFO", f"Handling {spec.route_key} request")]
    if rng.random() < 0.5:  # a bare print(): plain text however the log format is set
        when = at(0.1)
        text = f"received event with {rng.randint(1, 25)} items"
        lines.append(_Line(when, text, text))

    structured = inv.status == "success" or rng.random() < 0.5
    if structured:
        when = at(0.5)
        rec = _powertools(
            inv, spec, sim, when, "INFO", ok_msg, {"order_id": order_id, "amount_cents": rng.randint(100, 99_999)}
        )
        lines.append(_Line(when, dumps(rec).decode(), rec if spec.log_format == "JSON" else dumps(rec).decode()))

    if inv.status == "error":
        when = at(0.98)
        exc = _EXCEPTIONS[rng.randrange(len(_EXCEPTIONS))] if not _is_node(spec) else "Error"
        detail = f"{err_msg} (order {order_id})"
        rec = _powertools(
            inv,
            spec,
            sim,
            at(0.95),
            "ERROR",
            err_msg,
            {
                "order_id": order_id,
                "exception_name": exc,
                "exception": f'Traceback (most recent call last):\n  File "/var/task/app.py", '
                f"line 57, in handler\n{exc}: {detail}",
            },
        )
        lines.append(_Line(at(0.95), dumps(rec).decode(), rec if spec.log_format == "JSON" else dumps(rec).decode()))
        stack = [f"{exc}: {detail}", "    at Runtime.handler (file:///var/task/index.mjs:57:11)"]
        if spec.log_format == "JSON":
            lines.append(
                _runtime_line(
                    inv,
                    spec,
                    when,
                    "ERROR",
                    f"{exc}: {detail}" if not _is_node(spec) else "Invoke Error",
                    {"errorType": exc, "errorMessage": detail, "stackTrace": stack},
                )
            )
        elif _is_node(spec):
            body = dumps({"errorType": exc, "errorMessage": detail, "stack": stack}).decode()
            lines.append(_runtime_line(inv, spec, when, "ERROR", f"Invoke Error \t{body}"))
        else:
            text = (
                f"[ERROR] {exc}: {detail}\nTraceback (most recent call last):\n"
                f'  File "/var/task/app.py", line 57, in lambda_handler\n    raise {exc}(msg)'
            )
            lines.append(_Line(when, text, text))
    return lines


# ---------------------------------------------------------------- Telemetry API


def _tracing(inv: SimInvocation, spec: FunctionSpec, rng: random.Random) -> dict[str, str]:
    return {
        "spanId": _hex(rng, 16),
        "type": "X-Amzn-Trace-Id",
        "value": f"Root={inv.trace_id};Parent={_hex(rng, 16)};Sampled={1 if spec.tracing else 0}",
    }


def _runtime_arn(sim: Simulation, spec: FunctionSpec) -> str:
    digest = hashlib.sha256(spec.runtime_version.encode()).hexdigest()
    return f"arn:aws:lambda:{sim.region}::runtime:{digest}"


def telemetry_events(inv: SimInvocation, spec: FunctionSpec, sim: Simulation) -> list[dict[str, Any]]:
    """Telemetry API events (``{time, type, record}``) for one executed invocation."""
    rng = _rng("telemetry", inv.request_id)
    tracing = _tracing(inv, spec, rng)
    events: list[dict[str, Any]] = []
    hs = inv.handler_start
    if inv.init_ms is not None:
        events.append(
            {
                "time": iso_ms(inv.start),
                "type": "platform.initStart",
                "record": {
                    "initializationType": "on-demand",
                    "phase": "init",
                    "runtimeVersion": spec.runtime_version,
                    "runtimeVersionArn": _runtime_arn(sim, spec),
                    "functionName": spec.name,
                    "functionVersion": inv.version,
                },
            }
        )
        events.append(
            {
                "time": iso_ms(hs),
                "type": "platform.initRuntimeDone",
                "record": {"initializationType": "on-demand", "phase": "init", "status": "success"},
            }
        )
        events.append(
            {
                "time": iso_ms(hs),
                "type": "platform.initReport",
                "record": {
                    "initializationType": "on-demand",
                    "phase": "init",
                    "status": "success",
                    "metrics": {"durationMs": inv.init_ms},
                },
            }
        )
    events.append(
        {
            "time": iso_ms(hs),
            "type": "platform.start",
            "record": {"requestId": inv.request_id, "version": inv.version, "tracing": tracing},
        }
    )
    events.extend(
        {"time": iso_ms(line.time), "type": "function", "record": line.record}
        for line in function_lines(inv, spec, sim)
    )

    status = "error" if inv.status == "oom" else inv.status
    produced = 0 if inv.status != "success" else rng.randint(2, 4096)
    response_ms = round(min(inv.duration_ms, max(0.0, inv.duration_ms - rng.uniform(0.05, 1.0))), 3)
    if inv.status != "oom":  # an OOM kill ends the runtime before it can report done
        done: dict[str, Any] = {"requestId": inv.request_id, "status": status}
        if inv.error_type:
            done["errorType"] = inv.error_type
        done |= {
            "tracing": tracing,
            "spans": [
                {"name": "responseLatency", "start": iso_ms(hs), "durationMs": response_ms},
                {
                    "name": "responseDuration",
                    "start": iso_ms(hs + timedelta(milliseconds=response_ms)),
                    "durationMs": round(rng.uniform(0.0, 0.3), 3),
                },
            ],
            "metrics": {"durationMs": round(inv.duration_ms - rng.uniform(0.0, 0.2), 3), "producedBytes": produced},
        }
        events.append({"time": iso_ms(inv.end), "type": "platform.runtimeDone", "record": done})

    metrics: dict[str, Any] = {
        "durationMs": inv.duration_ms,
        "billedDurationMs": inv.billed_ms,
        "memorySizeMB": inv.memory_mb,
        "maxMemoryUsedMB": inv.max_memory_mb,
    }
    if inv.init_ms is not None:
        metrics["initDurationMs"] = inv.init_ms
    report: dict[str, Any] = {"requestId": inv.request_id, "status": status}
    if inv.error_type:
        report["errorType"] = inv.error_type
    report |= {"metrics": metrics, "tracing": tracing}
    events.append({"time": iso_ms(inv.end + timedelta(milliseconds=1)), "type": "platform.report", "record": report})
    return events


def telemetry_requests(sim: Simulation, invocations: Iterable[SimInvocation] | None = None) -> list[WireRequest]:
    """One batch per execution environment and simulated second (by invocation end), as the extension in
    that environment would post it: its invocations run one after another, so events never interleave."""
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for inv in sim.invocations if invocations is None else invocations:
        if inv.status == "throttled":  # never reached an execution environment, so no telemetry
            continue
        spec = sim.by_name[inv.function]
        key = (inv.function, inv.version, inv.environment_id, _bucket(sim, inv.end))
        groups[key].extend(telemetry_events(inv, spec, sim))
    out = []
    for (fn, version, _env, second), events in groups.items():
        params = (("function", fn), ("version", version), ("region", sim.region), ("account", sim.account_id))
        out.append(WireRequest("telemetry", "/ingest/telemetry", params, dumps(events), len(events), second))
    return out


# ---------------------------------------------------------------- CloudWatch Logs via Firehose


def report_line(inv: SimInvocation, spec: FunctionSpec) -> str:
    """The REPORT log event exactly as Lambda writes it (tab separated, trailing tab, newline)."""
    line = (
        f"REPORT RequestId: {inv.request_id}\tDuration: {inv.duration_ms:.2f} ms\t"
        f"Billed Duration: {inv.billed_ms} ms\tMemory Size: {inv.memory_mb} MB\t"
        f"Max Memory Used: {inv.max_memory_mb} MB\t"
    )
    if inv.init_ms is not None:
        line += f"Init Duration: {inv.init_ms:.2f} ms\t"
    if inv.status == "timeout":
        line += "Status: timeout"
    elif inv.status == "oom":
        line += "Status: error\tError Type: Runtime.OutOfMemory"
    if spec.tracing:
        rng = _rng("xray", inv.request_id)
        line += f"\nXRAY TraceId: {inv.trace_id}\tSegmentId: {_hex(rng, 16)}\tSampled: true\t"
    return line + "\n"


def cloudwatch_messages(inv: SimInvocation, spec: FunctionSpec, sim: Simulation) -> list[tuple[int, str]]:
    """(timestamp ms, message) log events of one executed invocation in its log stream."""
    msgs: list[tuple[datetime, str]] = []
    if inv.init_ms is not None:
        msgs.append(
            (
                inv.start,
                f"INIT_START Runtime Version: {spec.runtime_version}\tRuntime Version ARN: {_runtime_arn(sim, spec)}\n",
            )
        )
    msgs.append((inv.handler_start, f"START RequestId: {inv.request_id} Version: {inv.version}\n"))
    msgs.extend((line.time, line.text + "\n") for line in function_lines(inv, spec, sim))
    if inv.status == "timeout":
        msgs.append(
            (inv.end, f"{iso_ms(inv.end)} {inv.request_id} Task timed out after {inv.timeout_s:.2f} seconds\n\n")
        )
    msgs.append((inv.end, f"END RequestId: {inv.request_id}\n"))
    msgs.append((inv.end, report_line(inv, spec)))
    return [(epoch_ms(t), m) for t, m in msgs]


def log_event_id(timestamp_ms: int, request_id: str, index: int) -> str:
    """A 56-digit CloudWatch event id: the millisecond timestamp, then 43 digits hashed from the event."""
    digest = hashlib.blake2b(f"{request_id}:{index}".encode(), digest_size=24).digest()
    return f"{timestamp_ms:013d}{int.from_bytes(digest, 'big') % 10**43:043d}"


def firehose_requests(sim: Simulation, invocations: Iterable[SimInvocation] | None = None) -> list[WireRequest]:
    """DATA_MESSAGEs per log stream and second, gzip'd and base64'd as Firehose records, <= 500 per delivery."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for inv in sim.invocations if invocations is None else invocations:
        if inv.status == "throttled":
            continue
        spec = sim.by_name[inv.function]
        events = groups[(inv.function, inv.log_stream, _bucket(sim, inv.end))]
        for i, (ts, message) in enumerate(cloudwatch_messages(inv, spec, sim)):
            events.append({"id": log_event_id(ts, inv.request_id, i), "timestamp": ts, "message": message})

    per_second: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for (fn, stream, second), events in groups.items():
        doc = {
            "messageType": "DATA_MESSAGE",
            "owner": sim.account_id,
            "logGroup": f"/aws/lambda/{fn}",
            "logStream": stream,
            "subscriptionFilters": [SUBSCRIPTION_FILTER],
            "logEvents": sorted(events, key=lambda e: e["timestamp"]),
        }
        data = base64.b64encode(gzip_bytes(dumps(doc))).decode("ascii")
        per_second[second].append((data, len(events)))

    out = []
    for second in sorted(per_second):
        records = per_second[second]
        for chunk_no, i in enumerate(range(0, len(records), FIREHOSE_MAX_RECORDS)):
            chunk = records[i : i + FIREHOSE_MAX_RECORDS]
            rng = _rng("firehose", sim.seed, second, chunk_no)
            body = {
                "requestId": _uuid(rng),
                "timestamp": epoch_ms(sim.start + timedelta(seconds=second + 1)),
                "records": [{"data": data} for data, _ in chunk],
            }
            headers = (("X-Amz-Firehose-Request-Id", body["requestId"]), ("X-Amz-Firehose-Protocol-Version", "1.0"))
            out.append(
                WireRequest(
                    "firehose", "/ingest/firehose", (), dumps(body), sum(n for _, n in chunk), second, headers=headers
                )
            )
    return out


# ---------------------------------------------------------------- API Gateway access logs


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not %b: locale


def api_id_for(seed: int) -> str:
    rng = _rng("api", seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))


def _client_ip(rng: random.Random) -> str:
    return (
        f"{rng.choice((3, 18, 34, 52, 54, 81, 92, 145, 203))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
        f"{rng.randint(1, 254)}"
    )


def access_log(inv: SimInvocation, spec: FunctionSpec) -> dict[str, str]:
    """One HTTP API access-log record; every ``$context`` value is a string as the JSON template quotes it."""
    rng = _rng("apigw", inv.request_id)
    method, _, path = spec.route_key.partition(" ")
    overhead = rng.uniform(1.0, 12.0)
    integration_ms = (inv.init_ms or 0.0) + inv.duration_ms + rng.uniform(0.5, 4.0)
    error = "-"
    if inv.status == "throttled":
        status, integration_status, body_len = 429, "429", 31  # {"message":"Too Many Requests"}
        error, integration_ms = "Rate Exceeded.", rng.uniform(2.0, 9.0)
    elif inv.status == "timeout" and inv.timeout_s >= 30:  # the HTTP API gives up at 30 s
        status, integration_status, body_len = 503, "-", 33  # {"message":"Service Unavailable"}
        error, integration_ms = "Integration timeout", 30_000.0
    elif inv.status in ("error", "timeout", "oom"):
        status, integration_status, body_len = 500, "200", 35  # {"message":"Internal Server Error"}
        error = (
            "The response from the Lambda function doesn't match the format that API Gateway expects. "
            f"Lambda invocation failed with status: 200. Lambda request id: {inv.request_id}"
        )
    else:
        status, integration_status = (201 if method == "POST" and rng.random() < 0.3 else 200), "200"
        body_len = rng.randint(2, 8000)
    return {
        "requestId": inv.api_request_id,
        "ip": _client_ip(rng),
        "requestTime": f"{inv.start:%d}/{_MONTHS[inv.start.month - 1]}/{inv.start:%Y:%H:%M:%S} +0000",
        "requestTimeEpoch": str(epoch_ms(inv.start)),
        "httpMethod": method,
        "routeKey": spec.route_key,
        "path": path,
        "status": str(status),
        "protocol": "HTTP/1.1" if rng.random() < 0.7 else "HTTP/2.0",
        "responseLength": str(body_len),
        "integrationStatus": integration_status,
        "integrationLatency": str(int(integration_ms)),
        "responseLatency": str(int(integration_ms + overhead)),
        "integrationErrorMessage": error,
        "functionName": spec.name,
        "userAgent": rng.choice(
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
                "okhttp/4.12.0",
                "python-requests/2.32.3",
                "curl/8.7.1",
            )
        ),
    }


def apigateway_requests(
    sim: Simulation,
    invocations: Iterable[SimInvocation] | None = None,
    api_id: str | None = None,
    stage: str = DEFAULT_STAGE,
) -> list[WireRequest]:
    """JSON-lines access logs per simulated second (by response time)."""
    api = api_id or api_id_for(sim.seed)
    groups: dict[int, list[bytes]] = defaultdict(list)
    for inv in sim.invocations if invocations is None else invocations:
        groups[_bucket(sim, inv.end)].append(dumps(access_log(inv, sim.by_name[inv.function])))
    return [
        WireRequest(
            "apigateway",
            "/ingest/apigateway",
            (("api", api), ("stage", stage)),
            b"\n".join(lines) + b"\n",
            len(lines),
            second,
            "application/x-ndjson",
        )
        for second, lines in sorted(groups.items())
    ]


# ---------------------------------------------------------------- AppSync (GraphQL) logs


def appsync_api_id_for(seed: int) -> str:
    """A GraphQL API's id as AppSync shapes them: 26 lower-case letters and digits."""
    rng = _rng("appsync", seed)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(26))


def graphql_field(spec: FunctionSpec) -> tuple[str, str, str]:
    """(parent type, field, operation name) of the GraphQL field a function resolves: writes are mutations."""
    words = [w.capitalize() for w in spec.name.replace("_", "-").split("-") if w]
    mutation = spec.route_key.startswith(("POST", "PUT", "DELETE", "PATCH"))
    field = (words[0].lower() + "".join(words[1:])) if words else "field"
    return ("Mutation" if mutation else "Query"), field, ("Run" if mutation else "Get") + "".join(words)


def appsync_lines(inv: SimInvocation, spec: FunctionSpec, api: str, region: str, account: str) -> list[str]:
    """The lines AppSync writes for one GraphQL request whose only resolver is the function (a Lambda data source,
    field-level logging ALL, verbose content on): the query, the resolver's mapping and tracing, the summaries.
    Durations are nanoseconds, as AppSync writes them."""
    rng = _rng("appsync", inv.request_id)
    request = _uuid(rng)
    parent, field, operation = graphql_field(spec)
    resolved_ns = int(((inv.init_ms or 0.0) + inv.duration_ms + rng.uniform(1.0, 6.0)) * 1e6)
    offset_ns = rng.randint(100_000, 900_000)
    total_ns = offset_ns + resolved_ns + rng.randint(200_000, 2_000_000)
    kind = "mutation" if parent == "Mutation" else "query"
    resolver = f"arn:aws:appsync:{region}:{account}:apis/{api}/types/{parent}/fields/{field}"
    failed = inv.status in ("error", "timeout", "oom")
    mapping: dict[str, Any] = {
        "logType": "ResponseMapping",
        "path": [field],
        "fieldName": field,
        "parentType": parent,
        "resolverArn": resolver,
        "requestId": request,
        "graphQLAPIId": api,
        "fieldInError": failed,
        "errors": [f"Lambda:{inv.error_type or 'Unhandled'}"] if failed else [],
    }
    tracing = {
        "duration": resolved_ns,
        "logType": "Tracing",
        "path": [field],
        "fieldName": field,
        "startOffset": offset_ns,
        "resolverArn": resolver,
        "requestId": request,
        "parentType": parent,
        "returnType": "Order",
        "graphQLAPIId": api,
    }
    start = inv.start.astimezone(UTC)
    execution = {
        "duration": total_ns,
        "logType": "ExecutionSummary",
        "requestId": request,
        "startTime": iso_ms(start),
        "endTime": iso_ms(start + timedelta(microseconds=total_ns // 1000)),
        "parsing": {"startOffset": 49_033, "duration": 34_784},
        "version": 1,
        "validation": {"startOffset": 129_048, "duration": 69_126},
        "graphQLAPIId": api,
    }
    summary = {"logType": "RequestSummary", "requestId": request, "graphQLAPIId": api, "statusCode": 200,
               "latency": total_ns + rng.randint(1_000_000, 5_000_000)}  # fmt: skip
    query = f"{kind} {operation}($id: ID!) {{ {field}(id: $id) {{ id status }} }}"
    return [
        f'{request} GraphQL Query: {query}, Operation: {operation}, Variables: {{"id": "{inv.request_id[:8]}"}}',
        *(dumps(line).decode() for line in (mapping, tracing, execution, summary)),
    ]


def appsync_requests(
    sim: Simulation, invocations: Iterable[SimInvocation] | None = None, every: int = 3
) -> list[WireRequest]:
    """AppSync's log group through a CloudWatch Logs subscription and Firehose: every ``every``-th function (by
    name) also serves a GraphQL field, each of its invocations that ran is a GraphQL request."""
    api = appsync_api_id_for(sim.seed)
    graphql = {spec.name for i, spec in enumerate(sorted(sim.functions, key=lambda f: f.name)) if i % every == 0}
    per_second: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for inv in sim.invocations if invocations is None else invocations:
        if inv.function not in graphql or inv.status == "throttled":
            continue
        ts = epoch_ms(inv.end)
        lines = appsync_lines(inv, sim.by_name[inv.function], api, sim.region, sim.account_id)
        per_second[_bucket(sim, inv.end)].extend(
            {"id": log_event_id(ts, inv.request_id, 100 + i), "timestamp": ts, "message": line}
            for i, line in enumerate(lines)
        )
    out = []
    for second, events in sorted(per_second.items()):
        doc = {
            "messageType": "DATA_MESSAGE",
            "owner": sim.account_id,
            "logGroup": f"/aws/appsync/apis/{api}",
            "logStream": _hex(_rng("appsync-stream", sim.seed, second), 32),
            "subscriptionFilters": [SUBSCRIPTION_FILTER],
            "logEvents": events,
        }
        rng = _rng("appsync-firehose", sim.seed, second)
        body = {
            "requestId": _uuid(rng),
            "timestamp": epoch_ms(sim.start + timedelta(seconds=second + 1)),
            "records": [{"data": base64.b64encode(gzip_bytes(dumps(doc))).decode("ascii")}],
        }
        headers = (("X-Amz-Firehose-Request-Id", body["requestId"]), ("X-Amz-Firehose-Protocol-Version", "1.0"))
        out.append(WireRequest("firehose", "/ingest/firehose", (), dumps(body), len(events), second, headers=headers))
    return out


# ---------------------------------------------------------------- CloudTrail


@dataclass(frozen=True)
class _Principals:
    deploy_role: dict[str, Any]
    invoke_role: dict[str, Any]
    ci_user: dict[str, Any]
    admin_user: dict[str, Any]


def _principals(sim: Simulation) -> _Principals:
    rng = _rng("principals", sim.seed)
    acct = sim.account_id

    def role(name: str, session: str, invoked_by: str | None) -> dict[str, Any]:
        role_id = _upper_id(rng, "AROA")
        ident: dict[str, Any] = {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{acct}:assumed-role/{name}/{session}",
            "accountId": acct,
            "accessKeyId": _upper_id(rng, "ASIA", 16),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": f"arn:aws:iam::{acct}:role/{name}",
                    "accountId": acct,
                    "userName": name,
                },
                "webIdFederationData": {},
                "attributes": {
                    "creationDate": iso_s(sim.start - timedelta(minutes=rng.randint(1, 50))),
                    "mfaAuthenticated": "false",
                },
            },
        }
        if invoked_by:
            ident["invokedBy"] = invoked_by
        return ident

    def user(name: str) -> dict[str, Any]:
        return {
            "type": "IAMUser",
            "principalId": _upper_id(rng, "AIDA"),
            "arn": f"arn:aws:iam::{acct}:user/{name}",
            "accountId": acct,
            "accessKeyId": _upper_id(rng, "AKIA", 16),
            "userName": name,
        }

    return _Principals(
        deploy_role=role("GitHubActionsDeployRole", "GitHubActions", None),
        invoke_role=role("apigw-lambda-invoke", "apigateway-invoke", "apigateway.amazonaws.com"),
        ci_user=user("ci-smoke-tests"),
        admin_user=user("alice"),
    )


def _trail_record(
    sim: Simulation,
    rng: random.Random,
    when: datetime,
    name: str,
    identity: dict[str, Any],
    *,
    version: str = "1.09",
    source: str = "lambda.amazonaws.com",
    ip: str = "",
    agent: str = "",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    category: str = "Management",
    event_type: str = "AwsApiCall",
    read_only: bool = False,
    request_id: str | None = None,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": version,
        "userIdentity": identity,
        "eventTime": iso_s(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": sim.region,
        "sourceIPAddress": ip or _client_ip(rng),
        "userAgent": agent
        or "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.9",
        "requestParameters": request,
        "responseElements": response,
        "requestID": request_id or _uuid(rng),
        "eventID": _uuid(rng),
        "readOnly": read_only,
        "eventType": event_type,
        "managementEvent": category == "Management",
        "recipientAccountId": sim.account_id,
        "eventCategory": category,
    }
    if source.startswith("lambda") and not rec["sourceIPAddress"].endswith(".amazonaws.com"):
        rec["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"lambda.{sim.region}.amazonaws.com",
        }
    return rec


def _function_config(sim: Simulation, spec: FunctionSpec, rng: random.Random, version: str) -> dict[str, Any]:
    return {
        "functionName": spec.name,
        "functionArn": spec.arn(sim.region, sim.account_id, version if version != "$LATEST" else None),
        "runtime": spec.runtime,
        "role": f"arn:aws:iam::{sim.account_id}:role/{spec.name}-role",
        "handler": "index.handler" if _is_node(spec) else "app.handler",
        "codeSize": rng.randint(2_000, 9_000_000),
        "description": "",
        "timeout": int(spec.timeout_s),
        "memorySize": spec.memory_mb,
        "lastModified": f"{sim.start:%Y-%m-%dT%H:%M:%S}.000+0000",
        "codeSha256": base64.b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode(),
        "version": version,
        "tracingConfig": {"mode": "Active" if spec.tracing else "PassThrough"},
        "revisionId": _uuid(rng),
        "state": "Active",
        "packageType": "Zip",
        "architectures": ["arm64"],
        "ephemeralStorage": {"size": 512},
        "loggingConfig": {"logFormat": spec.log_format, "logGroup": f"/aws/lambda/{spec.name}"},
    }


def management_events(sim: Simulation) -> list[tuple[datetime, dict[str, Any]]]:
    """The control-plane story of the run: a console login, reserved-concurrency settings, a deploy or two."""
    rng = _rng("management", sim.seed)
    who = _principals(sim)
    t = sim.start
    out: list[tuple[datetime, dict[str, Any]]] = []

    mfa = "Yes" if rng.random() < 0.7 else "No"
    login = _trail_record(
        sim,
        rng,
        t,
        "ConsoleLogin",
        who.admin_user,
        version="1.08",
        source="signin.amazonaws.com",
        agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        response={"ConsoleLogin": "Success"},
        event_type="AwsConsoleSignIn",
    )
    login["additionalEventData"] = {
        "LoginTo": "https://console.aws.amazon.com/console/home",
        "MobileVersion": "No",
        "MFAUsed": mfa,
    }
    out.append((t, login))

    for i, spec in enumerate(sim.functions):
        if spec.reserved_concurrency is None:
            continue
        when = t + timedelta(milliseconds=200 + 50 * i)
        out.append(
            (
                when,
                _trail_record(
                    sim,
                    rng,
                    when,
                    "PutFunctionConcurrency20171031",
                    who.deploy_role,
                    version="1.10",
                    agent="Boto3/1.35.10 md/Botocore#1.35.10 ua/2.0 os/linux",
                    request={"functionName": spec.name, "reservedConcurrentExecutions": spec.reserved_concurrency},
                    response={"reservedConcurrentExecutions": spec.reserved_concurrency},
                ),
            )
        )

    for spec in sim.functions:  # canaries were just deployed: code + configuration of the new version
        if len(spec.versions) < 2:
            continue
        new = spec.versions[-1]
        when = t + timedelta(milliseconds=rng.randint(300, 900))
        out.append(
            (
                when,
                _trail_record(
                    sim,
                    rng,
                    when,
                    "UpdateFunctionCode20150331v2",
                    who.deploy_role,
                    version="1.09",
                    request={"functionName": spec.arn(sim.region, sim.account_id), "publish": True, "dryRun": False},
                    response=_function_config(sim, spec, rng, new),
                ),
            )
        )
        when += timedelta(milliseconds=400)
        out.append(
            (
                when,
                _trail_record(
                    sim,
                    rng,
                    when,
                    "UpdateFunctionConfiguration20150331v2",
                    who.deploy_role,
                    version="1.09",
                    request={
                        "functionName": spec.name,
                        "memorySize": spec.memory_mb,
                        "timeout": int(spec.timeout_s),
                        "tracingConfig": {"mode": "Active" if spec.tracing else "PassThrough"},
                    },
                    response=_function_config(sim, spec, rng, "$LATEST"),
                ),
            )
        )

    if sim.functions and rng.random() < 0.5:
        spec = sim.functions[rng.randrange(len(sim.functions))]
        when = t + timedelta(seconds=rng.uniform(0.0, max(sim.duration_s - 1.0, 0.0)))
        source_arn = f"arn:aws:execute-api:{sim.region}:{sim.account_id}:{api_id_for(sim.seed)}/*/*"
        statement = dumps(
            {
                "Sid": f"apigw-{_hex(rng, 8)}",
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Resource": spec.arn(sim.region, sim.account_id),
                "Condition": {"ArnLike": {"AWS:SourceArn": source_arn}},
            }
        ).decode()
        out.append(
            (
                when,
                _trail_record(
                    sim,
                    rng,
                    when,
                    "AddPermission20150331v2",
                    who.admin_user,
                    version="1.09",
                    request={
                        "functionName": spec.name,
                        "statementId": f"apigw-{_hex(rng, 8)}",
                        "action": "lambda:InvokeFunction",
                        "principal": "apigateway.amazonaws.com",
                        "sourceArn": source_arn,
                    },
                    response={"statement": statement},
                ),
            )
        )
    return out


def invoke_event(inv: SimInvocation, spec: FunctionSpec, sim: Simulation, who: _Principals) -> dict[str, Any]:
    """The Lambda ``Invoke`` data event, with ``TooManyRequestsException`` when the call was throttled."""
    rng = _rng("invoke", inv.request_id)
    qualifier = inv.alias or (inv.version if inv.version != "$LATEST" else None)
    arn = spec.arn(sim.region, sim.account_id)
    via_api = rng.random() < 0.9
    if via_api:
        identity, ip, agent = who.invoke_role, "apigateway.amazonaws.com", "apigateway.amazonaws.com"
    else:
        identity, ip, agent = who.ci_user, _client_ip(rng), ""
    request: dict[str, Any] = {"functionName": spec.arn(sim.region, sim.account_id, qualifier)}
    if via_api:
        request["sourceArn"] = f"arn:aws:execute-api:{sim.region}:{sim.account_id}:{api_id_for(sim.seed)}/*/*"
    rec = _trail_record(
        sim,
        rng,
        inv.start,
        "Invoke",
        identity,
        version="1.09",
        ip=ip,
        agent=agent,
        request=request,
        response=None,
        category="Data",
        request_id=inv.request_id,
    )
    extra: dict[str, Any] = {"functionVersion": spec.arn(sim.region, sim.account_id, inv.version)}
    if inv.status == "throttled":
        rec["errorCode"] = "TooManyRequestsException"
        rec["errorMessage"] = "Rate Exceeded."
        extra["Reason"] = inv.throttle_reason
    rec["additionalEventData"] = extra
    rec["resources"] = [{"accountId": sim.account_id, "type": "AWS::Lambda::Function", "ARN": arn}]
    return rec


def cloudtrail_requests(
    sim: Simulation,
    invocations: Iterable[SimInvocation] | None = None,
    management: Iterable[tuple[datetime, dict[str, Any]]] | None = None,
) -> list[WireRequest]:
    """CloudTrail log files (``{"Records": [...]}``): management events first, Invoke events per second.
    With no arguments, the whole run; otherwise just the given invocations and management events."""
    who = _principals(sim)
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for when, rec in management_events(sim) if management is None and invocations is None else (management or ()):
        groups[_bucket(sim, when)].append(rec)
    for inv in sim.invocations if invocations is None else invocations:
        groups[_bucket(sim, inv.end)].append(invoke_event(inv, sim.by_name[inv.function], sim, who))
    out = []
    for second in sorted(groups):
        records = groups[second]
        for i in range(0, len(records), CLOUDTRAIL_MAX_RECORDS):
            chunk = records[i : i + CLOUDTRAIL_MAX_RECORDS]
            out.append(
                WireRequest("cloudtrail", "/ingest/cloudtrail", (), dumps({"Records": chunk}), len(chunk), second)
            )
    return out


# ---------------------------------------------------------------- all of it


def iter_render(
    sim: Simulation, api_id: str | None = None, stage: str = DEFAULT_STAGE, *, appsync: bool = False
) -> Iterator[list[WireRequest]]:
    """The run's requests one simulated second at a time (so long runs never hold every payload at once),
    each second's list ordered CloudTrail, telemetry, Firehose, API Gateway (then AppSync's logs, if asked)."""
    by_second: dict[int, list[SimInvocation]] = defaultdict(list)
    for inv in sim.invocations:
        by_second[_bucket(sim, inv.end)].append(inv)
    management: dict[int, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    for when, rec in management_events(sim):
        management[_bucket(sim, when)].append((when, rec))
    for second in sorted(by_second.keys() | management.keys()):
        invs = by_second.get(second, [])
        yield [
            *cloudtrail_requests(sim, invs, management.get(second, [])),
            *telemetry_requests(sim, invs),
            *firehose_requests(sim, invs),
            *apigateway_requests(sim, invs, api_id, stage),
            *(appsync_requests(sim, invs) if appsync else []),
        ]


def render(sim: Simulation, api_id: str | None = None, stage: str = DEFAULT_STAGE) -> list[WireRequest]:
    """Every request of the run, second by second (the order ``iter_render`` gives)."""
    return [req for batch in iter_render(sim, api_id, stage) for req in batch]
