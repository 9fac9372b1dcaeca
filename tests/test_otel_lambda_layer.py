"""The OpenTelemetry Lambda collector layer's telemetryapi receiver, unchanged, sending to fnscope's /v1/logs.

The OTLP payloads are built here exactly as the receiver builds them, a line-for-line port of ``createLogs`` and
``createPlatformMessage`` in open-telemetry/opentelemetry-lambda
collector/receiver/telemetryapireceiver/receiver.go at commit d3fa4066054c0a7eb95a2bffe281743b4b4bf315 (the last to
change that file in the snapshot read, c72580eb31f561c6cac4770cd274ea1e06e0b4b0), with ``log_report: true`` as
examples/otel-lambda-collector.yaml sets it. The resource is ``newTelemetryAPIReceiver``'s: faas.invoked_provider,
service.name and faas.name from AWS_LAMBDA_FUNCTION_NAME, faas.max_memory, faas.version, faas.invoked_region.

The batch is the Telemetry API batch the native path's tests use (tests/fixtures/telemetry/lifecycle.json), so the
two paths are compared on the same events: the same invocation facts under the same ids, the same text lines under
the same ids, and, on a real `fnscope up` sent both, each fact and line once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import yaml
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from fnscope.collector.formats import otel_lambda, otlp, telemetry
from fnscope.events import FunctionLog, Invocation
from fnscope.sink import IngestContext
from tests.conftest import ROOT
from tests.fixtures.formats import gzipped, load_json, read_bytes
from tests.test_import_cloudtrail import start_up

SCOPE = "github.com/open-telemetry/opentelemetry-lambda/collector/receiver/telemetryapi"
FUNCTION = "orders-api"
ENV = {"AWS_LAMBDA_FUNCTION_NAME": FUNCTION, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
ENV |= {"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "eu-west-1"}
# receiver.go's severityTextToNumber, and pdata's SeverityNumber.String() for the text it sets
SEVERITY = {"TRACE": (1, "Trace"), "DEBUG": (5, "Debug"), "INFO": (9, "Info"), "WARN": (13, "Warn")}
SEVERITY |= {"WARNING": (13, "Warn"), "ERROR": (17, "Error"), "FATAL": (21, "Fatal"), "CRITICAL": (21, "Fatal")}


def go_float(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def go_list(items: list[Any]) -> str:
    return "[" + " ".join(str(i) for i in items) + "]"  # fmt's %v of a []interface{}


def platform_message(rid: str, version: str, type_: str, record: dict[str, Any]) -> str:
    """createPlatformMessage / createPlatformReportMessage."""
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else None
    if type_ == "platform.start":
        return f"START RequestId: {rid} Version: {version}" if rid and version else ""
    if type_ == "platform.runtimeDone":
        return f"END RequestId: {rid} Version: {version}" if rid and version else ""
    if type_ == "platform.report":
        if not rid:
            return ""
        message = f"REPORT RequestId: {rid}"
        if metrics is None:
            return message
        for key, label, digits, unit in (
            ("durationMs", "Duration", 2, "ms"),
            ("billedDurationMs", "Billed Duration", 0, "ms"),
            ("memorySizeMB", "Memory Size", 0, "MB"),
            ("maxMemoryUsedMB", "Max Memory Used", 0, "MB"),
            ("initDurationMs", "Init Duration", 2, "ms"),
        ):
            if isinstance(metrics.get(key), float):  # Go's .(float64): JSON numbers decode to float64
                message += f" {label}: {go_float(metrics[key], digits)} {unit}"
        status = record.get("status") if isinstance(record.get("status"), str) else "success"
        return message + (f" Status: {status}" if status != "success" else "")
    if type_ == "platform.initStart":
        rv, arn = record.get("runtimeVersion", ""), record.get("runtimeVersionArn", "")
        return f"INIT_START Runtime Version: {rv} Runtime Version ARN: {arn}" if rv or arn else ""
    if type_ == "platform.initRuntimeDone":
        return f"INIT_RUNTIME_DONE Status: {record['status']}" if record.get("status") else ""
    if type_ == "platform.initReport":
        duration = float(metrics["durationMs"]) if metrics and "durationMs" in metrics else 0.0
        return (
            f"INIT_REPORT Initialization Type: {record.get('initializationType', '')} Phase: {record.get('phase', '')} "
            f"Status: {record.get('status', '')} Duration: {go_float(duration, 2)} ms"
        )
    if type_ == "platform.telemetrySubscription":
        return f"TELEMETRY: {record['name']} Subscribed Types: {go_list(record.get('types', []))}"
    if type_ == "platform.logsDropped":
        return (
            f"LOGS_DROPPED DroppedRecords: {go_float(record['droppedRecords'], 0)} "
            f"DroppedBytes: {go_float(record['droppedBytes'], 0)} Reason: {record['reason']}"
        )
    return ""


def nanos(text: str) -> int:
    time = datetime.fromisoformat(text)
    return int(time.timestamp()) * 1_000_000_000 + time.microsecond * 1000


def any_value(value: Any) -> AnyValue:
    """pcommon.Value.FromRaw for what JSON decodes to."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    raise TypeError(value)


