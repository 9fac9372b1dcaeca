"""The traffic simulator: a faithful Lambda scheduler, real wire shapes, and a sender that gets it all there."""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fnscope.simulator import wire
from fnscope.simulator.scheduler import (
    ACCOUNT_LIMIT_REASON,
    RESERVED_LIMIT_REASON,
    FunctionSpec,
    SimInvocation,
    Simulation,
    function_names,
    simulate,
)
from fnscope.simulator.sender import Summary, run

START = datetime(2026, 11, 27, 5, 0, 0, tzinfo=UTC)

REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<rid>[0-9a-f-]{36})\tDuration: (?P<dur>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<mem>\d+) MB\tMax Memory Used: (?P<maxmem>\d+) MB\t"
    r"(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t)?"
    r"(?:Status: (?P<status>timeout|error)(?:\tError Type: (?P<etype>[\w.]+))?)?"
    r"(?:\nXRAY TraceId: 1-[0-9a-f]{8}-[0-9a-f]{24}\tSegmentId: [0-9a-f]{16}\tSampled: true\t)?\n$"
)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(functions=8, rate=40.0, duration_s=10.0, seed=7, start=START)


def executed(sim: Simulation) -> list[SimInvocation]:
    return [i for i in sim.invocations if i.status != "throttled"]


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Brute force: the most intervals [start, end) running at any interval's start instant."""
    return max((sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals), default=0)


# ---------------------------------------------------------------- scheduler


def test_names_are_stable_and_distinct() -> None:
    names = function_names(40)
    assert names[:2] == ["orders-api", "payments-worker"]
    assert len(set(names)) == 40
    assert function_names(5) == names[:5]


def test_time_ordered_and_plausible(sim: Simulation) -> None:
    starts = [i.start for i in sim.invocations]
    assert starts == sorted(starts)
    assert all(START <= i.start < datetime(2026, 11, 27, 5, 0, 10, tzinfo=UTC) for i in sim.invocations)
    assert 250 < len(sim.invocations) < 550  # Poisson around 40/s * 10 s
    for inv in executed(sim):
        assert inv.end > inv.start
        assert inv.billed_ms >= inv.duration_ms
        assert 0 < inv.max_memory_mb <= inv.memory_mb
        assert inv.init_ms is None or 100.0 <= inv.init_ms <= 1500.0
    assert len({i.request_id for i in sim.invocations}) == len(sim.invocations)


def test_reserved_concurrency_never_exceeded(sim: Simulation) -> None:
    reserved = [f for f in sim.functions if f.reserved_concurrency is not None]
    assert reserved
    for spec in reserved:
        intervals = [(i.start, i.end) for i in executed(sim) if i.function == spec.name]
        assert max_overlap(intervals) <= spec.reserved_concurrency  # type: ignore[operator]


def test_default_workload_throttles_within_ten_seconds() -> None:
    for seed in range(5):
        run_ = simulate(seed=seed, start=START, duration_s=10.0)
        throttled = [i for i in run_.invocations if i.status == "throttled"]
        assert throttled, seed
        assert {i.throttle_reason for i in throttled} == {RESERVED_LIMIT_REASON}


def test_throttles_when_arrivals_exceed_reserved() -> None:
    spec = FunctionSpec(
        name="slow-fn",
        median_ms=2000.0,
        sigma=0.1,
        timeout_s=30.0,
        reserved_concurrency=1,
        error_rate=0.0,
        timeout_rate=0.0,
        oom_rate=0.0,
    )
    run_ = simulate(rate=5.0, duration_s=5.0, seed=1, start=START, specs=[spec])
    done = executed(run_)
    throttled = [i for i in run_.invocations if i.status == "throttled"]
    assert len(throttled) > len(done) > 0
    assert max_overlap([(i.start, i.end) for i in done]) == 1
    assert all(i.duration_ms == 0 and i.init_ms is None and i.environment_id == "" for i in throttled)


def test_account_limit_throttles_unreserved_functions() -> None:
    specs = [
        FunctionSpec(
            name=f"fn-{k}", median_ms=1500.0, sigma=0.1, timeout_s=30.0, error_rate=0.0, timeout_rate=0.0, oom_rate=0.0
        )
        for k in range(3)
    ]
    run_ = simulate(rate=30.0, duration_s=3.0, seed=3, start=START, specs=specs, account_limit=10)
    assert any(i.throttle_reason == ACCOUNT_LIMIT_REASON for i in run_.invocations)
    assert max_overlap([(i.start, i.end) for i in executed(run_)]) <= 10


