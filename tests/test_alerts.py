"""Alerting end to end: a real `fnscope up` with FNSCOPE_ALERT_WEBHOOK_URL pointing at a real local receiver."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fnscope.simulator.scheduler import FunctionSpec, simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import management_events, render
from tests.conftest import FNSCOPE, Process, free_port, wait_http
from tests.fixtures import cloudtrail_set
from tests.test_alerts_support import Receiver

CONFIG = """
alerts:
  tick_s: 0.2
  rules:
    - {{name: function-throttled, window_s: 2, resolve_after_s: 1}}
    - {{name: concurrency-headroom, window_s: 60, resolve_after_s: 600}}
    - {{name: cloudtrail-stopped, window_s: 2, resolve_after_s: 1}}
  targets:
    - {{url: "{receiver}/slack", format: slack, name: slack}}
    - {{url: "{receiver}/flaky", name: flaky}}
"""


class Up:
    """`fnscope up` on one data dir, restartable, with the alert webhook env var set."""

    def __init__(self, tmp: Path, receiver: Receiver) -> None:
        self.tmp, self.receiver = tmp, receiver
        self.config = tmp / "fnscope.yaml"
        self.config.write_text(CONFIG.format(receiver=receiver.url))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Process | None = None

    def start(self) -> None:
        args = [*FNSCOPE, "up", "--data-dir", str(self.tmp / "data"), "--port", str(self.port)]
        env = {"FNSCOPE_ALERT_WEBHOOK_URL": f"{self.receiver.url}/hook", "FNSCOPE_CONFIG": str(self.config)}
        self.proc = Process(args, self.tmp / "up.log", env=env).start()
        wait_http(f"{self.url}/healthz", proc=self.proc.proc)

    def stop(self) -> None:
        assert self.proc is not None
        assert self.proc.stop() == 0, self.proc.output()[-3000:]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Up]:
    instance = Up(tmp_path_factory.mktemp("alerts"), receiver)
    instance.start()
    yield instance
    instance.stop()


def _is(rule: str, function: str, status: str = "firing") -> Any:
    return lambda b: b.get("rule") == rule and b.get("function") == function and b.get("status") == status


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _post(url: str, path: str, body: Any, **params: str) -> None:
    response = httpx.post(f"{url}{path}", params=params, content=json.dumps(body), timeout=30)
    assert response.status_code == 200, response.text


def test_simulated_throttling_fires_once_and_resolves(up: Up, receiver: Receiver) -> None:
    spec = FunctionSpec(
        "payments-worker", reserved_concurrency=2, burst_mean=5.0, median_ms=300.0, timeout_s=30.0,
        error_rate=0.0, timeout_rate=0.0, oom_rate=0.0, weight=1.0,
    )  # fmt: skip
    sim = simulate(rate=40, duration_s=2, seed=7, specs=[spec])
    throttled = sum(inv.status == "throttled" for inv in sim.invocations)
    assert throttled >= 3, "the workload must throttle more than once for this test to mean anything"
    with Sender(up.url) as sender:
        for request in render(sim):
            assert sender.send(request).is_success

    fired = receiver.wait_for("/hook", _is("function-throttled", "payments-worker"))
    resolved = receiver.wait_for("/hook", _is("function-throttled", "payments-worker", "resolved"), timeout=30)
    time.sleep(0.5)  # anything duplicated would have arrived by now: the notifier sends as it goes
    assert len(receiver.matching("/hook", _is("function-throttled", "payments-worker"))) == 1
    assert len(receiver.matching("/hook", _is("function-throttled", "payments-worker", "resolved"))) == 1
    assert resolved[0].at > fired[0].at

    body = fired[0].body
    assert 1 <= body["value"] <= throttled
    assert set(body["values"]["throttles_by_source"]) <= {"apigateway", "cloudtrail"}
    assert "payments-worker" in body["summary"]
    assert body["links"]["search"].startswith(f"{up.url}/api/search?q=function%3Apayments-worker")
    # the linked search answers
    assert httpx.get(body["links"]["search"], timeout=30).status_code == 200

    slack = receiver.wait_for("/slack", lambda b: "function-throttled" in b.get("text", ""), count=2)
    assert all(set(s.body) == {"text"} and "payments-worker" in s.body["text"] for s in slack)

    def delivered() -> list[dict[str, Any]]:
        params = {"rule": "function-throttled", "function": "payments-worker"}
        return httpx.get(f"{up.url}/api/alerts/history", params=params, timeout=30).json()["history"]

    deadline = time.monotonic() + 15
    while len(delivered()) < 6 and time.monotonic() < deadline:  # firing + resolved, 3 targets each
        time.sleep(0.1)
    rows = delivered()
    assert sorted((r["kind"], r["target"]) for r in rows) == sorted(
        (kind, target) for kind in ("firing", "resolved") for target in (receiver.url, "slack", "flaky")
    )
    assert all(r["delivery"] == "delivered" for r in rows)
    assert {r["attempts"] for r in rows if r["target"] == "flaky"} == {2}  # a 500, then retried
    assert {r["attempts"] for r in rows if r["target"] != "flaky"} == {1}


def test_headroom_fires_before_the_first_throttle_and_survives_a_restart(up: Up, receiver: Receiver) -> None:
    function = f"checkout-{uuid.uuid4().hex[:6]}"
    spec = FunctionSpec(function, reserved_concurrency=10)
    sim = simulate(rate=0.001, duration_s=0.001, seed=1, specs=[spec])
    put = [rec for _, rec in management_events(sim) if rec["eventName"].startswith("PutFunctionConcurrency")]
    assert put and put[0]["requestParameters"]["reservedConcurrentExecutions"] == 10
    _post(up.url, "/ingest/cloudtrail", {"Records": put})

    started = datetime.now(UTC)

    def start(i: int) -> None:  # an invocation begins: the Telemetry API's platform.start, before its report
        event = {"time": _iso(started + timedelta(milliseconds=20 * i)), "type": "platform.start",
                 "record": {"requestId": f"req-{i}", "version": "$LATEST"}}  # fmt: skip
        _post(up.url, "/ingest/telemetry", [event], function=function)

    for i in range(1, 8):  # 7 running of 10: under 80 %
        start(i)
    time.sleep(1.0)
    assert not receiver.matching("/hook", lambda b: b.get("function") == function)
    start(8)
    headroom = receiver.wait_for("/hook", _is("concurrency-headroom", function), timeout=10)[0]
    start(9)
    assert headroom.body["values"]["limit"] == 10
    assert headroom.body["values"]["limit_source"] == "reserved"
    assert headroom.body["values"]["peak"] == 8
    assert not receiver.matching("/hook", _is("function-throttled", function))

    # the 11th call is refused: Lambda's Invoke data event says TooManyRequestsException
    throttle_sim = simulate(
        rate=50,
        duration_s=1,
        seed=2,
        specs=[FunctionSpec(function, reserved_concurrency=1, burst_mean=5.0, median_ms=2000.0)],
    )
    throttle_requests = [r for r in render(throttle_sim) if r.kind == "cloudtrail"]
    assert any(b"TooManyRequestsException" in r.body for r in throttle_requests)
    with Sender(up.url) as sender:
        for request in throttle_requests:
            assert sender.send(request).is_success
    throttle = receiver.wait_for("/hook", _is("function-throttled", function), timeout=10)[0]
    assert headroom.at < throttle.at

    # state survives a restart: the firing headroom alert is still listed and is not notified again
    up.stop()
    up.start()
    alerts = httpx.get(f"{up.url}/api/alerts", params={"function": function}, timeout=30).json()["alerts"]
    assert [(a["rule"], a["state"]) for a in alerts if a["rule"] == "concurrency-headroom"] == [
        ("concurrency-headroom", "firing")
    ]
    start(10)  # still high after the restart: the same alert, not a new one
    time.sleep(1.5)
    assert len(receiver.matching("/hook", _is("concurrency-headroom", function))) == 1


def test_audit_rule_from_a_cloudtrail_record(up: Up, receiver: Receiver) -> None:
    [record] = cloudtrail_set.technique("defense-evasion.cloudtrail-stop")
    record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # as if it happened just now
    record["eventID"] = str(uuid.uuid4())
    _post(up.url, "/ingest/cloudtrail", {"Records": [record]})
    fired = receiver.wait_for("/hook", lambda b: b.get("rule") == "cloudtrail-stopped" and b["status"] == "firing")
    body = fired[-1].body
    assert body["values"]["action"] == "StopLogging"
    assert record["userIdentity"]["arn"] in body["summary"]
    assert "audit" in body["links"]


def test_alerts_cli_test_and_list(up: Up, receiver: Receiver) -> None:
    before = len(receiver.matching("/hook", lambda b: b.get("kind") == "test"))
    out = subprocess.run([*FNSCOPE, "alerts", "test", "--api", up.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "delivered" in out.stdout
    assert len(receiver.matching("/hook", lambda b: b.get("kind") == "test")) == before + 1
    assert receiver.matching("/slack", lambda b: "test notification" in b.get("text", ""))
    listed = subprocess.run(
        [*FNSCOPE, "alerts", "list", "--rules", "--json", "--api", up.url], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    rules = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rules["function-throttled"]["window_s"] == 2  # from fnscope.yaml, over the built-in
    assert {"concurrency-headroom", "error-rate", "p99-duration", "function-timeouts", "root-login",
            "console-login-without-mfa"} <= set(rules)  # fmt: skip