def receiver_export(batch: list[dict[str, Any]], function: str = FUNCTION) -> ExportLogsServiceRequest:
    """The logs the receiver exports for one Telemetry API push (createLogs, log_report on)."""
    env = ENV | {"AWS_LAMBDA_FUNCTION_NAME": function}
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource = {"faas.invoked_provider": "aws", "service.name": env["AWS_LAMBDA_FUNCTION_NAME"]}
    resource |= {
        "faas.name": env["AWS_LAMBDA_FUNCTION_NAME"],
        "faas.max_memory": env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
    }
    resource |= {"faas.version": env["AWS_LAMBDA_FUNCTION_VERSION"], "faas.invoked_region": env["AWS_REGION"]}
    resource_logs.resource.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in resource.items())
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE
    current, version = "", ""
    for el in batch:
        log = LogRecord()
        log.attributes.append(KeyValue(key="type", value=any_value(el["type"])))
        log.time_unix_nano = nanos(el["time"])
        log.observed_time_unix_nano = log.time_unix_nano + 5_000_000
        record = el["record"]
        if isinstance(record, dict):
            rid = record.get("requestId") if isinstance(record.get("requestId"), str) else ""
            if rid and el["type"] == "platform.start":
                current = rid
            rid = rid or current
            if rid:
                log.attributes.append(KeyValue(key="faas.invocation_id", value=any_value(rid)))
            if isinstance(record.get("timestamp"), str):
                log.time_unix_nano = nanos(record["timestamp"])
            if isinstance(record.get("level"), str):
                number, text = SEVERITY.get(record["level"].upper(), (0, "Unspecified"))
                log.severity_number, log.severity_text = number, text  # type: ignore[assignment]
            if el["type"].startswith("platform"):
                if el["type"] == "platform.initStart" and record.get("functionVersion"):
                    version = record["functionVersion"]
                elif el["type"] == "platform.start" and record.get("version"):
                    version = record["version"]
                message = platform_message(rid, version, el["type"], record)
                if message:
                    log.body.string_value = message
            elif isinstance(record.get("message"), str):
                log.body.string_value = record["message"]
                for key, value in record.items():
                    if key not in ("level", "message", "requestId", "timestamp", "type"):
                        log.attributes.append(KeyValue(key=key, value=any_value(value)))
        else:
            if current:
                log.attributes.append(KeyValue(key="faas.invocation_id", value=any_value(current)))
            if isinstance(record, str):
                log.body.string_value = record
        if el["type"] == "platform.runtimeDone":
            current = ""
        scope_logs.log_records.append(log)
    return request


# the extension is told what the layer reads from its environment: ?function=, &version=, &region=
CTX = IngestContext(tenant="acme", params={"function": FUNCTION, "version": "$LATEST", "region": "eu-west-1"})


def batch() -> list[dict[str, Any]]:
    return load_json("telemetry", "lifecycle.json")


def by_layer() -> list[Any]:
    parsed = otlp.parse(receiver_export(batch()).SerializeToString(), CTX, "application/x-protobuf")
    assert parsed.dead == []
    return parsed.events


def by_extension() -> list[Any]:
    parsed = telemetry.parse(read_bytes("telemetry", "lifecycle.json"), CTX)
    assert parsed.dead == []
    return parsed.events


FACTS = ("event_id", "function", "version", "region", "kind", "request_id", "status", "duration_ms")
FACTS += ("billed_duration_ms", "memory_size_mb", "max_memory_used_mb", "init_duration_ms", "cold_start")


def facts(events: list[Any], kind: str) -> list[tuple[Any, ...]]:
    return [tuple(getattr(e, f) for f in FACTS) for e in events if isinstance(e, Invocation) and e.kind == kind]


