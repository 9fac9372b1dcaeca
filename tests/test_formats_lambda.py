"""Lambda log formats (text lines, Telemetry/Logs API, CloudWatch Logs subscriptions, Firehose) on the third-party
corpus (tests/corpus.py; each quirk is also pinned without it by tests/test_quirks_*)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fnscope.collector.formats import cloudwatch, firehose, telemetry
from fnscope.collector.formats.base import Parsed
from fnscope.collector.formats.lambda_text import parse_line, parse_text_block
from fnscope.decoding.compression import inflate
from fnscope.decoding.errors import BadPayload, UnusableBody
from fnscope.events import Event, FunctionLog, Invocation, log_line_id, stable_id
from fnscope.sink import IngestContext
from tests import corpus

SAMPLES = corpus.SAMPLES
LAMBDA = SAMPLES / "lambda_logs"
CWL = SAMPLES / "cloudwatch_logs_subscription"
FIREHOSE = SAMPLES / "firehose"
T0 = datetime(2020, 3, 27, 3, 40, 5, tzinfo=UTC)
CTX = IngestContext(tenant="acme", params={"function": "my-fn", "region": "eu-west-1", "account": "123456789012"})


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def invocations(events: list[Event], kind: str | None = None) -> list[Invocation]:
    return [e for e in events if isinstance(e, Invocation) and (kind is None or e.kind == kind)]


def logs(events: list[Event]) -> list[FunctionLog]:
    return [e for e in events if isinstance(e, FunctionLog)]


def line(message: str, **kw: Any) -> list[Event]:
    return parse_line(message, time=T0, function="my-fn", event_id="ev-1", ctx=CTX, source="cloudwatch", **kw)


def cw_body(messages: list[str | dict[str, Any]], group: str = "/aws/lambda/my-fn") -> bytes:
    """A gzip CloudWatch subscription body carrying the given log lines (JSON objects are sent as JSON text)."""
    events = [
        {"id": f"id-{i}", "timestamp": 1_600_000_000_000 + i, "message": m if isinstance(m, str) else json.dumps(m)}
        for i, m in enumerate(messages)
    ]
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": group,
        "logStream": "2024/01/01/[7]abcdef",
        "subscriptionFilters": ["f"],
        "logEvents": events,
    }
    return gzip.compress(orjson.dumps(payload))


# --- raw text blocks from the Lambda docs --------------------------------------------------------------------

RAW_BLOCKS = load(LAMBDA / "aws_docs" / "raw_text_log_blocks.json") if corpus.PRESENT else []


def block(source_suffix: str) -> list[Event]:
    [found] = [b for b in RAW_BLOCKS if b["_source"].endswith(source_suffix)]
    return parse_text_block(found["text"], time=T0, function="my-fn", ctx=CTX, source="cloudwatch")


@corpus.needed
def test_report_block_with_tabs_gives_numbers_cold_start_and_trace() -> None:
    events = block("csharp-logging.md#L44")
    [report] = invocations(events, "report")
    assert report.request_id == "d1cf0ccb-xmpl-46e6-950d-04c96c9b1c5d"  # not a UUID
    assert report.duration_ms == 4157.16
    assert report.billed_duration_ms == 4200
    assert report.memory_size_mb == 256
    assert report.max_memory_used_mb == 99
    assert report.init_duration_ms == 841.60
    assert report.cold_start is True
    assert report.status == "success"
    assert report.trace_id == "1-5e7e8131-7ff0xmpl32bfb31045d0a3bb"
    assert report.start_time == T0 - timedelta(milliseconds=4157.16)
    assert (report.tenant, report.region, report.account) == ("acme", "eu-west-1", "123456789012")
    [start] = invocations(events, "start")
    assert start.version == "$LATEST" and start.start_time == T0
    platform_lines = [e.message.split()[0] for e in logs(events) if e.log_type == "platform"]
    assert platform_lines == ["START", "END", "REPORT"]


@corpus.needed
def test_report_with_runs_of_spaces_and_no_init_is_warm() -> None:
    [report] = invocations(block("golang-logging.md#L129"), "report")
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        79.67,
        80,
        128,
        73,
    )
    assert report.cold_start is False and report.init_duration_ms is None


@corpus.needed
def test_python_block_spaces_and_xray_on_next_line() -> None:
    events = block("python-logging.md#L34")
    [report] = invocations(events, "report")
    assert report.duration_ms == 15.74 and report.init_duration_ms == 130.49 and report.cold_start
    assert report.trace_id == "1-5e34a614-10bdxmplf1fb44f07bc535a1"


@corpus.needed
def test_runtime_default_formats_give_level_request_id_and_the_delivery_time() -> None:
    node = logs(block("nodejs-logging.md#L32"))
    [warn] = [e for e in node if e.level == "WARN"]
    assert warn.message == "Event not processed."  # the runtime's own timestamp is left out of the message
    assert warn.request_id == "c793869b-ee49-115b-a5b6-4fd21e8dedac"
    assert warn.time == T0  # a line's time is its delivery's (2019-06-07T19:11:20.564Z in the text), one rule

    python = [e for e in logs(block("python-logging.md#L208")) if e.log_type == "function"]
    assert {e.level for e in python} == {"INFO"}
    assert {e.request_id for e in python} == {"1c8df7d3-xmpl-46da-9778-518e6eca8125"}

    java = [e for e in logs(block("java-logging.md#L257")) if e.request_id and e.log_type == "function"]
    assert java and java[0].level == "INFO" and java[0].request_id == "6bc28136-xmpl-4365-b021-0ce6b2e64ab0"
    assert java[0].message.startswith("Handler - ENVIRONMENT VARIABLES")


@pytest.mark.parametrize("raw", corpus.each(RAW_BLOCKS), ids=lambda b: b and b["_source"].rsplit(":", 1)[1])
@corpus.needed
def test_every_doc_block_has_one_start_and_report_and_stable_ids(raw: dict[str, Any]) -> None:
    events = parse_text_block(raw["text"], time=T0, function="f", ctx=CTX, source="cloudwatch")
    again = parse_text_block(raw["text"], time=T0, function="f", ctx=CTX, source="cloudwatch")
    assert [e.event_id for e in events] == [e.event_id for e in again]
    assert len({e.event_id for e in events}) == len(events)
    assert len(invocations(events, "start")) == 1
    assert len(invocations(events, "report")) == (0 if "REPORT" not in raw["text"] else 1)


# --- single platform / failure lines -------------------------------------------------------------------------


def test_report_with_timeout_status_error_type_and_snapstart_restore() -> None:
    events = line(
        "REPORT RequestId: 6f7f0961f83442118a7af6fe80b88d56\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 128 MB\tRestore Duration: 474.16 ms\t"
        "Billed Restore Duration: 390 ms\tStatus: timeout\tError Type: Sandbox.Timedout"
    )
    [report] = invocations(events, "report")
    assert report.status == "timeout" and report.error_type == "Sandbox.Timedout"
    assert report.restore_duration_ms == 474.16  # not the billed one
    assert report.request_id == "6f7f0961f83442118a7af6fe80b88d56"
    assert report.event_id == stable_id("my-fn", report.request_id, "report")  # same id whatever the path
    [log] = logs(events)
    assert log.event_id == "ev-1" and log.level == "ERROR" and log.log_type == "platform"


def test_init_report_error_and_timeout() -> None:
    [inv] = invocations(
        line("INIT_REPORT Init Duration: 1236.29 ms Phase: invoke Status: error Error Type: Runtime.ExitError")
    )
    # Phase invoke: the init re-ran inside an invocation that holds the environment already (no span of its own)
    assert (inv.kind, inv.status, inv.error_type, inv.init_duration_ms) == (
        "init_report",
        "error",
        "Runtime.ExitError",
        None,
    )
    [inv] = invocations(line("INIT_REPORT Init Duration: 10008.15 ms\tPhase: init\tStatus: timeout"))
    assert (inv.status, inv.init_duration_ms) == ("timeout", 10008.15)


def test_task_timed_out_line() -> None:
    events = line("2024-02-01T10:00:03.012Z 5e3a1b2c-xmpl-4f3e-9b1d-0a1b2c3d4e5f Task timed out after 3.00 seconds")
    [timeout] = invocations(events, "timeout")
    assert timeout.status == "timeout" and timeout.request_id == "5e3a1b2c-xmpl-4f3e-9b1d-0a1b2c3d4e5f"
    assert timeout.duration_ms == 3000
    [log] = logs(events)
    assert log.level == "ERROR" and log.request_id == timeout.request_id
    assert invocations(line("Task timed out after 900.00 seconds"), "timeout")


@pytest.mark.parametrize(
    "text",
    [
        "RequestId: 6f7f0961-aaaa Error: Runtime exited with error: signal: killed\nRuntime.ExitError",
        "Error: Runtime exited with error: signal: killed",
        '{"errorType":"Runtime.OutOfMemory","errorMessage":"RequestId: x Process exited before completing request"}',
    ],
)
def test_out_of_memory_exits(text: str) -> None:
    [oom] = invocations(line(text), "oom")
    assert oom.status == "oom"


def test_plain_lines_guess_level_and_accept_any_request_id_token() -> None:
    assert logs(line("ERROR something broke"))[0].level == "ERROR"
    assert logs(line("[Information] - ## Event"))[0].level == "INFO"
    assert logs(line("Notice: no level here"))[0].level == ""
    [start] = invocations(line("START RequestId: xmpl Version: 3"))
    assert (start.request_id, start.version) == ("xmpl", "3")


def test_json_platform_line_from_lambda_json_log_format() -> None:
    record = {
        "time": "2023-11-20T10:00:00.100Z",
        "type": "platform.report",
        "record": {
            "requestId": "r-1",
            "status": "timeout",
            "metrics": {
                "durationMs": 3000.5,
                "billedDurationMs": 3001,
                "memorySizeMB": 128,
                "maxMemoryUsedMB": 60,
                "initDurationMs": 200.0,
            },
        },
    }
    events = line(json.dumps(record))
    [report] = invocations(events, "report")
    assert report.status == "timeout" and report.cold_start and report.duration_ms == 3000.5
    assert logs(events)[0].log_type == "platform"


# --- Powertools structured logs -------------------------------------------------------------------------------


def powertools_records(path: Path) -> list[dict[str, Any]]:
    data = load(path)
    if path.name == "docs_inline_output_blocks.json":
        return [r for b in data for r in b["records"]]
    return data if isinstance(data, list) else [data]


POWERTOOLS = sorted((LAMBDA / "powertools_python_logger").glob("*.json")) + sorted(
    (LAMBDA / "powertools_typescript_logger").glob("*.json")
)


@pytest.mark.parametrize("path", corpus.each(POWERTOOLS), ids=lambda p: p and f"{p.parent.name}/{p.name}")
@corpus.needed
def test_powertools_lines_through_cloudwatch(path: Path) -> None:
    records = powertools_records(path)
    parsed = cloudwatch.parse(cw_body(records), CTX)
    assert not parsed.dead
    found = logs(parsed.events)
    assert len(found) == len(records)
    for log, record in zip(found, records):
        assert log.function == "my-fn" and log.version == "7" and log.account == "111122223333"
        assert log.fields  # flattened
        assert all(isinstance(v, str) for v in log.fields.values())
        level = record.get("level") or record.get("logLevel")
        if level:
            assert log.level == {"WARNING": "WARN"}.get(level, level)
        message = record.get("message", record.get("event"))
        if isinstance(message, str):
            assert log.message == message


@corpus.needed
def test_powertools_python_fields_request_id_and_comma_timestamp() -> None:
    [log] = logs(
        cloudwatch.parse(
            cw_body(powertools_records(LAMBDA / "powertools_python_logger" / "set_correlation_id_output.json")), CTX
        ).events
    )
    assert log.request_id == "52fdfc07-2182-154f-163f-5f0f9a621d72"
    assert log.fields["correlation_id"] == "correlation_id_value"
    assert log.fields["cold_start"] == "true" and log.fields["function_memory_size"] == "128"
    assert log.fields["timestamp"] == "2021-05-03 11:47:12,494+0000"  # its own time stays a field
    assert log.time == datetime.fromtimestamp(1_600_000_000, tz=UTC)  # the delivery's time


@corpus.needed
def test_powertools_nested_object_message_exception_and_timezones() -> None:
    second = logs(
        line(
            json.dumps(powertools_records(LAMBDA / "powertools_python_logger" / "inject_lambda_context_output.json")[1])
        )
    )[0]
    assert second.message == '{"operation":"collect_payment","charge_id":"ch_AZFlk2345C0"}'
    assert second.fields["message.charge_id"] == "ch_AZFlk2345C0"

    stack = logs(
        line(json.dumps(powertools_records(LAMBDA / "powertools_python_logger" / "logging_stacktrace_output.json")[0]))
    )[0]
    assert stack.level == "ERROR" and stack.fields["exception_name"] == "HTTPError"
    assert stack.fields["stack_trace.type"] == "HTTPError"
    assert json.loads(stack.fields["stack_trace.frames"])[0]["line"] == 14  # lists stay JSON text

    eastern = logs(
        line(
            json.dumps(powertools_records(LAMBDA / "powertools_python_logger" / "setting_utc_timestamp_output.json")[1])
        )
    )[0]
    assert eastern.time == T0 and eastern.fields["timestamp"] == "2023-10-09 17:33:55,734-0400"

    unparseable_date = logs(
        line(json.dumps(powertools_records(LAMBDA / "powertools_python_logger" / "date_formatting_output.json")[1]))
    )[0]
    assert unparseable_date.time == T0  # whatever the line's own date: the envelope's time


@corpus.needed
def test_powertools_typescript_trace_ids_and_numbers_as_strings() -> None:
    records = powertools_records(LAMBDA / "powertools_typescript_logger" / "debugLogSamplingSampled.json")
    found = logs(cloudwatch.parse(cw_body(records), CTX).events)
    assert [e.level for e in found] == ["ERROR", "DEBUG", "INFO", "WARN"]
    assert {e.trace_id for e in found} == {"abcdef123456abcdef123456abcdef123456"}
    assert found[0].fields["sampling_rate"] == "0.5"
    [event_log] = logs(line((LAMBDA / "powertools_typescript_logger" / "logEventOutput.json").read_text()))
    assert event_log.request_id == "0a9df60d-e2de-447d-ba3e-45f149eae6c9"
    assert event_log.fields["function_memory_size"] == "128" and event_log.fields["event.foo"] == "bar"
    assert event_log.message == "Lambda invocation event"


@corpus.needed
def test_powertools_typescript_legacy_format_and_invalid_doc_block() -> None:
    blocks = load(LAMBDA / "powertools_typescript_logger" / "docs_inline_output_blocks.json")
    legacy = logs(line(json.dumps(blocks[-1]["records"][0])))[0]
    assert legacy.level == "INFO" and legacy.request_id == "c6af9ac6-7b61-11e6-9a41-93e812345678"
    assert legacy.trace_id == "abcdef123456abcdef123456abcdef123456"
    assert legacy.fields["lambdaFunction.memoryLimitInMB"] == "128"
    [invalid] = [b["raw_text"] for b in blocks if not b["parsed_ok"]]
    [kept] = logs(line(invalid))  # trailing comma: not JSON, still kept as a text line
    assert kept.message == invalid.rstrip("\n") and kept.fields == {}


# --- Telemetry API / Logs API --------------------------------------------------------------------------------


def tparse(elements: Any, ctx: IngestContext = CTX) -> Parsed:
    return telemetry.parse(orjson.dumps(elements), ctx)


@corpus.needed
def test_telemetry_doc_examples() -> None:
    examples = load(LAMBDA / "aws_docs" / "telemetry_api_doc_examples.json")
    parsed = tparse([e["event"] for e in examples if e["event"] is not None])
    assert not parsed.dead
    [init_report] = invocations(parsed.events, "init_report")
    assert init_report.init_duration_ms == 125.33 and init_report.function == "my-fn"
    [runtime_done] = invocations(parsed.events, "runtime_done")
    assert runtime_done.duration_ms == 140.0 and runtime_done.status == "success"
    assert runtime_done.trace_id == "1-62e900b2-710d76f009d6e7785905449a"
    texts = {(e.log_type, e.message) for e in logs(parsed.events)}
    assert ("function", "Hello World") in texts
    assert ("extension", "Hello world, I am an extension!") in texts
    function_line = [e for e in logs(parsed.events) if e.message == "Hello world, I am a function!"]
    assert function_line[0].level == "INFO"
    dropped = [e for e in logs(parsed.events) if e.fields.get("type") == "platform.logsDropped"]
    assert dropped[0].log_type == "platform" and dropped[0].fields["droppedRecords"] == "123"
    for bad in (e["raw_text"] for e in examples if e["event"] is None):
        with pytest.raises(UnusableBody, match="not JSON"):
            telemetry.parse(bad.encode(), CTX)


@corpus.needed
def test_logs_api_doc_examples_fault_and_statuses() -> None:
    examples = load(LAMBDA / "aws_docs" / "logs_api_doc_examples.json")
    elements: list[Any] = []
    for e in examples:
        if e["event"] is not None:
            elements.extend(e["event"] if isinstance(e["event"], list) else [e["event"]])
    parsed = tparse(elements)
    assert not parsed.dead
    [report] = invocations(parsed.events, "report")
    assert report.request_id == "6f7f0961f83442118a7af6fe80b88d56"  # 32 hex, no dashes
    assert (
        report.duration_ms,
        report.billed_duration_ms,
        report.memory_size_mb,
        report.max_memory_used_mb,
        report.init_duration_ms,
        report.cold_start,
    ) == (101.51, 300, 512, 33, 116.67, True)
    assert report.start_time == report.time - timedelta(milliseconds=101.51)
    [fault] = invocations(parsed.events, "fault")
    assert fault.status == "error" and fault.request_id == "d783b35e-a91d-4251-af17-035953428a2c"
    fault_log = [e for e in logs(parsed.events) if "Process exited" in e.message]
    assert fault_log[0].log_type == "platform" and fault_log[0].level == "ERROR"
    assert [i.status for i in invocations(parsed.events, "runtime_done")] == ["success", "failure", "timeout"]
    assert [i.version for i in invocations(parsed.events, "start")] == [""]  # Logs API start has no version
    assert any(e.message.startswith('{"requestId"') for e in logs(parsed.events))  # platform.end kept as a line


@corpus.needed
def test_telemetry_samples_snapstart_records_and_2025_report() -> None:
    body = (LAMBDA / "telemetry_api" / "datadog_lambda_extension" / "telemetry_events.json").read_bytes()
    parsed = telemetry.parse(body, CTX)
    assert not parsed.dead
    restores = invocations(parsed.events, "restore_report")
    assert [(r.status, r.restore_duration_ms, r.error_type) for r in restores] == [
        ("success", 150.5, ""),
        ("failure", None, "RestoreError"),
    ]
    reports = invocations(parsed.events, "report")
    new = [r for r in reports if r.request_id == "13d1305b-a2f5-440c-bfbe-686ccff3d3e0"][0]
    assert new.duration_ms == 1.148 and new.memory_size_mb is None and new.max_memory_used_mb is None
    assert new.cold_start is False
    object_record = [e for e in logs(parsed.events) if e.fields.get("hello") == "world"]
    assert object_record and object_record[0].message == '{"hello":"world"}'
    assert invocations(parsed.events, "start")[0].version == "$LATEST"
    assert invocations(parsed.events, "init_start")


@corpus.needed
def test_telemetry_rust_and_logs_api_samples() -> None:
    rust = telemetry.parse(
        (LAMBDA / "telemetry_api" / "aws_lambda_rust_runtime" / "telemetry_events.json").read_bytes(), CTX
    )
    assert not rust.dead and len(invocations(rust.events, "report")) == 2
    assert all(isinstance(r.duration_ms, float) for r in invocations(rust.events, "report"))
    logs_api = telemetry.parse((LAMBDA / "logs_api" / "aws_lambda_rust_runtime_logs_api_events.json").read_bytes(), CTX)
    assert not logs_api.dead
    assert {i.request_id for i in invocations(logs_api.events, "report")} == {"6f7f0961f83442118a7af6fe80b88d56"}
    hello = [e for e in logs(logs_api.events) if e.message == "hello world" and e.log_type == "function"]
    assert len(hello) == 2 and hello[0].event_id != hello[1].event_id  # same line twice in one batch: two lines


@corpus.needed
def test_telemetry_redelivery_gives_identical_ids_and_ids_follow_the_documented_recipe() -> None:
    body = (LAMBDA / "telemetry_api" / "aws_lambda_rust_runtime" / "telemetry_events.json").read_bytes()
    first, second = telemetry.parse(body, CTX), telemetry.parse(body, CTX)
    assert [e.event_id for e in first.events] == [e.event_id for e in second.events]
    report = invocations(first.events, "report")[0]
    assert report.event_id == stable_id("my-fn", report.request_id, "report")  # same id whatever the path
    hello = logs(first.events)[0]
    assert hello.event_id == log_line_id("my-fn", hello.time, "hello world")  # what a CloudWatch copy gets too


def test_telemetry_bad_elements_are_dead_lettered_rest_kept() -> None:
    good = {"time": "2022-10-12T00:03:50.000Z", "type": "function", "record": "[ERROR] boom"}
    parsed = tparse(
        [
            good,
            42,
            {"type": "function", "record": "no time"},
            {"time": "yesterday", "type": "function", "record": "x"},
            {"time": "2022-10-12T00:03:50.000Z", "record": "no type"},
            {"time": "2022-10-12T00:03:50.000Z", "type": "platform.report", "record": "not an object"},
        ]
    )
    assert [e.message for e in logs(parsed.events)] == ["boom"]
    assert logs(parsed.events)[0].level == "ERROR"
    reasons = [d.reason for d in parsed.dead]
    assert len(reasons) == 5
    assert "element 1: not an object" in reasons[0]
    assert "missing `time`" in reasons[1]
    assert "not an ISO 8601" in reasons[2]
    assert "`type`" in reasons[3]
    assert "platform.report record is not an object" in reasons[4]
    assert all(d.tenant == "acme" and d.raw for d in parsed.dead)


def test_telemetry_body_shapes() -> None:
    with pytest.raises(UnusableBody, match="not JSON"):
        telemetry.parse(b"hello", CTX)
    with pytest.raises(UnusableBody, match="array"):
        telemetry.parse(b'"a string"', CTX)
    one = telemetry.parse(b'{"time": "2022-10-12T00:03:50.000Z", "type": "function", "record": "hi"}', CTX)
    assert [e.message for e in logs(one.events)] == ["hi"]
    unnamed = telemetry.parse(
        b'[{"time": "2022-10-12T00:03:50.000Z", "type": "function", "record": "hi"}]', IngestContext()
    )
    assert logs(unnamed.events)[0].function == ""
    assert telemetry.parse(b"[]", CTX).events == []


@corpus.needed
def test_extensions_api_events_are_not_telemetry() -> None:
    examples = load(LAMBDA / "aws_docs" / "extensions_api_event_examples.json")
    parsed = tparse([e["event"] for e in examples])
    assert not parsed.events and len(parsed.dead) == 2


# --- CloudWatch Logs subscriptions ---------------------------------------------------------------------------


@corpus.needed
def test_cloudwatch_gzip_awslogs_form() -> None:
    parsed = cloudwatch.parse((CWL / "powertools_python" / "cloudWatchLogEvent.json").read_bytes(), CTX)
    found = logs(parsed.events)
    assert [(e.event_id, e.level, e.message) for e in found] == [  # CloudWatch's ids, within their log group
        (stable_id("testLogGroup", "eventId1"), "ERROR", "First test message"),
        (stable_id("testLogGroup", "eventId2"), "ERROR", "Second test message"),
    ]
    assert found[0].function == "" and found[0].log_group == "testLogGroup"  # not a /aws/lambda/ group
    assert found[0].account == "123456789123" and found[0].time == datetime(2015, 8, 24, 19, 3, 7, tzinfo=UTC)


@corpus.needed
def test_cloudwatch_zlib_fixture_decodes() -> None:
    parsed = cloudwatch.parse((CWL / "powertools_python" / "cloudWatchLogEventWithPolicyLevel.json").read_bytes(), CTX)
    group = parsed.events[0].log_group
    ids = [stable_id(group, "eventId1"), stable_id(group, "eventId2")]
    assert not parsed.dead and [e.event_id for e in parsed.events] == ids


@corpus.needed
def test_cloudwatch_lambda_doc_examples_truncated_base64_and_report() -> None:
    truncated, decoded = (e["doc"] for e in load(CWL / "aws_docs" / "lambda_dev_guide_cwlogs_examples.json"))
    bad = cloudwatch.parse(orjson.dumps(truncated), CTX)
    assert not bad.events and len(bad.dead) == 1 and "base64" in bad.dead[0].reason
    good = cloudwatch.parse(orjson.dumps(decoded), CTX)
    [report] = invocations(good.events)
    [log] = logs(good.events)
    assert report.function == log.function == "echo-nodejs" and report.version == "$LATEST"
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        46.84,
        47,
        192,
        72,
    )
    assert log.event_id == stable_id(log.log_group, "34622316099697884706540976068822859012661220141643892546")
    assert report.event_id == stable_id(report.function, report.request_id, "report")
    assert report.account == "123456789012" and log.log_type == "platform"


@corpus.needed
def test_cloudwatch_cloudtrail_payloads_are_kept_as_log_lines() -> None:
    for example in load(CWL / "aws_docs" / "cloudwatch_logs_user_guide_subscription_examples.json"):
        parsed = cloudwatch.parse(orjson.dumps(example["parsed"]), CTX)
        assert len(logs(parsed.events)) == 3 and not invocations(parsed.events) and not parsed.dead
        assert all(e.function == "" and e.log_group.startswith("CloudTrail") for e in parsed.events)
    parsed = cloudwatch.parse(
        (CWL / "otel_collector_contrib" / "cloudtrail_via_cwlogs_s3_putobject_data_event.json").read_bytes(), CTX
    )
    [log] = logs(parsed.events)
    assert log.fields["eventName"] == "PutObject" and log.log_group == "/aws/cloudtrail/logs"


@corpus.needed
def test_cloudwatch_control_messages_give_no_events() -> None:
    for name in (
        "awsfirehosereceiver_cwlog_only_control.ndjson",
        "subscription_filter_valid_cloudwatch_log_control.json",
    ):
        parsed = cloudwatch.parse((CWL / "otel_collector_contrib" / name).read_bytes(), CTX)
        assert parsed.events == [] and parsed.dead == [] and parsed.meta["control_messages"] == 1


@corpus.needed
def test_cloudwatch_concatenated_objects_plain_and_gzip() -> None:
    raw = (CWL / "otel_collector_contrib" / "subscription_filter_multiple_json_objects.json").read_bytes()
    for body in (raw, gzip.compress(raw)):
        parsed = cloudwatch.parse(body, CTX)
        assert [e.log_group for e in parsed.events] == ["/my/first/log/group", "/my/second/log/group"]
        assert parsed.meta["data_messages"] == 2
    ndjson = cloudwatch.parse(
        (CWL / "otel_collector_contrib" / "awsfirehosereceiver_cwlog_multiple_records.ndjson").read_bytes(), CTX
    )
    assert [e.message for e in ndjson.events] == [
        "Hello world, here is our first log message!",
        "Hello world, here is our second log message!",
    ]


@corpus.needed
def test_cloudwatch_extracted_fields_cross_account() -> None:
    parsed = cloudwatch.parse(
        (
            CWL / "otel_collector_contrib" / "subscription_filter_two_records_different_extracted_fields.json"
        ).read_bytes(),
        CTX,
    )
    assert [(e.account, e.region, e.fields["@aws.account"]) for e in logs(parsed.events)] == [
        ("111111111111", "us-east-1", "111111111111"),
        ("222222222222", "us-west-2", "222222222222"),
    ]


@corpus.needed
def test_cloudwatch_bad_input() -> None:
    bad_gzip = cloudwatch.parse(b"\x1f\x8b\x08\x00garbage", CTX)
    assert not bad_gzip.events and "compressed data" in bad_gzip.dead[0].reason
    corrupt = bytearray(gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": []}' * 20))
    corrupt[12:20] = b"\xff" * 8
    assert "decompress" in cloudwatch.parse(bytes(corrupt), CTX).dead[0].reason
    truncated = cloudwatch.parse(gzip.compress(b'{"messageType":"DATA_MESSAGE"}')[:-6], CTX)
    assert truncated.dead and not truncated.events
    with pytest.raises(UnusableBody):
        cloudwatch.parse(b"just some text", CTX)
    trailing = cloudwatch.parse(
        (CWL / "otel_collector_contrib" / "awsfirehosereceiver_cwlog_multiple_records.ndjson").read_bytes() + b"{oops",
        CTX,
    )
    assert len(trailing.events) == 2 and "not JSON" in trailing.dead[0].reason
    mixed = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/lambda/f",
        "logStream": "s",
        "logEvents": [
            {"id": "1", "timestamp": 1_600_000_000_000, "message": "fine"},
            "nope",
            {"id": "3", "message": "no ts"},
        ],
    }
    result = cloudwatch.parse(orjson.dumps(mixed), CTX)
    assert [e.message for e in result.events] == ["fine"] and len(result.dead) == 2


def test_cloudwatch_lambda_edge_group_and_numbered_version() -> None:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "1",
        "logGroup": "/aws/lambda/us-east-1.edge-fn",
        "logStream": "2024/05/01/[12]abc",
        "logEvents": [{"id": "a", "timestamp": 1_600_000_000_000, "message": "x"}],
    }
    [log] = cloudwatch.parse(orjson.dumps(payload), CTX).events
    assert (log.function, log.version) == ("edge-fn", "12")


# --- Firehose HTTP endpoint ----------------------------------------------------------------------------------


@corpus.needed
def test_firehose_json_record_route53() -> None:
    parsed = firehose.parse(
        (FIREHOSE / "otel_collector_contrib" / "firehose_http_endpoint_request_route53_resolver.json").read_bytes(), CTX
    )
    assert parsed.meta["request_id"] == "test-request-id-firehoselogs"
    [log] = logs(parsed.events)
    assert log.function == "my-fn" and log.source == "firehose"
    assert log.event_id == stable_id("test-request-id-firehoselogs", 0, 0)
    assert log.fields["query_name"] == "172.144.52.116.in-addr.arpa." and log.fields["srcids.instance"]
    assert log.time == datetime(2022, 3, 1, 0, 59, 8, tzinfo=UTC)


@corpus.needed
def test_firehose_doc_examples() -> None:
    examples = load(FIREHOSE / "aws_docs" / "firehose_http_endpoint_doc_examples.json")
    for example in examples:
        if example["parsed"] is None:  # the official doc example is invalid JSON; the other is responses
            with pytest.raises(UnusableBody):
                firehose.parse(example["raw_text"].encode(), CTX)
            continue
        parsed = firehose.parse(orjson.dumps(example["parsed"]), CTX)
        assert [e.message for e in parsed.events] == ["log message 1", "log message 2"]
        assert parsed.meta["request_id"] == "ed4acda5-034f-9f42-bba1-f29aea6d7d8f"


@corpus.needed
def test_firehose_cloudwatch_gzip_record_string_timestamp_and_bad_records() -> None:
    cw_data = load(CWL / "powertools_python" / "cloudWatchLogEvent.json")["awslogs"]["data"]
    body = {
        "requestId": "req-1",
        "timestamp": "1578090903599",
        "records": [
            {"data": cw_data},
            {"data": base64.b64encode(b"hello\nERROR second line\n").decode()},
            {"data": "@@not base64@@"},
            "not an object",
            {"data": base64.b64encode(gzip.compress(b"{}")[:-4]).decode()},
        ],
    }
    parsed = firehose.parse(orjson.dumps(body), CTX)
    group = parsed.events[0].log_group
    assert [e.event_id for e in parsed.events] == [
        stable_id(group, "eventId1"),
        stable_id(group, "eventId2"),
        stable_id("req-1", 1, 0),
        stable_id("req-1", 1, 1),
    ]
    text = logs(parsed.events)[2:]
    assert text[0].time == datetime(2020, 1, 3, 22, 35, 3, 599000, tzinfo=UTC)
    assert text[1].level == "ERROR" and text[0].function == "my-fn"
    assert parsed.events[0].function == ""  # CloudWatch records name their own group
    assert len(parsed.dead) == 3
    assert "record 2" in parsed.dead[0].reason and "base64" in parsed.dead[0].reason
    assert parsed.meta["data_messages"] == 1


def test_firehose_body_shapes() -> None:
    with pytest.raises(UnusableBody, match="not JSON"):
        firehose.parse(b"{", CTX)
    with pytest.raises(UnusableBody, match="records"):
        firehose.parse(b'{"requestId": "x", "timestamp": 1}', CTX)


@corpus.needed
def test_firehose_transformation_events_are_accepted_as_deliveries() -> None:
    parsed = firehose.parse((FIREHOSE / "powertools_python" / "kinesisFirehosePutEvent.json").read_bytes(), CTX)
    assert parsed.meta["request_id"] == "2b4d1ad9-2f48-94bd-a088-767c317e994a"
    plain, structured = logs(parsed.events)
    assert plain.message == "Hello World" and structured.fields == {"Hello": "World"}
    assert plain.time == datetime.fromtimestamp(1664029185.290, tz=UTC)


# --- every sample file: events or dead letters, never an exception -------------------------------------------


def _sample_results(path: Path) -> list[Parsed | list[Event]]:
    rel = path.relative_to(SAMPLES).as_posix()
    data = (
        load(path)
        if rel.startswith(("lambda_logs/", "cloudwatch_logs_subscription/aws_docs/", "firehose/aws_docs/"))
        else None
    )
    if rel == "lambda_logs/aws_docs/raw_text_log_blocks.json":
        return [parse_text_block(b["text"], time=T0, function="f", ctx=CTX) for b in data]
    if rel.startswith("lambda_logs/aws_docs/"):
        results: list[Parsed | list[Event]] = []
        for example in data:
            if example.get("event") is not None:
                results.append(telemetry.parse(orjson.dumps(example["event"]), CTX))
            else:
                with pytest.raises(UnusableBody):
                    telemetry.parse(example["raw_text"].encode(), CTX)
        return results
    if rel.startswith(("lambda_logs/telemetry_api/", "lambda_logs/logs_api/")):
        return [telemetry.parse(path.read_bytes(), CTX)]
    if rel.startswith("lambda_logs/powertools_"):
        results = [cloudwatch.parse(cw_body(powertools_records(path)), CTX)]
        if path.name == "docs_inline_output_blocks.json":
            results += [line(b["raw_text"]) for b in data if b["raw_text"]]
        return results
    if rel.startswith("cloudwatch_logs_subscription/aws_docs/"):
        return [cloudwatch.parse(orjson.dumps(e.get("parsed") or e.get("doc")), CTX) for e in data]
    if rel.startswith("cloudwatch_logs_subscription/"):
        return [cloudwatch.parse(path.read_bytes(), CTX)]
    if rel.startswith("firehose/aws_docs/"):
        results = []
        for example in data:
            if example["parsed"] is not None:
                results.append(firehose.parse(orjson.dumps(example["parsed"]), CTX))
            else:
                with pytest.raises(UnusableBody):
                    firehose.parse(example["raw_text"].encode(), CTX)
        return results
    if rel.startswith("firehose/"):
        return [firehose.parse(path.read_bytes(), CTX)]
    raise AssertionError(f"no parser for {rel}")


ALL_SAMPLES = sorted(
    p for folder in (LAMBDA, CWL, FIREHOSE) for p in folder.rglob("*") if p.suffix in (".json", ".ndjson")
)


@pytest.mark.parametrize("path", corpus.each(ALL_SAMPLES), ids=lambda p: p and p.relative_to(SAMPLES).as_posix())
@corpus.needed
def test_every_sample_file_yields_events_or_dead_letters(path: Path) -> None:
    results = _sample_results(path)
    assert results
    for result in results:
        if isinstance(result, Parsed):
            assert result.events or result.dead or result.meta.get("control_messages"), path
            for event in result.events:
                assert event.event_id and event.time.tzinfo is not None
        else:
            assert result


def test_inner_compressed_payloads_are_size_limited_and_multi_member() -> None:
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    with pytest.raises(BadPayload, match="more than"):
        inflate(gzip.compress(b"x" * 10_000), max_size=1_000)


def test_numeric_json_levels() -> None:
    assert logs(line('{"level": 50, "msg": "pino error", "time": 1700000000000}'))[0].level == "ERROR"
    pino = logs(line('{"level": 50, "msg": "pino error", "time": 1700000000000}'))[0]
    assert pino.time == T0 and pino.fields["time"] == "1700000000000"  # the delivery's time; its own, a field


def test_one_invocation_reported_by_telemetry_and_by_cloudwatch_is_one_fact() -> None:
    rid = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    telemetry_body = json.dumps(
        [
            {
                "time": "2026-11-27T05:00:01.000Z",
                "type": "platform.report",
                "record": {
                    "requestId": rid,
                    "status": "success",
                    "metrics": {"durationMs": 12.5, "billedDurationMs": 13},
                },
            }
        ]
    ).encode()
    [via_extension] = invocations(telemetry.parse(telemetry_body, CTX).events, "report")
    [via_subscription] = invocations(
        line(f"REPORT RequestId: {rid}\tDuration: 12.50 ms\tBilled Duration: 13 ms\t"), "report"
    )
    assert via_extension.event_id == via_subscription.event_id


def test_absurdly_deep_json_line_is_kept_not_crashing() -> None:
    deep = "[" * 600 + "]" * 600
    message = '{"level":"INFO","message":"deep","payload":' + deep + "}"
    events = line(message)
    assert logs(events) and logs(events)[0].message == "deep"
    body = json.dumps([{"time": "2026-11-27T05:00:00.000Z", "type": "function", "record": json.loads(message)}])
    parsed = telemetry.parse(body.encode(), CTX)
    assert len(parsed.events) == 1 and not parsed.dead


# --- one line, two paths --------------------------------------------------------------------------------------


def _subscription(function: str, lines: list[tuple[int, str]], stream: str = "2022/10/12/[$LATEST]0a1b") -> bytes:
    """A CloudWatch Logs subscription message as Lambda's log group delivers it: (timestamp ms, message)."""
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": f"/aws/lambda/{function}",
        "logStream": stream,
        "subscriptionFilters": ["to-fnscope"],
        "logEvents": [{"id": f"3{ts}{i:05d}", "timestamp": ts, "message": m} for i, (ts, m) in enumerate(lines)],
    }
    return gzip.compress(orjson.dumps(payload))


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


