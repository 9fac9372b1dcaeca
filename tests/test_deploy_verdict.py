"""Canary verdicts on a real `fnscope up`, fed simulated deployments in the real wire formats.

Each function runs an old and a new version side by side (as a weighted alias or a canary stage does), the
new one with a known regression, with none, or with too little traffic; one shifts all at once, so its baseline
ran only before the window. The simulator's record of every invocation is the reference for the figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from fnscope.simulator.scheduler import FunctionSpec, SimInvocation, Simulation, simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import WireRequest, cloudtrail_requests, dumps, telemetry_events
from tests.conftest import FNSCOPE, ROOT, start_fnscope_up


@dataclass(frozen=True)
class Deployment:
    name: str
    old: dict[str, float]  # FunctionSpec fields of version 1, and its arrival rate
    new: dict[str, float]
    old_rate: float
    new_rate: float
    old_offset_s: float = 0.0  # from the module's start
    new_offset_s: float = 0.0


_STEADY = {"error_rate": 0.005, "timeout_rate": 0.0, "oom_rate": 0.0, "sigma": 0.3, "median_ms": 80.0}
DEPLOYMENTS = (
    Deployment("checkout-api", _STEADY, {**_STEADY, "error_rate": 0.25}, 10.0, 1.5),  # errors regress
    Deployment("search-api", _STEADY, {**_STEADY, "median_ms": 240.0}, 10.0, 3.0),  # p99 regresses
    Deployment("billing-worker", _STEADY, _STEADY, 8.0, 5.0),  # no regression
    Deployment("quiet-worker", _STEADY, _STEADY, 3.0, 0.12),  # too little traffic on the new version
    # all at once: version 1 only before the window, version 2 only in it
    Deployment("orders-worker", _STEADY, _STEADY, 8.0, 8.0, old_offset_s=-360.0),
)
DURATION_S = 120.0


def telemetry_batches(sim: Simulation, events_per_batch: int = 3000) -> list[WireRequest]:
    """The run's Telemetry API events, in batches as large as an extension's buffer lets them be (the Telemetry
    API's buffering allows 10,000 events): a few requests instead of one per environment and second."""
    events = [
        e
        for inv in sim.invocations
        if inv.status != "throttled"
        for e in telemetry_events(inv, sim.by_name[inv.function], sim)
    ]
    (spec,) = sim.functions
    params = (
        ("function", spec.name),
        ("version", spec.versions[0]),
        ("region", sim.region),
        ("account", sim.account_id),
    )
    return [
        WireRequest(
            "telemetry",
            "/ingest/telemetry",
            params,
            dumps(events[i : i + events_per_batch]),
            len(events[i : i + events_per_batch]),
            0,
        )
        for i in range(0, len(events), events_per_batch)
    ]


THROTTLED = 7  # checkout-api's version 2 calls throttled, as CloudTrail's Invoke data events show them


def throttled(sim: Simulation, n: int) -> list[SimInvocation]:
    """Calls throttled on their way to the simulation's version: Invoke events with TooManyRequestsException."""
    return [
        replace(
            inv,
            request_id=f"throttled-{i}-{inv.request_id}",
            status="throttled",
            throttle_reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        )
        for i, inv in enumerate(sim.invocations[:n])
    ]


def _simulations(start: datetime) -> list[Simulation]:
    sims = []
    for i, d in enumerate(DEPLOYMENTS):
        for j, (version, fields, rate, offset) in enumerate(
            (("1", d.old, d.old_rate, d.old_offset_s), ("2", d.new, d.new_rate, d.new_offset_s))
        ):
            spec = FunctionSpec(name=d.name, versions=(version,), timeout_s=10.0, **fields)  # type: ignore[arg-type]
            sims.append(
                simulate(
                    rate=rate,
                    duration_s=DURATION_S,
                    seed=100 + 2 * i + j,
                    start=start + timedelta(seconds=offset),
                    specs=[spec],
                )
            )
    return sims


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Simulation]]]:
    tmp = tmp_path_factory.mktemp("deploy-verdict")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    sims = _simulations(start)
    with Sender(url) as sender:
        for sim in sims:
            for req in telemetry_batches(sim):
                assert sender.send(req).status_code < 300
        for req in cloudtrail_requests(sims[1], throttled(sims[1], THROTTLED)):
            assert sender.send(req).status_code < 300
    ran = sum(1 for s in sims for i in s.invocations if i.status != "throttled")
    window = {"since": "20m", "versions": "true"}
    deadline = time.monotonic() + 90  # aggregates are rebuilt in the background, a moment after the 2xx
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/api/stats", params=window, timeout=30).json()["versions"]
        if sum(r["invocations"] for r in rows) == ran:
            break
        time.sleep(0.5)
    yield url, sims
    proc.stop()


def _ran(sims: list[Simulation], function: str, version: str) -> list:
    return [i for s in sims for i in s.invocations if i.function == function and i.version == version]