@pytest.mark.parametrize("kind", ["report", "start", "init_start", "init_report"])
def test_the_layer_states_the_invocation_facts_the_extension_states(kind: str) -> None:
    layer, extension = facts(by_layer(), kind), facts(by_extension(), kind)
    assert layer == extension and len(layer) == 1


def test_the_report_is_a_cold_start_with_its_duration_billing_and_memory() -> None:
    (report,) = [e for e in by_layer() if isinstance(e, Invocation) and e.kind == "report"]
    assert (report.duration_ms, report.billed_duration_ms, report.init_duration_ms) == (120.75, 121.0, 380.25)
    assert (report.memory_size_mb, report.max_memory_used_mb, report.cold_start) == (256, 88, True)
    assert (report.function, report.source, report.status) == (FUNCTION, "otlp", "success")


def test_a_text_line_gets_the_id_every_path_gives_it() -> None:
    def lines(events: list[Any]) -> dict[str, tuple[str, str, str]]:
        return {e.event_id: (e.message, e.request_id, e.level) for e in events if isinstance(e, FunctionLog)}

    layer, extension = lines(by_layer()), lines(by_extension())
    text = next(i for i, (m, _, _) in extension.items() if m.endswith("looking up order 17"))
    assert layer[text] == extension[text]
    # a JSON-format line: the receiver keeps its fields but not its Telemetry time, so its id is its own
    (json_line,) = [v for v in layer.values() if v[0] == "order 17 has no invoice"]
    assert json_line[1:] == ("5a1f0c2e-xmpl-4e9a-8c6f-2d4b1e0a9f37", "WARN")


def test_a_failed_invocation_keeps_its_status() -> None:
    failed = [dict(e) for e in batch()]
    for element in failed:
        if element["type"] == "platform.report":
            element["record"] = {**element["record"], "status": "timeout"}
    export = receiver_export(failed)
    parsed = otlp.parse(export.SerializeToString(), CTX, "application/x-protobuf")
    (report,) = [e for e in parsed.events if isinstance(e, Invocation) and e.kind == "report"]
    assert report.status == "timeout"


def test_durations_come_to_the_hundredth_the_receiver_writes() -> None:
    precise = [dict(e) for e in batch()]
    for element in precise:
        if element["type"] == "platform.report":
            element["record"] = {
                **element["record"],
                "metrics": {**element["record"]["metrics"], "durationMs": 120.756},
            }
    parsed = otlp.parse(receiver_export(precise).SerializeToString(), CTX, "application/x-protobuf")
    (report,) = [e for e in parsed.events if isinstance(e, Invocation) and e.kind == "report"]
    assert report.duration_ms == 120.76


def test_other_otlp_logs_are_still_plain_lines() -> None:
    export = receiver_export(batch())
    export.resource_logs[0].scope_logs[0].scope.name = "my-app"
    parsed = otlp.parse(export.SerializeToString(), CTX, "application/x-protobuf")
    assert {type(e) for e in parsed.events} == {FunctionLog}


def test_the_example_collector_config_turns_on_the_report_and_sends_logs_here() -> None:
    config = yaml.safe_load((ROOT / "examples" / "otel-lambda-collector.yaml").read_text())
    assert config["receivers"]["telemetryapi"]["log_report"] is True
    exporter = config["exporters"]["otlphttp/fnscope"]
    assert exporter["logs_endpoint"].endswith("/v1/logs")
    assert re.fullmatch(r"Bearer \$\{env:\w+\}", exporter["headers"]["Authorization"])
    assert config["service"]["pipelines"]["logs"]["receivers"] == ["telemetryapi"]
    assert list(config["service"]["pipelines"]) == ["logs"]  # the receiver's metrics and init span stay out


# --- end to end: both paths into one `fnscope up` -------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("up")
    url, proc = start_up(tmp / "data", tmp / "up.log")
    yield url
    proc.stop()


def _stats(url: str, function: str) -> dict[str, Any]:
    """The function's row (without its name) once the store's per-minute health, rebuilt in the background, has it."""
    params = {"since": "1d", "function": function}
    deadline = time.monotonic() + 60
    while True:
        rows = httpx.get(f"{url}/api/stats", params=params, timeout=30).json()["functions"]
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return {k: v for k, v in rows[0].items() if k != "function"}
        time.sleep(0.3)