@corpus.needed
def test_a_function_line_sent_by_telemetry_and_by_subscription_gets_one_id() -> None:
    docs = [e["event"] for e in load(LAMBDA / "aws_docs" / "telemetry_api_doc_examples.json") if e.get("event")]
    text = next(e for e in docs if e.get("type") == "function" and "Hello world" in str(e.get("record")))
    datadog = load(LAMBDA / "telemetry_api" / "datadog_lambda_extension" / "telemetry_events.json")
    obj = next(e for e in datadog if e.get("type") == "function" and isinstance(e.get("record"), dict))
    via_extension = logs(tparse([{k: v for k, v in e.items() if not k.startswith("_")} for e in (text, obj)]).events)
    # the subscription carries the text the runtime wrote: a line break at the end, JSON as the runtime spaced it
    via_subscription = logs(
        cloudwatch.parse(
            _subscription(
                "my-fn",
                [(_ms(text["time"]), f"{text['record']}\n"), (_ms(obj["time"]), json.dumps(obj["record"]) + "\n")],
            ),
            CTX,
        ).events
    )
    assert [(e.function, e.time, e.fields) for e in via_extension] == [
        (e.function, e.time, e.fields) for e in via_subscription
    ]
    assert [e.event_id for e in via_extension] == [e.event_id for e in via_subscription]
    # and it is the line's content that makes the id: another function, millisecond or text is another line
    at = _ms(text["time"])
    others = [("other-fn", at, text["record"]), ("my-fn", at + 1, text["record"]), ("my-fn", at, "Hello")]
    other = [logs(cloudwatch.parse(_subscription(fn, [(ts, m)]), CTX).events)[0] for fn, ts, m in others]
    assert len({e.event_id for e in other} | {via_extension[0].event_id}) == 4