def test_cold_start_only_when_no_warm_environment_free(sim: Simulation) -> None:
    by_env: dict[str, list[SimInvocation]] = defaultdict(list)
    for inv in executed(sim):
        by_env[inv.environment_id].append(inv)
    for runs in by_env.values():  # one invocation at a time per environment; only its first one is cold
        assert [r.cold_start for r in runs] == [True] + [False] * (len(runs) - 1)
        assert all(a.end <= b.start for a, b in zip(runs, runs[1:]))
        assert len({(r.function, r.version) for r in runs}) == 1
    keepalive = {f.name: f.keepalive_s for f in sim.functions}
    for cold in (i for i in executed(sim) if i.cold_start):
        for env, runs in by_env.items():
            if env == cold.environment_id or (runs[0].function, runs[0].version) != (cold.function, cold.version):
                continue
            if runs[0].start > cold.start:
                continue  # did not exist yet
            busy = any(r.start <= cold.start < r.end for r in runs)
            last_end = max((r.end for r in runs if r.end <= cold.start), default=None)
            idle_ok = last_end is not None and (cold.start - last_end).total_seconds() <= keepalive[cold.function]
            assert busy or not idle_ok, f"{cold.request_id} cold-started while {env} was warm and idle"


def test_timeouts_last_exactly_the_timeout() -> None:
    run_ = hanging_sim()
    timeouts = [i for i in run_.invocations if i.status == "timeout"]
    assert timeouts
    assert all(i.duration_ms == 3000.0 and i.billed_ms == 3000 for i in timeouts)
    assert all(i.error_type == "Sandbox.Timedout" for i in timeouts)


def test_versions_and_aliases(sim: Simulation) -> None:
    for inv in sim.invocations:
        spec = sim.by_name[inv.function]
        assert inv.version in spec.versions
        assert inv.alias == spec.alias


# ---------------------------------------------------------------- determinism


def payload_fingerprint(s: Simulation) -> list[tuple[Any, ...]]:
    return [(r.kind, r.path, r.params, r.headers, r.body) for r in wire.render(s)]


def test_same_seed_gives_byte_identical_payloads() -> None:
    a = simulate(rate=15.0, duration_s=3.0, seed=11, start=START)
    b = simulate(rate=15.0, duration_s=3.0, seed=11, start=START)
    assert a.invocations == b.invocations
    assert payload_fingerprint(a) == payload_fingerprint(b)
    c = simulate(rate=15.0, duration_s=3.0, seed=12, start=START)
    assert payload_fingerprint(a) != payload_fingerprint(c)


def test_renderers_do_not_depend_on_call_order(sim: Simulation) -> None:
    firehose_first = wire.firehose_requests(sim)
    wire.telemetry_requests(sim)
    assert [r.body for r in wire.firehose_requests(sim)] == [r.body for r in firehose_first]
    assert [r.body for r in wire.render(sim) if r.kind == "firehose"] == [r.body for r in firehose_first]


# ---------------------------------------------------------------- wire shapes


def test_telemetry_batches(sim: Simulation) -> None:
    reqs = wire.telemetry_requests(sim)
    seen: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for req in reqs:
        params = dict(req.params)
        assert set(params) == {"function", "version", "region", "account"}
        events = json.loads(req.body)
        assert isinstance(events, list) and len(events) == req.events
        for ev in events:
            assert set(ev) == {"time", "type", "record"} and ISO_MS.match(ev["time"])
            if ev["type"].startswith("platform.") and "requestId" in ev["record"]:
                seen[ev["record"]["requestId"]][ev["type"]] = ev["record"]
                if ev["type"] == "platform.start":
                    assert ev["record"]["version"] == params["version"]
        # one environment per batch: an invocation's events are contiguous
        starts = [i for i, e in enumerate(events) if e["type"] == "platform.start"]
        reports = [i for i, e in enumerate(events) if e["type"] == "platform.report"]
        assert all(s < r for s, r in zip(starts, reports)) and len(starts) == len(reports)
    runs = executed(sim)
    assert set(seen) == {i.request_id for i in runs}
    for inv in runs:
        report = seen[inv.request_id]["platform.report"]
        metrics = report["metrics"]
        assert metrics["durationMs"] == inv.duration_ms and metrics["billedDurationMs"] == inv.billed_ms
        assert metrics["memorySizeMB"] == inv.memory_mb and metrics["maxMemoryUsedMB"] == inv.max_memory_mb
        assert metrics.get("initDurationMs") == inv.init_ms
        assert report["status"] == {"oom": "error"}.get(inv.status, inv.status)
        assert report["tracing"]["value"].startswith(f"Root={inv.trace_id};")


