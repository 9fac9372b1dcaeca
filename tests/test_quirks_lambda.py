"""Lambda log quirks, pinned by fixtures written for these tests (tests/fixtures/lambda, telemetry, powertools).

Text lines as Lambda writes them to CloudWatch Logs: START/END/REPORT blocks whose fields are separated by tabs
or by runs of spaces; request ids that are not UUIDs (``xmpl``) or are 32 hex digits without dashes; Init
Duration as the cold-start mark; the X-Ray trace on the REPORT line or on the line after it; REPORT with
``Status: timeout`` or an ``Error Type``; SnapStart's Restore Duration (not the billed one) and RESTORE_* lines;
INIT_START and INIT_REPORT; ``Task timed out``; out-of-memory exits; the runtimes' default line formats (Node,
Python, Java log4j, PowerShell, Go) giving level and request id, with the runtime's timestamp left out of the
message. A line's time is its delivery's (the CloudWatch or Telemetry time, here the time a block was received).

Telemetry API batches: the init, invoke and SnapStart restore platform records, ``function`` records as text
and as objects, metrics as floats, the statuses success / failure / error / timeout, a 2025-style
``platform.report`` without memory metrics, bodies that are not JSON (UnusableBody, a 400 and a dead letter).
The older Logs API (``platform.end``, ``platform.fault``, 32-hex request ids) and Extensions API events, which
are not telemetry (dead letters saying why).

Powertools structured logs (Python and TypeScript): comma-millisecond timestamps with offsets (kept, as written,
as a field), ``message`` as an object, numbers written as strings, correlation ids and X-Ray trace ids, WARNING
as WARN, nested fields flattened into dotted keys, the same result whether a line comes alone or through a
CloudWatch subscription.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from fnscope.collector.formats import cloudwatch, telemetry
from fnscope.collector.formats.base import Parsed
from fnscope.collector.formats.lambda_text import parse_line, parse_text_block
from fnscope.decoding.errors import UnusableBody
from fnscope.events import DeadLetter, Event, FunctionLog, stable_id
from fnscope.sink import IngestContext
from tests.fixtures.formats import (
    gzipped,
    invocations,
    load_json,
    logs,
    post,
    read_bytes,
    read_lines,
    read_text,
    subscription_message,
)

FUNCTION = "orders-api"
CTX = IngestContext(tenant="acme", params={"function": FUNCTION, "region": "eu-west-1", "account": "111122223333"})
T0 = datetime(2024, 3, 5, 10, 30, tzinfo=UTC)  # when a pasted block / single line was received
PLATFORM_LINES: dict[str, str] = load_json("lambda", "platform_lines.json")
INIT_PHASE_LINES: dict[str, str] = load_json("lambda", "init_phase_lines.json")

NODE_RID = "3f9c2a7e-xmpl-4b1d-8e2f-6a0c4d9b1e73"
PYTHON_RID = "8e1b2c3d-xmpl-4f2a-9b7e-0d6c4a2f1e95"
JAVA_RID = "6a0b1c2d-xmpl-4e5f-8a9b-0c1d2e3f4a5b"
HEX_RID = "0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e"
OOM_RID = "7e6d5c4b-xmpl-4a39-8b27-16f5e4d3c2b1"


def at(hour: int, minute: int, second: int, millis: int = 0) -> datetime:
    return datetime(2024, 3, 5, hour, minute, second, millis * 1000, tzinfo=UTC)


def block(name: str) -> list[Event]:
    return parse_text_block(read_text("lambda", name), time=T0, function=FUNCTION, ctx=CTX, source="cloudwatch")


def line(message: str) -> list[Event]:
    return parse_line(message, time=T0, function=FUNCTION, event_id="line-1", ctx=CTX, source="cloudwatch")


def function_lines(events: list[Event]) -> list[FunctionLog]:
    return [e for e in logs(events) if e.log_type == "function"]


def platform_heads(events: list[Event]) -> list[str]:
    return [e.message.split()[0] for e in logs(events) if e.log_type == "platform"]


# --- text blocks: tabs, runs of spaces, request ids, cold starts, X-Ray ----------------------------------------


def test_node_block_with_tabs_xmpl_request_id_cold_start_and_xray_on_the_report_line() -> None:
    events = block("node_tabs.log")
    assert platform_heads(events) == ["INIT_START", "START", "END", "REPORT"]
    [start] = invocations(events, "start")
    assert (start.request_id, start.version, start.start_time) == (NODE_RID, "$LATEST", T0)
    [report] = invocations(events, "report")
    assert report.request_id == NODE_RID  # "xmpl" is not hex: not a UUID, kept as written
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        112.47,
        113,
        256,
        81,
    )
    assert report.init_duration_ms == 402.11 and report.cold_start is True  # Init Duration: the first request
    assert report.status == "success" and report.error_type == ""
    assert report.trace_id == "1-65e6f0a1-3b2cxmpl9a8d4e5f60718293"  # XRAY TraceId on the REPORT line itself
    assert report.start_time == T0 - timedelta(milliseconds=112.47)
    assert (report.function, report.tenant, report.region, report.account) == (
        FUNCTION,
        "acme",
        "eu-west-1",
        "111122223333",
    )
    assert report.event_id == stable_id(FUNCTION, NODE_RID, "report")  # one fact whichever path reports it
    [report_line] = [e for e in logs(events) if e.message.startswith("REPORT")]
    assert report_line.trace_id == report.trace_id and report_line.level == "INFO"
    assert len(invocations(events, "init_start")) == 1

    # Node's default format: <time>\t<request id>\t<LEVEL>\t<message>; the time is the delivery's
    assert [(e.time, e.request_id, e.level, e.message) for e in function_lines(events)] == [
        (T0, NODE_RID, "INFO", "loading cart 42"),
        (T0, NODE_RID, "WARN", "cart 42 has a stale price"),
        (T0, NODE_RID, "ERROR", 'Invoke Error \t{"errorType":"Error","errorMessage":"payment refused"}'),
    ]


def test_python_block_with_runs_of_spaces_warm_start_and_xray_on_the_next_line() -> None:
    events = block("python_spaces.log")
    assert platform_heads(events) == ["START", "END", "REPORT"]  # the XRAY line belongs to the REPORT
    [start] = invocations(events, "start")
    assert (start.request_id, start.version) == (PYTHON_RID, "7")
    [report] = invocations(events, "report")
    assert report.request_id == PYTHON_RID
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        31.20,
        32,
        128,
        57,
    )
    assert report.init_duration_ms is None and report.cold_start is False  # no Init Duration: a warm start
    assert report.trace_id == "1-65e6f1b2-5d4cxmpl2b1a0f9e8d7c6b5a"
    assert not any(e.message.startswith("XRAY") for e in logs(events))

    # Python's default format, [LEVEL]<sep><time><sep><request id><sep><message>, with tabs or runs of spaces
    assert [(e.time, e.request_id, e.level, e.message) for e in function_lines(events)] == [
        (T0, PYTHON_RID, "INFO", "fetching order 17"),
        (T0, PYTHON_RID, "WARN", "order 17 has no invoice"),  # [WARNING] is WARN
        (T0, PYTHON_RID, "ERROR", "invoice service unreachable"),
    ]


def test_java_snapstart_block_restore_duration_and_log4j_lines() -> None:
    events = block("java_snapstart.log")
    assert platform_heads(events) == ["RESTORE_START", "RESTORE_REPORT", "START", "END", "REPORT"]
    [restore] = invocations(events, "restore_report")
    assert (restore.restore_duration_ms, restore.status, restore.duration_ms) == (412.50, "success", None)
    [start] = invocations(events, "start")
    assert (start.request_id, start.version) == (JAVA_RID, "3")
    [report] = invocations(events, "report")
    assert report.restore_duration_ms == 412.50  # Restore Duration, not Billed Restore Duration (218)
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        1520.33,
        1521,
        512,
        143,
    )
    assert report.init_duration_ms is None

    # log4j2's LambdaAppender pattern: <yyyy-MM-dd HH:mm:ss> <request id> <LEVEL> <logger> - <message>
    assert [(e.time, e.request_id, e.level, e.message) for e in function_lines(events)] == [
        (T0, JAVA_RID, "INFO", "OrderHandler - received 3 items"),
        (T0, JAVA_RID, "ERROR", "OrderHandler - stock lookup failed"),
    ]


def test_node_init_phase_line_with_request_id_undefined() -> None:
    [log] = logs(line(INIT_PHASE_LINES["node_undefined_request_id"]))
    assert (log.level, log.request_id, log.time) == ("ERROR", "", T0)
    assert log.message.startswith("Uncaught Exception \t{")  # without the runtime's timestamp and `undefined`


def test_python_init_phase_line_with_an_empty_request_id() -> None:
    [log] = logs(line(INIT_PHASE_LINES["python_empty_request_id"]))
    assert (log.level, log.request_id, log.time, log.message) == ("INFO", "", T0, "loading price table")


@pytest.mark.parametrize(
    ("text", "level", "message"),
    [
        ("[Information] - ## Environment variables", "INFO", "- ## Environment variables"),  # PowerShell
        ("2024/03/05 10:00:00 EVENT: cart 42", "", "2024/03/05 10:00:00 EVENT: cart 42"),  # Go's log package
        ("ERROR cache unreachable", "ERROR", "ERROR cache unreachable"),
        ("Notice the trailing slash", "", "Notice the trailing slash"),  # prose, not a level
    ],
)
def test_other_runtime_lines_guess_a_level(text: str, level: str, message: str) -> None:
    [log] = logs(line(text))
    assert (log.level, log.message, log.request_id, log.time, log.log_type) == (level, message, "", T0, "function")


# --- single platform lines: hex ids, statuses, timeouts, out of memory, INIT / RESTORE -------------------------


@pytest.mark.parametrize(("key", "kind"), [("start_hex_id", "start"), ("report_timeout", "report")])
def test_request_ids_of_32_hex_digits_without_dashes(key: str, kind: str) -> None:
    [inv] = invocations(line(PLATFORM_LINES[key]), kind)
    assert inv.request_id == HEX_RID and len(inv.request_id) == 32
    assert inv.event_id == stable_id(FUNCTION, HEX_RID, kind)


def test_report_with_status_timeout() -> None:
    events = line(PLATFORM_LINES["report_timeout"])
    [report] = invocations(events, "report")
    assert (report.status, report.duration_ms, report.billed_duration_ms, report.max_memory_used_mb) == (
        "timeout",
        3000,
        3000,
        64,
    )
    [log] = logs(events)
    assert (log.level, log.log_type, log.request_id) == ("ERROR", "platform", HEX_RID)
    assert log.message == PLATFORM_LINES["report_timeout"].rstrip("\n")


def test_task_timed_out_line() -> None:
    events = line(PLATFORM_LINES["task_timed_out"])
    [timeout] = invocations(events, "timeout")
    assert (timeout.status, timeout.request_id, timeout.duration_ms) == ("timeout", HEX_RID, 3000)
    assert timeout.time == T0  # the line's delivery; the runtime's "2024-03-05T10:20:03.004Z" is not the message
    assert timeout.start_time == T0 - timedelta(seconds=3)
    [log] = logs(events)
    assert (log.level, log.request_id, log.message) == ("ERROR", HEX_RID, "Task timed out after 3.00 seconds")


def test_report_with_an_error_type_out_of_memory() -> None:
    events = line(PLATFORM_LINES["report_out_of_memory"])
    [report] = invocations(events, "report")
    assert (report.request_id, report.status, report.error_type) == (OOM_RID, "error", "Runtime.OutOfMemory")
    assert report.max_memory_used_mb == report.memory_size_mb == 128
    assert logs(events)[0].level == "ERROR"


@pytest.mark.parametrize(
    ("key", "error_type"), [("oom_signal_killed", "Runtime.ExitError"), ("oom_json_error", "Runtime.OutOfMemory")]
)
def test_out_of_memory_exits(key: str, error_type: str) -> None:
    events = line(PLATFORM_LINES[key])
    [oom] = invocations(events, "oom")
    assert (oom.status, oom.error_type) == ("oom", error_type)
    [log] = logs(events)
    assert log.level == "ERROR"


def test_out_of_memory_exit_names_its_request() -> None:
    [oom] = invocations(line(PLATFORM_LINES["oom_signal_killed"]), "oom")
    assert oom.request_id == OOM_RID


def test_init_start_and_init_report_with_timeout_or_error() -> None:
    [init_start] = invocations(line(PLATFORM_LINES["init_start"]), "init_start")
    assert init_start.request_id == "" and init_start.function == FUNCTION

    events = line(PLATFORM_LINES["init_report_timeout"])
    [timeout] = invocations(events, "init_report")
    assert (timeout.status, timeout.init_duration_ms, timeout.error_type) == ("timeout", 10000.0, "")
    assert logs(events)[0].level == "ERROR"

    [error] = invocations(line(PLATFORM_LINES["init_report_error"]), "init_report")  # runs of spaces
    # Phase invoke (the sample's): the re-run init lies inside the invocation that holds the environment already
    assert (error.status, error.error_type, error.init_duration_ms) == ("error", "Runtime.ExitError", None)
    assert error.cold_start is False  # an INIT_REPORT is not an invocation's REPORT

    for phase, counted in (("init", 812.5), ("invoke", None)):
        record = {"time": "2026-11-27T05:00:00.000Z", "type": "platform.initReport",
                  "record": {"initializationType": "on-demand", "phase": phase, "status": "error",
                             "metrics": {"durationMs": 812.5}}}  # fmt: skip
        [report] = [e for e in telemetry.parse(orjson.dumps([record]), CTX).events if e.kind == "init_report"]
        assert report.init_duration_ms == counted


# --- Telemetry API ------------------------------------------------------------------------------------------------

TELEMETRY_RID = "5a1f0c2e-xmpl-4e9a-8c6f-2d4b1e0a9f37"
TELEMETRY_TRACE = "1-65e6f0a1-0f1e2d3c4b5a69788796a5b4"


def tparse(elements: Any, ctx: IngestContext = CTX) -> Parsed:
    return telemetry.parse(orjson.dumps(elements), ctx)


def platform_log(parsed: Parsed, type_: str) -> FunctionLog:
    [found] = [e for e in logs(parsed.events) if e.fields.get("type") == type_]
    return found


def test_telemetry_init_and_invoke_lifecycle() -> None:
    parsed = tparse(load_json("telemetry", "lifecycle.json"))
    assert parsed.dead == [] and parsed.meta == {"records": 11}

    [init_start] = invocations(parsed.events, "init_start")
    assert (init_start.time, init_start.version) == (at(10, 0, 0), "$LATEST")
    [init_report] = invocations(parsed.events, "init_report")
    assert (init_report.init_duration_ms, init_report.status) == (380.25, "success")
    init_done = platform_log(parsed, "platform.initRuntimeDone")
    assert (init_done.level, init_done.log_type, init_done.fields["status"]) == ("INFO", "platform", "success")

    [start] = invocations(parsed.events, "start")
    assert (start.request_id, start.version, start.start_time) == (TELEMETRY_RID, "$LATEST", at(10, 0, 0, 400))
    assert start.trace_id == TELEMETRY_TRACE  # the Root= part of tracing.value
    [done] = invocations(parsed.events, "runtime_done")
    assert (done.request_id, done.status, done.duration_ms, done.trace_id) == (
        TELEMETRY_RID,
        "success",
        120.0,
        TELEMETRY_TRACE,
    )
    [report] = invocations(parsed.events, "report")
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        120.75,
        121,
        256,
        88,
    )
    assert isinstance(report.memory_size_mb, int) and isinstance(report.max_memory_used_mb, int)  # 256.0 -> 256
    assert (report.init_duration_ms, report.cold_start, report.status) == (380.25, True, "success")
    assert report.start_time == at(10, 0, 0, 530) - timedelta(milliseconds=120.75)
    assert report.event_id == stable_id(FUNCTION, TELEMETRY_RID, "report")

    # `function` records as a text line and as an object; `extension` records are not the function's
    assert [(e.time, e.request_id, e.level, e.message) for e in function_lines(parsed.events)] == [
        (at(10, 0, 0, 412), TELEMETRY_RID, "INFO", "looking up order 17"),
        (at(10, 0, 0, 450), TELEMETRY_RID, "WARN", "order 17 has no invoice"),
    ]
    assert function_lines(parsed.events)[1].fields["requestId"] == TELEMETRY_RID
    [extension] = [e for e in logs(parsed.events) if e.log_type == "extension"]
    assert (extension.level, extension.message) == ("INFO", "shipper: 2 batches queued")

    assert platform_log(parsed, "platform.telemetrySubscription").level == "INFO"
    dropped = platform_log(parsed, "platform.logsDropped")
    assert (dropped.level, dropped.fields["droppedRecords"], dropped.fields["droppedBytes"]) == ("WARN", "7", "2048")


def test_telemetry_snapstart_restore_records() -> None:
    parsed = tparse(load_json("telemetry", "snapstart.json"))
    assert parsed.dead == []
    assert [(r.status, r.restore_duration_ms, r.error_type) for r in invocations(parsed.events, "restore_report")] == [
        ("success", 389.1, ""),
        ("failure", None, "Runtime.Unknown"),
    ]
    restore_start = platform_log(parsed, "platform.restoreStart")
    assert (restore_start.level, restore_start.fields["runtimeVersion"]) == ("INFO", "java:21.v12")
    restored, failed = (e for e in logs(parsed.events) if e.fields.get("type") == "platform.restoreRuntimeDone")
    assert (restored.level, failed.level, failed.fields["errorType"]) == ("INFO", "ERROR", "Runtime.Unknown")
    [start] = invocations(parsed.events, "start")
    assert start.version == "3"
    [report] = invocations(parsed.events, "report")
    assert (report.restore_duration_ms, report.duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        389.1,
        25.61,
        1024,
        160,
    )
    assert report.init_duration_ms is None


def test_telemetry_statuses_success_failure_error_timeout() -> None:
    parsed = tparse(load_json("telemetry", "statuses.json"))
    assert parsed.dead == []
    assert [(d.status, d.error_type, d.duration_ms) for d in invocations(parsed.events, "runtime_done")] == [
        ("success", "", 41.5),
        ("failure", "Runtime.Unknown", 12.25),
        ("error", "Runtime.ExitError", 803.0),
        ("timeout", "Sandbox.Timedout", 3000.0),
    ]
    [timed_out] = [r for r in invocations(parsed.events, "report") if r.status == "timeout"]
    assert timed_out.request_id == "1a2b3c4d-xmpl-4000-8000-000000000004"
    assert (timed_out.error_type, timed_out.duration_ms, timed_out.memory_size_mb, timed_out.max_memory_used_mb) == (
        "Sandbox.Timedout",
        3000.0,
        128,
        71,
    )


def test_telemetry_2025_report_without_memory_metrics() -> None:
    parsed = tparse(load_json("telemetry", "statuses.json"))
    [report] = [r for r in invocations(parsed.events, "report") if r.request_id.endswith("000000000005")]
    assert (report.status, report.duration_ms) == ("success", 2.375)
    assert (report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (None, None, None)
    assert (report.init_duration_ms, report.cold_start) == (None, False)
    assert report.start_time == datetime(2025, 9, 19, 8, 30, 0, 881000, tzinfo=UTC) - timedelta(milliseconds=2.375)


@pytest.mark.parametrize("name", ["invalid_missing_comma.txt", "invalid_trailing_comma.txt"])
def test_telemetry_body_that_is_not_json_is_unusable_and_answered_400(name: str) -> None:
    body = read_bytes("telemetry", name)
    with pytest.raises(UnusableBody, match="telemetry body is not JSON"):
        telemetry.parse(body, CTX)
    answer, stored = post("/ingest/telemetry", body, params={"function": FUNCTION})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("telemetry body is not JSON")
    [letter] = stored  # the body is kept, as a dead letter with the same reason
    assert isinstance(letter, DeadLetter)
    assert (letter.source, letter.raw, letter.reason) == ("telemetry", body, answer.json()["detail"])


# --- Logs API and Extensions API ---------------------------------------------------------------------------------

LOGS_API_CTX = IngestContext(tenant="acme", params={"function": "billing"})
HEX_LOGS_API = "4d3c2b1a0f9e8d7c6b5a493827160514"


def test_logs_api_batch_with_hex_request_ids_end_and_fault() -> None:
    parsed = tparse(load_json("telemetry", "logs_api.json"), LOGS_API_CTX)
    assert parsed.dead == []
    [start] = invocations(parsed.events, "start")
    assert (start.request_id, start.version, start.time) == (HEX_LOGS_API, "", datetime(2021, 6, 1, 8, tzinfo=UTC))
    [report] = invocations(parsed.events, "report")
    assert report.request_id == HEX_LOGS_API
    assert (
        report.duration_ms,
        report.billed_duration_ms,
        report.memory_size_mb,
        report.max_memory_used_mb,
        report.init_duration_ms,
        report.cold_start,
    ) == (88.62, 100, 512, 41, 152.4, True)
    assert [(d.request_id, d.status) for d in invocations(parsed.events, "runtime_done")] == [
        (HEX_LOGS_API, "success"),
        ("9e8d7c6b5a4938271605144d3c2b1a0f", "failure"),
        ("8d7c6b5a4938271605144d3c2b1a0f9e", "timeout"),
    ]

    [fault] = invocations(parsed.events, "fault")
    assert (fault.status, fault.request_id) == ("error", "7c6b5a49-3827-1605-144d-3c2b1a0f9e8d")
    fault_log = platform_log(parsed, "platform.fault")
    assert (fault_log.level, fault_log.request_id) == ("ERROR", fault.request_id)
    assert fault_log.message.endswith("Process exited before completing request")

    end = platform_log(parsed, "platform.end")
    assert (end.level, end.request_id) == ("INFO", HEX_LOGS_API)
    assert platform_log(parsed, "platform.logsSubscription").level == "INFO"
    assert platform_log(parsed, "platform.extension").fields["name"] == "audit-agent"
    assert platform_log(parsed, "platform.logsDropped").level == "WARN"

    [charging] = function_lines(parsed.events)
    assert (charging.request_id, charging.level, charging.message) == (HEX_LOGS_API, "INFO", "charging card")
    [extension] = [e for e in logs(parsed.events) if e.log_type == "extension"]
    assert extension.message == "audit-agent: flushed 3 records" and extension.function == "billing"


def test_extensions_api_events_are_not_telemetry() -> None:
    body = read_bytes("telemetry", "extensions_api_events.json")
    parsed = telemetry.parse(body, CTX)
    assert parsed.events == []
    assert [d.reason for d in parsed.dead] == [
        "telemetry element 0: missing `time`",
        "telemetry element 1: missing `time`",
    ]
    assert [orjson.loads(d.raw)["eventType"] for d in parsed.dead] == ["INVOKE", "SHUTDOWN"]

    answer, stored = post("/ingest/telemetry", body, params={"function": FUNCTION})
    assert answer.status_code == 400
    assert answer.json()["detail"] == {
        "accepted": 0,
        "rejected": 2,
        "errors": ["telemetry element 0: missing `time`", "telemetry element 1: missing `time`"],
    }
    assert [type(e) for e in stored] == [DeadLetter, DeadLetter]


# --- Powertools structured logs ---------------------------------------------------------------------------------

POWERTOOLS_PY_RID = "9b8a7c6d-xmpl-4e5f-a0b1-c2d3e4f5a6b7"
POWERTOOLS_TS_RID = "0c1d2e3f-xmpl-4a5b-8c7d-9e0f1a2b3c4d"
POWERTOOLS_TS_TRACE = "1-65e6f0a2-1a2b3c4dxmpl5e6f7a8b9c0d"


def powertools(name: str) -> list[FunctionLog]:
    found = [logs(line(text)) for text in read_lines("powertools", name)]
    assert all(len(one) == 1 for one in found)
    return [one[0] for one in found]


def test_powertools_python_lines() -> None:
    collecting, charge, expiring, refused = powertools("python.ndjson")

    assert collecting.time == T0  # the delivery's time; the line's own, comma milliseconds and +HHMM, a field:
    assert collecting.fields["timestamp"] == "2024-03-05 10:00:01,250+0000"
    assert (collecting.level, collecting.message, collecting.request_id) == (
        "INFO",
        "Collecting payment",
        POWERTOOLS_PY_RID,
    )
    assert collecting.trace_id == "1-65e6f0a1-0f1e2d3cxmpl69788796a5b4"
    assert collecting.fields["correlation_id"] == "order-4711"
    assert (collecting.fields["cold_start"], collecting.fields["function_memory_size"]) == ("true", "256")
    assert collecting.fields["service"] == "payments"

    # `message` may be an object: kept as compact JSON, and its keys flattened into fields
    assert json.loads(charge.message) == {"operation": "collect_payment", "charge_id": "ch_9Kx2"}
    assert (charge.fields["message.operation"], charge.fields["message.charge_id"]) == ("collect_payment", "ch_9Kx2")

    assert (expiring.level, expiring.fields["level"]) == ("WARN", "WARNING")  # the level as written stays a field
    assert expiring.fields["timestamp"] == "2024-03-05 05:00:01,400-0500"
    assert expiring.fields["sampling_rate"] == "0.1"

    assert (refused.level, refused.message) == ("ERROR", "gateway refused the charge")
    assert refused.fields["exception_name"] == "GatewayError"
    assert refused.fields["stack_trace.type"] == "GatewayError"
    assert json.loads(refused.fields["stack_trace.frames"]) == [
        {"file": "/var/task/collect.py", "line": 28, "function": "handler"}
    ]
    assert all(isinstance(v, str) for log in (collecting, charge, expiring, refused) for v in log.fields.values())


def test_powertools_typescript_lines_numbers_as_strings_and_legacy_keys() -> None:
    invocation_event, over_limit, legacy = powertools("typescript.ndjson")

    assert (invocation_event.level, invocation_event.message) == ("INFO", "Lambda invocation event")
    assert (invocation_event.request_id, invocation_event.trace_id) == (POWERTOOLS_TS_RID, POWERTOOLS_TS_TRACE)
    assert (invocation_event.time, invocation_event.fields["timestamp"]) == (T0, "2024-03-05T10:00:02.100Z")
    # TypeScript writes these numbers as strings; Python writes numbers: the fields read the same either way
    assert (invocation_event.fields["sampling_rate"], invocation_event.fields["function_memory_size"]) == (
        "0.5",
        "1024",
    )
    assert (invocation_event.fields["event.cartId"], invocation_event.fields["event.items"]) == ("c-77", "2")

    assert (over_limit.level, over_limit.fields["timestamp"]) == ("WARN", "2024-03-05T12:00:02.200+02:00")
    assert over_limit.fields["correlation_id"] == "basket-9"

    # the older TypeScript layout: logLevel, correlationIds.*, lambdaFunction.*
    assert (legacy.level, legacy.request_id, legacy.trace_id) == ("ERROR", POWERTOOLS_TS_RID, POWERTOOLS_TS_TRACE)
    assert legacy.fields["timestamp"] == "2024-03-05T10:00:02.300Z"
    assert legacy.fields["lambdaFunction.memoryLimitInMB"] == "1024"
    assert legacy.fields["logger.sampleRateValue"] == "0.5"


def test_powertools_lines_through_a_cloudwatch_subscription_read_the_same() -> None:
    texts = read_lines("powertools", "python.ndjson") + read_lines("powertools", "typescript.ndjson")
    first_ms = 1709632801000
    message = subscription_message(
        "/aws/lambda/payments",
        "2024/03/05/[9]4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",
        [(first_ms + i, text + "\n") for i, text in enumerate(texts)],
    )
    parsed = cloudwatch.parse(gzipped(orjson.dumps(message)), CTX)
    assert parsed.dead == []
    via_subscription = logs(parsed.events)
    alone = [logs(line(text))[0] for text in texts]

    def facts(log: FunctionLog) -> tuple[Any, ...]:
        return (log.level, log.message, log.request_id, log.trace_id, log.fields)

    assert [facts(e) for e in via_subscription] == [facts(e) for e in alone]
    assert [e.time for e in via_subscription] == [  # each line's CloudWatch timestamp
        datetime.fromtimestamp((first_ms + i) / 1000, UTC) for i in range(len(texts))
    ]
    assert {(e.function, e.version, e.account, e.log_group) for e in via_subscription} == {
        ("payments", "9", "111122223333", "/aws/lambda/payments")
    }