def test_the_simulated_fleet_s_lines_get_the_same_ids_by_telemetry_and_by_firehose() -> None:
    from fnscope.simulator.scheduler import simulate
    from fnscope.simulator.wire import firehose_requests, telemetry_requests

    sim = simulate(functions=4, rate=40, duration_s=3, seed=11)
    by_telemetry: set[str] = set()
    for req in telemetry_requests(sim):
        parsed = telemetry.parse(req.body, IngestContext(params=dict(req.params)))
        by_telemetry |= {e.event_id for e in logs(parsed.events) if e.log_type == "function"}
    by_firehose: set[str] = set()
    for req in firehose_requests(sim):
        parsed = firehose.parse(req.body, IngestContext(params=dict(req.params)))
        # "Task timed out" is the platform writing into the log stream; the Telemetry API states it as a record
        timeouts = {e.event_id for e in logs(parsed.events) if e.message.startswith("Task timed out after")}
        by_firehose |= {e.event_id for e in logs(parsed.events) if e.log_type == "function"} - timeouts
    assert len(by_telemetry) > 100
    assert by_telemetry == by_firehose


def test_the_same_line_twice_in_one_millisecond_stays_two_lines_on_both_paths() -> None:
    ts = "2026-11-27T05:00:00.000Z"
    twice = [{"time": ts, "type": "function", "record": "retrying"} for _ in range(2)]
    via_extension = [e.event_id for e in logs(tparse(twice).events)]
    via_subscription = [
        e.event_id for e in logs(cloudwatch.parse(_subscription("my-fn", [(_ms(ts), "retrying\n")] * 2), CTX).events)
    ]
    assert len(set(via_extension)) == 2 and via_extension == via_subscription