def test_telemetry_function_records_mix_text_and_powertools(sim: Simulation) -> None:
    records = [
        ev["record"] for req in wire.telemetry_requests(sim) for ev in json.loads(req.body) if ev["type"] == "function"
    ]
    texts = [r for r in records if isinstance(r, str)]
    objects = [r for r in records if isinstance(r, dict)]
    assert texts and objects
    powertools = [json.loads(t) for t in texts if t.startswith("{")] + objects
    pt = [p for p in powertools if "function_request_id" in p]
    assert pt
    assert {"level", "message", "timestamp", "service", "cold_start", "xray_trace_id", "order_id"} <= set(pt[0])
    assert any(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\t[0-9a-f-]{36}\tERROR\t", t) for t in texts) or any(
        t.startswith("[ERROR]") for t in texts
    )


def decode_firehose(req: wire.WireRequest) -> list[dict[str, Any]]:
    body = json.loads(req.body)
    assert set(body) == {"requestId", "timestamp", "records"} and isinstance(body["timestamp"], int)
    assert 0 < len(body["records"]) <= 500
    return [json.loads(gzip.decompress(base64.b64decode(r["data"]))) for r in body["records"]]


def hanging_sim() -> Simulation:
    spec = FunctionSpec(name="hangs", median_ms=200.0, timeout_s=3.0, timeout_rate=0.3, error_rate=0.1, tracing=True)
    return simulate(rate=20.0, duration_s=5.0, seed=2, start=START, specs=[spec])


def test_firehose_cloudwatch_payloads(sim: Simulation) -> None:
    check_firehose(sim)


def test_firehose_timeouts_render_like_lambda() -> None:
    hung = hanging_sim()
    assert any(i.status == "timeout" for i in hung.invocations)
    check_firehose(hung)
    reports = [
        ev["record"]
        for req in wire.telemetry_requests(hung)
        for ev in json.loads(req.body)
        if ev["type"] == "platform.report" and ev["record"]["status"] == "timeout"
    ]
    assert reports and all(
        r["errorType"] == "Sandbox.Timedout" and r["metrics"]["durationMs"] == 3000.0 for r in reports
    )


def check_firehose(sim: Simulation) -> None:
    reqs = wire.firehose_requests(sim)
    assert dict(reqs[0].headers)["X-Amz-Firehose-Request-Id"] == json.loads(reqs[0].body)["requestId"]
    messages: dict[str, list[str]] = defaultdict(list)
    ids: set[str] = set()
    for req in reqs:
        for doc in decode_firehose(req):
            assert doc["messageType"] == "DATA_MESSAGE" and doc["owner"] == sim.account_id
            fn = doc["logGroup"].removeprefix("/aws/lambda/")
            assert doc["logGroup"] == f"/aws/lambda/{fn}" and fn in sim.by_name
            assert re.match(r"^\d{4}/\d{2}/\d{2}/\[(\$LATEST|\d+)\][0-9a-f]{32}$", doc["logStream"])
            assert doc["subscriptionFilters"] == [wire.SUBSCRIPTION_FILTER]
            for ev in doc["logEvents"]:
                assert re.fullmatch(r"\d{56}", ev["id"]) and ev["id"].startswith(str(ev["timestamp"]))
                ids.add(ev["id"])
                messages[doc["logStream"]].append(ev["message"])
    assert len(ids) == sum(len(m) for m in messages.values())

    reports = {m.group("rid"): m for ms in messages.values() for msg in ms if (m := REPORT_RE.match(msg))}
    runs = executed(sim)
    assert set(reports) == {i.request_id for i in runs}
    for inv in runs:
        m = reports[inv.request_id]
        assert float(m["dur"]) == inv.duration_ms and int(m["billed"]) == inv.billed_ms
        assert int(m["mem"]) == inv.memory_mb and int(m["maxmem"]) == inv.max_memory_mb
        assert (m["init"] and float(m["init"])) == (inv.init_ms or None)
        assert m["status"] == {"timeout": "timeout", "oom": "error"}.get(inv.status)
        stream = messages[inv.log_stream]
        assert f"START RequestId: {inv.request_id} Version: {inv.version}\n" in stream
        assert f"END RequestId: {inv.request_id}\n" in stream
        if inv.status == "timeout":
            assert any(
                re.fullmatch(rf"\S+Z {inv.request_id} Task timed out after {inv.timeout_s:.2f} seconds\n\n", msg)
                for msg in stream
            )


