"""API Gateway stages with canary releases, on a real `fnscope up`: access-log lines in the format
`fnscope aws access-log-format --api rest` prints, each release's figures side by side, and the canary verdict.

The lines are made here from a seeded generator; the figures they should give are computed from the same lines.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from fnscope.deploy.templates import access_log_formats
from tests.conftest import FNSCOPE, all_stored, start_fnscope_up

API = "a1b2c3d4e5"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Release:
    stage: str
    deployment: str
    canary: str  # what $context.isCanaryRequest writes: "true", "false", or "-" on a stage without a canary
    requests: int
    error_every: int  # every n-th request answers 502 (0: none)
    latency_ms: tuple[int, int]


RELEASES = (
    Release("prod", "d1base", "false", 900, 50, (20, 100)),
    Release("prod", "d2cnry", "true", 160, 4, (20, 100)),  # a quarter of the canary's answers are 5xx
    Release("payments", "p7base", "false", 800, 0, (20, 100)),
    Release("payments", "p8cnry", "true", 400, 0, (20, 80)),  # as good: no errors, never slower
    Release("beta", "b1", "-", 60, 10, (5, 15)),  # no canary on this stage
)


def _line(release: Release, i: int, rng: random.Random) -> dict[str, Any]:
    """One request's access-log line: the REST format's keys with the values API Gateway writes."""
    fmt: dict[str, str] = json.loads(access_log_formats()["rest"])
    values = {
        "$context.apiId": API,
        "$context.stage": release.stage,
        "$context.deploymentId": release.deployment,
        "$context.isCanaryRequest": release.canary,
        "$context.requestId": f"{release.deployment}-{i}",
        "$context.requestTimeEpoch": str(int((NOW - timedelta(seconds=rng.uniform(60, 400))).timestamp() * 1000)),
        "$context.httpMethod": "POST",
        "$context.resourcePath": "/orders",
        "$context.path": f"/{release.stage}/orders",
        "$context.status": "502" if release.error_every and i % release.error_every == 0 else "200",
        "$context.responseLatency": str(rng.randint(*release.latency_ms)),
    }
    return {key: values.get(variable, "-") for key, variable in fmt.items()}


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    tmp = tmp_path_factory.mktemp("stages")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    rng = random.Random(7)
    lines = [_line(r, i, rng) for r in RELEASES for i in range(r.requests)]
    body = b"\n".join(orjson.dumps(line) for line in lines)
    r = httpx.post(f"{url}/ingest/apigateway", content=body, timeout=60)
    assert r.status_code < 300, r.text
    all_stored(url)
    yield url, lines
    assert proc.stop() == 0


def _expected(lines: list[dict[str, Any]]) -> dict[tuple[str, str, bool | None], dict[str, Any]]:
    groups: dict[tuple[str, str, bool | None], list[dict[str, Any]]] = {}
    for line in lines:
        canary = {"true": True, "false": False}.get(line["isCanaryRequest"])
        groups.setdefault((line["stage"], line["deploymentId"], canary), []).append(line)
    out = {}
    for key, group in groups.items():
        latencies = sorted(float(line["responseLatency"]) for line in group)
        out[key] = {
            "requests": len(group),
            "server_errors": sum(line["status"] == "502" for line in group),
            "p99_ms": pytest.approx(latencies[int(0.99 * len(latencies))], rel=0.05),  # a t-digest: bounded memory
        }
    return out


def test_each_release_of_a_stage_has_its_own_figures(sent: tuple[str, list[dict[str, Any]]]) -> None:
    url, lines = sent
    answer = httpx.get(f"{url}/api/deployments/stages", params={"api": API, "since": "1h"}).json()
    got = {
        (row["stage"], row["deployment_id"], row["canary"]): {
            "requests": row["requests"],
            "server_errors": row["server_errors"],
            "p99_ms": row["p99_ms"],
        }
        for row in answer["stages"]
    }
    assert got == _expected(lines)
    releases = {(row["stage"], row["release"]) for row in answer["stages"]}
    assert {("prod", "base"), ("prod", "canary"), ("beta", "")} <= releases

    one = httpx.get(f"{url}/api/deployments/stages", params={"api": API, "stage": "beta"}).json()["stages"]
    assert [(row["stage"], row["requests"]) for row in one] == [("beta", 60)]


def _verdict(url: str, stage: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/deployments/stages/verdict", params={"api": API, "stage": stage, "since": "1h"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_canary_release_with_more_5xx_fails(sent: tuple[str, list[dict[str, Any]]]) -> None:
    out = _verdict(sent[0], "prod")
    assert out["verdict"] == "fail"
    assert out["metrics"]["error_rate"]["decision"] == "fail"
    assert out["new"]["invocations"] == 160 and out["new"]["errors"] == 40
    assert out["baseline_figures"]["invocations"] == 900 and out["baseline_figures"]["errors"] == 18
    assert "d2cnry" in out["new"]["version"] and "d1base" in out["baseline_figures"]["version"]


def test_a_canary_release_as_good_as_its_base_passes(sent: tuple[str, list[dict[str, Any]]]) -> None:
    out = _verdict(sent[0], "payments")
    assert out["verdict"] == "pass", out["reasons"]
    assert out["new"]["slow"] == 0 and out["new"]["timed"] == 400


def test_a_stage_without_a_canary_release_waits(sent: tuple[str, list[dict[str, Any]]]) -> None:
    out = _verdict(sent[0], "beta")
    assert out["verdict"] == "wait"
    assert out["new"]["invocations"] == 0


def test_the_cli_prints_the_stages_and_exits_with_the_verdict(sent: tuple[str, list[dict[str, Any]]]) -> None:
    url = sent[0]
    env = {**os.environ, "COLUMNS": "160"}
    table = subprocess.run(
        [*FNSCOPE, "deploy", "stages", "--api-id", API, "--api", url], capture_output=True, text=True, env=env
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert ["prod", "canary", "d2cnry", "160", "40"] == rows[[r[:3] for r in rows].index(["prod", "canary", "d2cnry"])][
        :5
    ]
    for stage, code in (("prod", 1), ("payments", 0), ("beta", 2)):
        run = subprocess.run(
            [*FNSCOPE, "deploy", "stage-verdict", "--api-id", API, "--stage", stage, "--since", "1h", "--api", url],
            capture_output=True,
            text=True,
            env=env,
        )
        assert run.returncode == code, (stage, run.stdout, run.stderr)
    missing = subprocess.run([*FNSCOPE, "deploy", "stage-verdict", "--api-id", API, "--api", url], capture_output=True)
    assert missing.returncode == 3  # no --stage: no verdict, never a wait


def test_the_stages_route_checks_its_parameters(sent: tuple[str, list[dict[str, Any]]]) -> None:
    url = sent[0]
    assert httpx.get(f"{url}/api/deployments/stages", params={"api": API, "since": "90d"}).status_code == 400
    assert httpx.get(f"{url}/api/deployments/stages/verdict", params={"api": API, "stage": ""}).status_code == 400