def test_a_bare_line_between_start_and_end_is_attributed_to_that_invocation_on_both_paths() -> None:
    ts, rid, other = (
        "2026-11-27T05:00:00.000Z",
        "8f2c1a4e-0b7d-4c39-9e51-2d6a7b3c9f10",
        "c0ffee00-1234-4bcd-9e51-000000000001",
    )
    at = _ms(ts)
    stream = [
        (at, "received event before any invocation\n"),  # the init phase: no invocation yet
        (at + 1, f"START RequestId: {rid} Version: $LATEST\n"),
        (at + 2, "received event with 3 items\n"),
        (at + 3, f"END RequestId: {rid}\n"),
        (at + 4, "after the invocation\n"),
    ]
    via_subscription = {
        e.message: e.request_id for e in logs(cloudwatch.parse(_subscription("my-fn", stream), CTX).events)
    }
    assert via_subscription["received event with 3 items"] == rid
    assert via_subscription["received event before any invocation"] == via_subscription["after the invocation"] == ""

    def record(ms: int, type_: str, record: Any) -> dict[str, Any]:
        return {"time": datetime.fromtimestamp(ms / 1000, UTC).isoformat(), "type": type_, "record": record}

    batch = [
        record(at + 1, "platform.start", {"requestId": rid}),
        record(at + 2, "function", "received event with 3 items"),
        record(at + 3, "platform.runtimeDone", {"requestId": rid, "status": "success"}),
        record(at + 4, "function", "after the invocation"),
    ]
    via_extension = {e.message: e.request_id for e in logs(tparse(batch).events) if e.log_type == "function"}
    assert via_extension == {"received event with 3 items": rid, "after the invocation": ""}

    # an environment serving two requests at once: a bare line cannot be attributed, so it is not
    overlapping = [
        (at + 1, f"START RequestId: {rid} Version: $LATEST\n"),
        (at + 2, f"START RequestId: {other} Version: $LATEST\n"),
        (at + 3, "received event with 3 items\n"),
    ]
    [bare] = [
        e for e in logs(cloudwatch.parse(_subscription("my-fn", overlapping), CTX).events) if e.log_type == "function"
    ]
    assert bare.request_id == ""