def test_report_line_matches_real_lambda_sample() -> None:
    real = (
        "REPORT RequestId: dbda340c-0000-4031-8810-11bb609b4c71\tDuration: 38.66 ms\tBilled Duration: 39 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 54 MB\tInit Duration: 203.69 ms\t\n"
    )
    assert REPORT_RE.match(real)
    inv = SimInvocation(
        function="f",
        version="$LATEST",
        alias=None,
        request_id="dbda340c-0000-4031-8810-11bb609b4c71",
        start=START,
        end=START,
        duration_ms=38.66,
        billed_ms=39,
        memory_mb=128,
        max_memory_mb=54,
        init_ms=203.69,
        status="success",
        api_request_id="x",
        trace_id="1-0-0",
    )
    assert wire.report_line(inv, FunctionSpec(name="f")) == real


def test_apigateway_access_logs(sim: Simulation) -> None:
    lines = [json.loads(line) for req in wire.apigateway_requests(sim) for line in req.body.decode().splitlines()]
    assert len(lines) == len(sim.invocations)
    fields = {
        "requestId",
        "ip",
        "requestTime",
        "requestTimeEpoch",
        "httpMethod",
        "routeKey",
        "status",
        "protocol",
        "responseLength",
        "integrationStatus",
        "integrationLatency",
        "responseLatency",
        "integrationErrorMessage",
        "functionName",
    }
    by_id = {i.api_request_id: i for i in sim.invocations}
    for line in lines:
        assert fields <= set(line) and all(isinstance(v, str) for v in line.values())
        assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", line["requestTime"])
        inv = by_id[line["requestId"]]
        if inv.status == "throttled":
            assert line["status"] == "429" and "Rate Exceeded" in line["integrationErrorMessage"]
        elif inv.status == "success":
            assert line["status"] in ("200", "201") and line["integrationErrorMessage"] == "-"
    params = dict(wire.apigateway_requests(sim)[0].params)
    assert set(params) == {"api", "stage"}


def test_cloudtrail_log_files(sim: Simulation) -> None:
    records = [r for req in wire.cloudtrail_requests(sim) for r in json.loads(req.body)["Records"]]
    required = {
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "requestID",
        "eventID",
        "eventType",
        "recipientAccountId",
        "eventCategory",
    }
    for rec in records:
        assert required <= set(rec)
        assert rec["eventVersion"] in ("1.08", "1.09", "1.10")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["eventTime"])
        assert rec["userIdentity"]["type"] in ("AssumedRole", "IAMUser")
        if rec["userIdentity"]["type"] == "AssumedRole":
            assert rec["userIdentity"]["sessionContext"]["sessionIssuer"]["type"] == "Role"
    assert len({r["eventID"] for r in records}) == len(records)

    invokes = [r for r in records if r["eventName"] == "Invoke"]
    assert len(invokes) == len(sim.invocations)
    for rec in invokes:
        assert rec["eventSource"] == "lambda.amazonaws.com" and rec["eventCategory"] == "Data"
        assert rec["managementEvent"] is False
        assert rec["resources"][0]["type"] == "AWS::Lambda::Function"
        assert rec["resources"][0]["ARN"].startswith(f"arn:aws:lambda:{sim.region}:{sim.account_id}:function:")
    throttled = {i.request_id for i in sim.invocations if i.status == "throttled"}
    errored = [r for r in invokes if "errorCode" in r]
    assert throttled and {r["requestID"] for r in errored} == throttled
    assert all(
        r["errorCode"] == "TooManyRequestsException"
        and r["errorMessage"] == "Rate Exceeded."
        and r["additionalEventData"]["Reason"] == RESERVED_LIMIT_REASON
        for r in errored
    )

    puts = {
        r["requestParameters"]["functionName"]: r["requestParameters"]["reservedConcurrentExecutions"]
        for r in records
        if r["eventName"] == "PutFunctionConcurrency20171031"
    }
    assert puts == {f.name: f.reserved_concurrency for f in sim.functions if f.reserved_concurrency is not None}
    login = [r for r in records if r["eventName"] == "ConsoleLogin"]
    assert len(login) == 1 and login[0]["additionalEventData"]["MFAUsed"] in ("Yes", "No")
    canaries = [f for f in sim.functions if len(f.versions) > 1]
    assert len([r for r in records if r["eventName"] == "UpdateFunctionCode20150331v2"]) == len(canaries)