def _verdict(url: str, **params: str) -> dict:
    response = httpx.get(f"{url}/api/deployments/verdict", params={"since": "10m", **params}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_regression_in_errors_fails(deployed: tuple[str, list[Simulation]]) -> None:
    url, sims = deployed
    out = _verdict(url, function="checkout-api", version="2")
    assert out["verdict"] == "fail"
    assert out["baseline"] == "1"  # the other version running alongside
    assert out["metrics"]["error_rate"]["decision"] == "fail"
    for key, version in (("new", "2"), ("baseline_figures", "1")):
        mine = _ran(sims, "checkout-api", version)
        assert out[key]["invocations"] == len(mine)
        assert out[key]["errors"] == sum(i.status != "success" for i in mine)
    assert any(r.startswith("error rate") for r in out["reasons"])
    # throttles per version, from CloudTrail's throttled Invoke events: a trial of their own
    assert (out["new"]["throttles"], out["baseline_figures"]["throttles"]) == (THROTTLED, 0)
    throttle = out["metrics"]["throttle_rate"]["figures"]
    assert (throttle["new"], throttle["new_of"]) == (THROTTLED, out["new"]["invocations"] + THROTTLED)


def test_a_regression_in_p99_fails(deployed: tuple[str, list[Simulation]]) -> None:
    url, sims = deployed
    out = _verdict(url, function="search-api", version="2", baseline="1")
    assert out["verdict"] == "fail"
    p99 = out["metrics"]["p99_duration"]
    assert p99["decision"] == "fail"
    assert out["metrics"]["error_rate"]["decision"] != "fail"  # the errors did not regress
    threshold = p99["figures"]["slow_threshold_ms"]
    mine = _ran(sims, "search-api", "2")
    assert p99["figures"]["slow"] == sum(i.duration_ms > threshold for i in mine)
    assert p99["figures"]["new_of"] == len(mine)


def test_no_regression_passes_and_too_little_traffic_waits(deployed: tuple[str, list[Simulation]]) -> None:
    url, sims = deployed
    passed = _verdict(url, function="billing-worker", version="2")
    assert passed["verdict"] == "pass", passed["reasons"]
    assert {m["decision"] for m in passed["metrics"].values()} == {"pass"}

    waiting = _verdict(url, function="quiet-worker", version="2")
    assert waiting["verdict"] == "wait"
    assert waiting["new"]["invocations"] == len(_ran(sims, "quiet-worker", "2")) < 40
    assert "fail" not in {m["decision"] for m in waiting["metrics"].values()}

    alone = _verdict(url, function="billing-worker", version="2", baseline="7")  # a version that never ran
    assert alone["verdict"] == "wait"


def test_an_all_at_once_shift_compares_with_the_window_before(deployed: tuple[str, list[Simulation]]) -> None:
    url, sims = deployed
    out = _verdict(url, function="orders-worker", version="2", since="5m")
    assert out["baseline"] == "1"
    assert out["baseline_window"]["until"] == out["since"]
    assert out["baseline_figures"]["invocations"] == len(_ran(sims, "orders-worker", "1"))
    assert out["verdict"] in ("pass", "wait") and "fail" not in {m["decision"] for m in out["metrics"].values()}


def test_bad_requests_are_400(deployed: tuple[str, list[Simulation]]) -> None:
    url, _ = deployed
    for params in (
        {"function": "x", "version": "2", "baseline": "2"},
        {"function": "x", "version": "2", "since": "30d"},
        {"function": "x", "version": "2", "since": "yesterday"},
    ):
        assert httpx.get(f"{url}/api/deployments/verdict", params=params, timeout=30).status_code == 400
    assert httpx.get(f"{url}/api/deployments/verdict", params={"function": "x"}, timeout=30).status_code == 422


def test_cli_exit_codes(deployed: tuple[str, list[Simulation]]) -> None:
    url, _ = deployed
    base = [*FNSCOPE, "deploy", "verdict", "--api", url, "--since", "10m", "--version", "2", "--function"]
    for function, code, word in (
        ("billing-worker", 0, "PASS"),
        ("checkout-api", 1, "FAIL"),
        ("quiet-worker", 2, "WAIT"),
    ):
        done = subprocess.run([*base, function], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == code, (function, done.stdout, done.stderr)
        assert done.stdout.startswith(f"{word}: {function} version 2 against 1")
    as_json = subprocess.run([*base, "checkout-api", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["verdict"] == "fail"
    unreachable = subprocess.run(
        [*FNSCOPE, "deploy", "verdict", "--api", "http://127.0.0.1:9", "-f", "x", "-v", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert unreachable.returncode == 3 and "cannot reach fnscope" in unreachable.stderr
    typo = subprocess.run([*FNSCOPE, "deploy", "verdict", "-f", "x"], capture_output=True, text=True, cwd=ROOT)
    assert typo.returncode == 3


# --- the CodeDeploy lifecycle hook (examples/codedeploy_hook), against botocore's Stubber and this fnscope ---------


def _hook_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "codedeploy_hook", ROOT / "examples" / "codedeploy_hook" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stubbed_codedeploy(function: str, created: datetime, status: str, current: str = "1") -> tuple[Any, Stubber]:
    client = boto3.client("codedeploy", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("list_deployment_targets", {"targetIds": [f"{function}:live"]}, {"deploymentId": "d-ABC123"})
    info = {
        "functionName": function,
        "functionAlias": "live",
        "currentVersion": current,
        "targetVersion": "2",
        "targetVersionWeight": 0.1,
    }
    stub.add_response(
        "batch_get_deployment_targets",
        {"deploymentTargets": [{"deploymentTargetType": "LambdaTarget", "lambdaTarget": {"lambdaFunctionInfo": info}}]},
        {"deploymentId": "d-ABC123", "targetIds": [f"{function}:live"]},
    )
    stub.add_response("get_deployment", {"deploymentInfo": {"createTime": created}}, {"deploymentId": "d-ABC123"})
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "exec-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "exec-1", "status": status},
    )
    return client, stub


@pytest.mark.parametrize(
    ("function", "hook", "status"),
    [
        ("checkout-api", "PostTraffic", "Failed"),  # worse: CodeDeploy rolls back
        ("billing-worker", "PostTraffic", "Succeeded"),
        ("quiet-worker", "PostTraffic", "Failed"),  # still too little traffic when the wait runs out
        ("quiet-worker", "PreTraffic", "Succeeded"),  # no traffic yet is what a healthy PreTraffic sees
        ("checkout-api", "PreTraffic", "Failed"),  # already failing on the calls it had
    ],
)
def test_codedeploy_hook_reports_the_verdict(
    deployed: tuple[str, list[Simulation]], function: str, hook: str, status: str
) -> None:
    url, _ = deployed
    hook_module = _hook_module()
    client, stub = _stubbed_codedeploy(function, datetime.now(UTC) - timedelta(minutes=10), status)
    asked: list[dict[str, str]] = []
    ask = hook_module.ask_fnscope(url, "")

    def counting(params: dict[str, str]) -> dict[str, Any]:
        asked.append(params)
        return ask(params)

    now = [0.0]
    env = {"FNSCOPE_HOOK": hook, "FNSCOPE_MAX_WAIT_S": "60"}
    with stub:
        result = hook_module.run(
            {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}, client, counting, env,
            sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0],
        )  # fmt: skip
        stub.assert_no_pending_responses()
    assert result == status
    assert asked[0]["function"] == function and (asked[0]["version"], asked[0]["baseline"]) == ("2", "1")
    # a wait is asked again until the deadline (at 0, 20, 40 and 60 s of 60); an answer ends it at once
    assert len(asked) == (4 if (function, hook) == ("quiet-worker", "PostTraffic") else 1)


def test_codedeploy_hook_reports_failed_when_fnscope_is_down() -> None:
    hook_module = _hook_module()
    client, stub = _stubbed_codedeploy("checkout-api", datetime.now(UTC), "Failed")
    with stub:
        status = hook_module.run(
            {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}, client,
            hook_module.ask_fnscope("http://127.0.0.1:9", ""), {"FNSCOPE_MAX_WAIT_S": "0"},
        )  # fmt: skip
        stub.assert_no_pending_responses()
    assert status == "Failed"


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "verdic", "-f", "x", "-v", "2"],  # a command name mistyped
        ["deploy", "--wat", "verdict", "-f", "x", "-v", "2"],  # an option the group does not have
        ["deploy", "verdict", "-f", "x"],  # a required option missing
        ["deploy", "verdict", "-f", "x", "-v", "2", "--wat"],
    ],
)
def test_a_typo_under_deploy_is_no_verdict_never_a_wait(args: list[str]) -> None:
    done = subprocess.run([*FNSCOPE, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "Error:" in done.stderr


def test_codedeploy_hook_fails_at_once_when_fnscope_refuses_the_question(
    deployed: tuple[str, list[Simulation]],
) -> None:
    """A 4xx (here: the version it replaces is the version deployed) is a setup mistake, never a wait: even with
    FNSCOPE_ON_WAIT=Succeeded the hook fails at once, with fnscope's reason in its log."""
    url, _ = deployed
    hook_module = _hook_module()
    client, stub = _stubbed_codedeploy("checkout-api", datetime.now(UTC) - timedelta(minutes=10), "Failed", current="2")
    asked: list[dict[str, str]] = []
    ask = hook_module.ask_fnscope(url, "")
    printed, now = io.StringIO(), [0.0]
    with stub, contextlib.redirect_stdout(printed):
        status = hook_module.run(
            {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}, client,
            lambda params: asked.append(params) or ask(params),
            {"FNSCOPE_HOOK": "PostTraffic", "FNSCOPE_MAX_WAIT_S": "600", "FNSCOPE_ON_WAIT": "Succeeded"},
            sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0],
        )  # fmt: skip
        stub.assert_no_pending_responses()
    assert status == "Failed" and len(asked) == 1
    assert "refused the request (400): function and version are required" in printed.getvalue()
