"""`/api/stats` and `fnscope stats` on a real `fnscope up`, fed a simulated fleet in the real wire formats.

The simulator's own record of every invocation is the reference for counts, throttles (from API Gateway
access logs and CloudTrail Invoke events), reserved concurrency (from CloudTrail PutFunctionConcurrency)
and canary versions; the table, top-N and time series must agree with it and with each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fnscope.app.settings import Settings
from fnscope.query.stats import cover
from fnscope.simulator.scheduler import Simulation, simulate
from fnscope.simulator.sender import Sender
from fnscope.simulator.wire import render
from tests.conftest import FNSCOPE, ROOT, all_stored, start_fnscope_up


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Simulation, dict[str, str]]]:
    """One `fnscope up` for the module (as the `embedded` fixture starts it), fed one simulated fleet."""
    tmp = tmp_path_factory.mktemp("health-api")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    sim = simulate(functions=5, rate=20.0, duration_s=8.0, seed=2, start=start)  # has throttles and a canary
    with Sender(url) as sender:
        for req in render(sim):
            assert sender.send(req).status_code < 300
    window = {"since": _iso(start - timedelta(minutes=1)), "until": _iso(start + timedelta(minutes=3))}
    ran = sum(1 for i in sim.invocations if i.status != "throttled")
    all_stored(url)
    # the aggregates (counts, concurrency peaks, throttles, limits) are rebuilt in the background a moment after
    # each insert, each on its own: wait until every invocation is counted and the whole answer stopped changing
    deadline, last = time.monotonic() + 60, None
    while True:
        now = httpx.get(f"{url}/api/stats", params={**window, "versions": "true"}, timeout=30).json()
        if sum(r["invocations"] for r in now["functions"]) == ran and now == last:
            break
        assert time.monotonic() < deadline, "the health tables never settled"
        last = now
        time.sleep(1)
    yield url, sim, window
    proc.stop()


def test_stats_agree_with_the_simulated_fleet(fleet: tuple[str, Simulation, dict[str, str]]) -> None:
    url, sim, window = fleet
    out = httpx.get(f"{url}/api/stats", params={**window, "versions": "true"}, timeout=30).json()
    rows = {r["function"]: r for r in out["functions"]}
    ran = [i for i in sim.invocations if i.status != "throttled"]
    assert set(rows) == {i.function for i in sim.invocations}
    for spec in sim.functions:
        row = rows[spec.name]
        mine = [i for i in ran if i.function == spec.name]
        throttled = sum(1 for i in sim.invocations if i.function == spec.name and i.status == "throttled")
        assert row["invocations"] == len(mine)
        assert row["errors"] == sum(i.status != "success" for i in mine)
        assert row["timeouts"] == sum(i.status == "timeout" for i in mine)
        assert row["out_of_memory"] == sum(i.status == "oom" for i in mine)
        assert row["cold_starts"] == sum(i.cold_start for i in mine)
        assert row["throttles_by_source"] == ({"apigateway": throttled, "cloudtrail": throttled} if throttled else {})
        assert row["max_ms"] == max(i.duration_ms for i in mine)
        if spec.reserved_concurrency is not None:
            # learned from the PutFunctionConcurrency CloudTrail event, and the scheduler never runs more
            assert (row["concurrency_limit"], row["limit_source"]) == (spec.reserved_concurrency, "reserved")
            assert 0 < row["peak_concurrency"] <= spec.reserved_concurrency
        assert row["headroom"] == row["concurrency_limit"] - row["peak_concurrency"]
        gb_s = sum(i.billed_ms / 1000 * i.memory_mb / 1024 for i in mine)
        assert row["gb_seconds"] == pytest.approx(gb_s, abs=2e-3)
        prices = Settings()  # the defaults: the public x86 prices
        cost = gb_s * prices.price_per_gb_second + len(mine) * prices.price_per_request
        assert row["estimated_cost_usd"] == pytest.approx(cost, abs=2e-6)
    reasons = Counter(
        i.throttle_reason for i in sim.invocations if i.function == "payments-worker" and i.throttle_reason
    )
    assert (
        rows["payments-worker"]["throttles_by_reason"]["cloudtrail: ReservedFunctionConcurrentInvocationLimitExceeded"]
        == reasons["ReservedFunctionConcurrentInvocationLimitExceeded"]
    )

    # the canary: both versions side by side, each with its own error rate and p99, and the alias routing to it
    canary = next(s for s in sim.functions if len(s.versions) > 1 and s.name == "notifications-worker")
    versions = {r["version"]: r for r in out["versions"] if r["function"] == canary.name}
    for version in canary.versions:
        mine = [i for i in ran if i.function == canary.name and i.version == version]
        assert versions[version]["invocations"] == len(mine)
        assert versions[version]["error_rate"] == round(sum(i.status != "success" for i in mine) / len(mine), 4)
        assert versions[version]["p99_ms"] is not None
        assert canary.alias in versions[version]["aliases"]

    (account,) = out["accounts"]
    assert account["account"] == sim.account_id
    assert max(r["peak_concurrency"] for r in rows.values()) <= account["peak_concurrency"]
    assert account["headroom"] == 1000 - account["peak_concurrency"]


def test_top_and_series_agree_with_the_table(fleet: tuple[str, Simulation, dict[str, str]]) -> None:
    url, sim, window = fleet
    table = httpx.get(f"{url}/api/stats", params=window, timeout=30).json()
    top = httpx.get(f"{url}/api/stats", params={**window, "top": 2, "by": "invocations"}, timeout=30).json()
    ranked = sorted(table["functions"], key=lambda r: (-r["invocations"], r["function"]))
    assert [r["function"] for r in top["functions"]] == [r["function"] for r in ranked[:2]]

    account_peak = table["accounts"][0]["peak_concurrency"]
    for step in ("1s", "1m", "1h"):
        points = httpx.get(f"{url}/api/stats", params={**window, "step": step}, timeout=30).json()["series"]
        # the per-second sweep, its minute rollup and its hour rollup all agree on the peak
        assert max(p["peak_concurrency"] for p in points) == account_peak, step
    minutes = httpx.get(f"{url}/api/stats", params={**window, "step": "1m"}, timeout=30).json()["series"]
    assert sum(p["invocations"] for p in minutes) == sum(r["invocations"] for r in table["functions"])
    busiest = ranked[0]["function"]
    per_second = httpx.get(f"{url}/api/stats", params={**window, "step": "1s", "function": busiest}, timeout=30).json()[
        "series"
    ]
    assert max(p["peak_concurrency"] for p in per_second) == ranked[0]["peak_concurrency"]

    for bad in ({"step": "7s"}, {"top": 3, "by": "colour"}, {"since": "yesterday"}):
        assert httpx.get(f"{url}/api/stats", params={**window, **bad}, timeout=30).status_code == 400


def test_cli_prints_the_same_numbers(fleet: tuple[str, Simulation, dict[str, str]]) -> None:
    url, sim, window = fleet
    args = [*FNSCOPE, "stats", "--api", url, "--since", window["since"], "--until", window["until"]]
    as_json = subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    api = httpx.get(f"{url}/api/stats", params=window, timeout=30).json()["functions"]
    assert json.loads(as_json.stdout) == api
    table = subprocess.run(
        [*args, "--top", "3", "--by", "errors"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},  # a wide terminal, so rich does not fold the names
    )
    assert table.returncode == 0, table.stderr
    worst = sorted(api, key=lambda r: (-r["errors"], r["function"]))[:3]
    assert all(r["function"] in table.stdout for r in worst)
    assert sum(r["function"] in table.stdout for r in api) == 3  # only the top three


def test_a_range_is_tiled_by_hours_minutes_and_seconds() -> None:
    lo, hi = 3 * 3600 - 61, 6 * 3600 + 125
    pieces = cover(lo, hi)
    covered = sorted(s for res, a, b in pieces for s in range(a, b, 1))
    assert covered == list(range(lo, hi))  # every second once, none outside
    assert all(a % res == 0 and b % res == 0 for res, a, b in pieces)
    assert {res for res, _, _ in pieces} == {1, 60, 3600}