# ---------------------------------------------------------------- sender


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()


def handler_for(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            with rec.lock:
                attempt = len(rec.requests)
                url = urlsplit(self.path)
                rec.requests.append(
                    {"path": url.path, "query": parse_qs(url.query), "headers": dict(self.headers), "raw": raw}
                )
            if attempt < rec.fail_first:
                self._answer(503, b'{"message":"busy"}', {"Retry-After": "0"})
                return
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            if url.path == "/ingest/firehose":
                doc = json.loads(body)
                self._answer(200, json.dumps({"requestId": doc["requestId"], "timestamp": 1}).encode())
                return
            if url.path == "/ingest/telemetry":
                n = len(json.loads(body))
            elif url.path == "/ingest/cloudtrail":
                n = len(json.loads(body)["Records"])
            else:
                n = len(body.splitlines())
            self._answer(200, json.dumps({"accepted": n, "rejected": 0}).encode())

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(rec))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sender_delivers_all_formats(server: tuple[str, Recorder]) -> None:
    target, rec = server
    summary = run(
        target, functions=4, rate=15.0, duration_s=3.0, seed=5, token="s3cret", fast=True, start=START, quiet=True
    )
    paths = {r["path"] for r in rec.requests}
    assert paths == {"/ingest/telemetry", "/ingest/firehose", "/ingest/apigateway", "/ingest/cloudtrail"}
    for r in rec.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        if r["path"] == "/ingest/firehose":
            assert h["x-amz-firehose-access-key"] == "s3cret" and "authorization" not in h
            assert "content-encoding" not in h and h["x-amz-firehose-request-id"]
            json.loads(r["raw"])
        else:
            assert h["authorization"] == "Bearer s3cret" and h["content-encoding"] == "gzip"
            gzip.decompress(r["raw"])
        if r["path"] == "/ingest/telemetry":
            assert {"function", "version", "region", "account"} <= set(r["query"])
        if r["path"] == "/ingest/apigateway":
            assert set(r["query"]) == {"api", "stage"}
    assert summary.requests_sent == len(rec.requests) and summary.requests_failed == 0
    non_firehose = [r for r in rec.requests if r["path"] != "/ingest/firehose"]
    assert summary.events_accepted == summary.events_sent - summary.firehose_events > 0
    assert len(non_firehose) == sum(n for k, n in summary.requests_by_kind.items() if k != "firehose")
    expected = Summary.of(simulate(4, 15.0, 3.0, 5, START))
    assert (summary.invocations, summary.throttles, summary.cold_starts) == (
        expected.invocations,
        expected.throttles,
        expected.cold_starts,
    )
    assert "invocations" in summary.render()


def test_sender_retries_503_with_retry_after(server: tuple[str, Recorder]) -> None:
    target, rec = server
    rec.fail_first = 2
    summary = run(target, functions=2, rate=5.0, duration_s=1.0, seed=1, fast=True, start=START, quiet=True)
    assert summary.retries == 2 and summary.requests_failed == 0
    assert len(rec.requests) == summary.requests_sent + 2
    assert rec.requests[0]["raw"] == rec.requests[1]["raw"] == rec.requests[2]["raw"]


def test_real_time_pacing_spans_the_duration(server: tuple[str, Recorder]) -> None:
    target, _ = server
    summary = run(target, functions=2, rate=5.0, duration_s=1.0, seed=1, start=START, quiet=True)
    assert 0.9 <= summary.elapsed_s < 3.0