def recent_batch() -> bytes:
    """The same batch an hour ago (the store keeps invocations for days, not since 2024)."""
    hour = datetime.now(UTC) - timedelta(hours=1)
    return read_bytes("telemetry", "lifecycle.json").replace(b"2024-03-05T10:", f"{hour:%Y-%m-%dT%H}:".encode())


def send_layer(url: str, export: ExportLogsServiceRequest) -> None:
    """As the layer's otlphttp exporter sends: protobuf, gzip."""
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    answer = httpx.post(f"{url}/v1/logs", content=gzipped(export.SerializeToString()), headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


def send_extension(url: str, native: bytes, function: str) -> None:
    answer = httpx.post(f"{url}/ingest/telemetry", params=CTX.params | {"function": function}, content=native)
    assert answer.status_code == 200, answer.text


def test_the_layer_gives_the_stats_the_extension_gives_and_both_together_count_once(instance: str) -> None:
    url, native = instance, recent_batch()
    send_layer(url, receiver_export(orjson.loads(native), "by-layer"))
    send_extension(url, native, "by-extension")
    # one function sending both ways, the layer's export also as OTLP/JSON
    both = receiver_export(orjson.loads(native))
    send_layer(url, both)
    headers = {"Content-Type": "application/json"}
    assert httpx.post(f"{url}/v1/logs", content=MessageToJson(both), headers=headers, timeout=30).status_code == 200
    send_extension(url, native, FUNCTION)

    layer, extension, together = (_stats(url, f) for f in ("by-layer", "by-extension", FUNCTION))
    assert layer == extension == together
    assert (layer["invocations"], layer["cold_starts"], layer["errors"]) == (1, 1, 0)
    assert (layer["p50_ms"], layer["avg_init_ms"], layer["memory_utilisation_max"]) == (120.75, 380.25, 0.3438)
    search = {"q": '"looking up order 17"', "since": "1d", "function": FUNCTION}
    assert len(httpx.get(f"{url}/api/search", params=search, timeout=30).json()["results"]) == 1


# Per platform type: the line's start, and what repeats to ~100 KB without ever completing it: the shape that
# makes several ``(.*)`` groups under fullmatch backtrack polynomially (a 15 KB INIT_REPORT took 30 s).
CRAFTED = {
    "platform.initReport": ("INIT_REPORT Initialization Type: ", " Phase: Status: Duration: 1"),
    "platform.initStart": ("INIT_START Runtime Version: ", " Runtime Version ARN"),
    "platform.restoreStart": ("RESTORE_START Runtime Version: ", " Runtime Version ARN"),
    "platform.restoreReport": ("RESTORE_REPORT Status: ", " Duration: 1"),
    "platform.telemetrySubscription": ("TELEMETRY: ", " Subscribed Types: ["),
    "platform.extension": ("EXTENSION Name: ", " State: Events: ["),
    "platform.report": ("REPORT RequestId: r", " Duration: 1.00 ms Status:"),
}
_LINEAR = """
import sys
from fnscope.collector.formats import otel_lambda
from tests.test_otel_lambda_layer import CRAFTED
for type_, (head, repeat) in CRAFTED.items():
    body = head + repeat * (100_000 // len(repeat))
    assert otel_lambda.platform_record(type_, body) == {}, type_
    pattern = otel_lambda._REPORT if type_ == "platform.report" else otel_lambda._FORMATS[type_]
    pattern.fullmatch(body)  # the patterns themselves, past the size cap: one pass each
print("read", len(CRAFTED))
"""


def test_crafted_platform_bodies_are_read_in_one_pass_and_long_ones_refused() -> None:
    # Under a generous timeout in a child process: the old patterns took hours on these, holding the GIL.
    done = subprocess.run([sys.executable, "-c", _LINEAR], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["read", str(len(CRAFTED))]
    # a real line still reads; one past the cap is no platform event, whatever it says
    line = "INIT_REPORT Initialization Type: on-demand Phase: init Status: timeout Duration: 3000.00 ms"
    assert otel_lambda.platform_record("platform.initReport", line) == {
        "initializationType": "on-demand", "phase": "init", "status": "timeout", "metrics": {"durationMs": 3000.0}
    }  # fmt: skip
    padded = line.replace("on-demand", "on-demand" + "x" * otel_lambda.MAX_PLATFORM_BODY)
    assert otel_lambda.platform_record("platform.initReport", padded) == {}
