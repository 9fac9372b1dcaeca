"""The function-disabled and function-runaway rules on the evaluator: real CloudTrail records through the real
parser, real invocation events, a test clock. And a disabled function in stats, from the same records stored in
chDB."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from fnscope.alerts.config import AlertSettings
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.signals import Signals
from fnscope.collector.formats import cloudtrail
from fnscope.events import Event, Invocation
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.query.runner import QueryRunner
from fnscope.query.stats import StatsRequest, stats
from fnscope.sink import IngestContext
from tests.conftest import FNSCOPE, start_fnscope_up
from tests.test_alerts_rules import T0, Clock

ACCOUNT = "111122223333"


def concurrency_call(function: str, at: float, reserved: int | None, who: str = "ops", ip: str = "203.0.113.9") -> list:
    """PutFunctionConcurrency (``reserved``) or DeleteFunctionConcurrency (None), through the CloudTrail parser."""
    body = orjson.dumps({"Records": [concurrency_record(function, at, reserved, who, ip)]})
    return cloudtrail.parse(body, IngestContext(audit=True)).events


def concurrency_record(function: str, at: float, reserved: int | None, who: str, ip: str) -> dict:
    """PutFunctionConcurrency (``reserved``) or DeleteFunctionConcurrency (None), as CloudTrail writes them."""
    put = reserved is not None
    record = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{who}", "accountId": ACCOUNT,
                         "userName": who},
        "eventTime": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "lambda.amazonaws.com",
        "eventName": "PutFunctionConcurrency20171031" if put else "DeleteFunctionConcurrency20171031",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"functionName": function, **({"reservedConcurrentExecutions": reserved} if put else {})},
        "responseElements": {"reservedConcurrentExecutions": reserved} if put else None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }  # fmt: skip
    return record


def _evaluator(clock: Clock, rules: list[dict] | None = None) -> Evaluator:
    return Evaluator(AlertSettings(rules=rules or []).effective_rules(), Signals(3600, 1000), clock=clock)


def _notices(ev: Evaluator, events: list[Event], rule: str) -> list:
    return [n for n in ev.ingest(events)[1] if n.instance.rule == rule]


def test_reserved_concurrency_zero_fires_disabled_with_who_when_and_from_where_until_lifted() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    assert _notices(ev, concurrency_call("orders", clock.now - 60, 5), "function-disabled") == []  # a limit, not 0
    fired = _notices(ev, concurrency_call("orders", clock.now - 30, 0, who="mallory", ip="198.51.100.7"),
                     "function-disabled")  # fmt: skip
    assert [n.kind for n in fired] == ["firing"]
    alert = fired[0].instance
    assert alert.labels == {"tenant": "default", "function": "orders"}
    assert alert.values["by"] == f"arn:aws:iam::{ACCOUNT}:user/mallory"
    assert alert.values["source_ip"] == "198.51.100.7"
    assert alert.values["at"] == datetime.fromtimestamp(clock.now - 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert alert.summary == (
        f"orders is disabled: reserved concurrency set to 0 by arn:aws:iam::{ACCOUNT}:user/mallory "
        f"from 198.51.100.7 at {alert.values['at']}"
    )
    clock.now += 600  # no traffic at all (it is disabled): still firing, never resolved by silence
    assert [n.kind for n in ev.tick()[1]] == []
    assert [i.state for i in ev.instances.values()] == ["firing"]
    # an older change arriving late does not lift it
    assert _notices(ev, concurrency_call("orders", clock.now - 900, 50), "function-disabled") == []
    lifted = _notices(ev, concurrency_call("orders", clock.now - 5, None), "function-disabled")
    assert [n.kind for n in lifted] == ["resolved"]


def test_a_non_zero_put_lifts_it_and_a_restart_keeps_who_disabled_it() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    fired = _notices(ev, concurrency_call("images", clock.now, 0), "function-disabled")
    assert [n.kind for n in fired] == ["firing"]
    # a restart: the limit comes back from the store (no who), the firing alert from the alert state
    restarted = _evaluator(clock)
    restarted.signals.reserved[("default", "images")] = (clock.now, 0)
    restarted.restore([fired[0].instance])
    clock.now += 2
    assert restarted.tick()[1] == []
    assert (
        restarted.instances[("function-disabled", fired[0].instance.fingerprint)].values["source_ip"] == "203.0.113.9"
    )
    lifted = _notices(restarted, concurrency_call("images", clock.now, 3), "function-disabled")
    assert [n.kind for n in lifted] == ["resolved"]


def reports(function: str, n: int, at: float, spread_s: float = 60.0, duration_ms: float = 100.0,
            memory_mb: int = 1024) -> list[Event]:  # fmt: skip
    """n invocations of ``function`` ending evenly over the ``spread_s`` seconds before ``at``."""
    out: list[Event] = []
    for i in range(n):
        end = datetime.fromtimestamp(at - spread_s + spread_s * (i + 1) / (n + 1), UTC)
        out.append(
            Invocation(
                event_id="",
                time=end,
                source="telemetry",
                function=function,
                request_id=uuid.uuid4().hex,
                kind="report",
                status="success",
                duration_ms=duration_ms,
                billed_duration_ms=duration_ms,
                memory_size_mb=memory_mb,
                start_time=end - timedelta(milliseconds=duration_ms),
            )  # fmt: skip
        )
    return out


def _steady(
    ev: Evaluator, clock: Clock, function: str, per_minute: int, minutes: int, duration_ms: float = 100
) -> list:
    """``minutes`` of steady traffic, ticking as the service does; the runaway notices it caused."""
    notices = []
    for _ in range(minutes):
        clock.now += 60
        notices += _notices(ev, reports(function, per_minute, clock.now, duration_ms=duration_ms), "function-runaway")
        notices += [n for n in ev.tick()[1] if n.instance.rule == "function-runaway"]
    return notices


def test_a_function_ten_times_its_baseline_runs_away_and_steady_traffic_never_does() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    assert _steady(ev, clock, "resize", 120, 30) == []  # 2/s for half an hour: its own normal
    clock.now += 30
    burst = _notices(ev, reports("resize", 1500, clock.now, spread_s=30), "function-runaway")
    assert [n.kind for n in burst] == ["firing"]
    values = burst[0].instance.values
    # the last minute: the burst and the steady calls of the half minute before it
    assert values["baseline"]["invocations"] == 120 and values["current"]["invocations"] == 1560
    assert burst[0].instance.summary == "resize is running away: 1,560 invocations a minute against a median of 120"
    # the loop stops: resolved once its window is back to normal for resolve_after_s
    assert [n.kind for n in _steady(ev, clock, "resize", 120, 8)] == ["resolved"]


def test_below_the_floor_or_without_a_watched_baseline_nothing_runs_away() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    _steady(ev, clock, "quiet", 3, 20)
    clock.now += 60
    assert _notices(ev, reports("quiet", 300, clock.now), "function-runaway") == []  # 100x, but under 600 a minute
    fresh = _evaluator(Clock())  # just started: no minute of this function's past was watched
    assert _notices(fresh, reports("busy", 5000, fresh.clock()), "function-runaway") == []


def test_a_function_first_called_long_after_the_start_is_judged_against_its_own_minutes() -> None:
    """Deployed while fnscope ran: the quiet hour before its first call is not its baseline."""
    clock = Clock()
    ev = _evaluator(clock)
    _steady(ev, clock, "other", 10, 30)  # the process has watched half an hour, this function not yet called
    assert _steady(ev, clock, "fresh", 900, 15) == []  # its own normal from its first minute, above the floor


def test_a_long_window_is_judged_against_the_minutes_kept() -> None:
    """A window longer than the kept history: the minutes no longer kept are not quiet minutes."""
    clock = Clock()
    rule = {"name": "function-runaway", "window_s": 3000, "runaway": {"floor_invocations_per_minute": 60}}
    ev = _evaluator(clock, [rule])
    assert _steady(ev, clock, "batch", 70, 115) == []


def test_concurrency_far_above_its_baseline_runs_away() -> None:
    clock = Clock()
    ev = _evaluator(clock, [{"name": "function-runaway", "runaway": {"floor_concurrency": 20}}])
    _steady(ev, clock, "crawler", 60, 15)  # 100 ms calls a second apart: one at a time
    clock.now += 30
    # 40 calls of 20 s each started together: 40 at once
    burst = _notices(ev, reports("crawler", 40, clock.now, spread_s=1, duration_ms=20_000), "function-runaway")
    assert [n.kind for n in burst] == ["firing"]
    assert burst[0].instance.values["current"]["concurrency"] == 40
    assert "40 concurrent against a median of 1" in burst[0].instance.values["reasons"]


def test_a_per_function_budget_fires_once_the_last_hour_is_over_it() -> None:
    clock = Clock()
    rule = {"name": "function-runaway", "runaway": {"budgets": {"etl": {"gb_seconds_per_hour": 1000}}}}
    ev = _evaluator(clock, [rule])
    # 100 calls a minute of 1 s at 1 GB: 100 GB-s a minute, steady (no baseline breach), within budget for 10 min
    notices = _steady(ev, clock, "etl", 100, 10, duration_ms=1000)
    assert notices == []
    notices = _steady(ev, clock, "etl", 100, 1, duration_ms=1000)
    assert [n.kind for n in notices] == ["firing"]
    assert "GB-s in the last hour, over its budget of 1,000" in notices[0].instance.values["reasons"]
    # the budget is per function: another function with the same traffic is fine
    assert _steady(ev, clock, "other", 100, 11, duration_ms=1000) == []


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    client = open_store(f"chdb://{tmp_path_factory.mktemp('controls') / 'store'}")
    yield client
    client.close()


def test_stats_show_a_disabled_function_with_who_when_and_where_even_without_traffic(store) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = float(int(datetime.now(UTC).timestamp()))  # CloudTrail's times are whole seconds
    events = (
        concurrency_call("orders", now - 300, 0, who="mallory", ip="198.51.100.7")
        + concurrency_call("images", now - 300, 0)
        + concurrency_call("images", now - 120, None)  # lifted again
        + concurrency_call("billing", now - 200, 25)
        + reports("billing", 10, now)
    )
    for e in events:
        e.tenant = tenant
    writer = EventWriter(store)
    writer.write(events)
    writer.health.flush()
    out = stats(QueryRunner(store), StatsRequest(tenant, datetime.now(UTC) - timedelta(hours=1)))
    rows = {r["function"]: r for r in out["functions"]}
    assert sorted(rows) == ["billing", "orders"]
    assert rows["billing"]["disabled"] is None and rows["billing"]["concurrency_limit"] == 25
    disabled = rows["orders"]["disabled"]
    assert disabled["by"] == f"arn:aws:iam::{ACCOUNT}:user/mallory"
    assert disabled["source_ip"] == "198.51.100.7"
    assert disabled["at"] == datetime.fromtimestamp(now - 300, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows["orders"]["invocations"] == 0 and rows["orders"]["concurrency_limit"] == 0


def test_fnscope_up_shows_who_disabled_a_function_in_the_api_the_cli_and_an_alert(tmp_path) -> None:
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log")
    try:
        now = float(int(datetime.now(UTC).timestamp()))
        body = {"Records": [concurrency_record("orders", now - 90, 0, "mallory", "198.51.100.7")]}
        r = httpx.post(f"{url}/ingest/cloudtrail", params={"wait": "stored"}, content=orjson.dumps(body), timeout=30)
        assert r.status_code == 200 and r.json()["stored"], r.text
        (row,) = httpx.get(f"{url}/api/stats", params={"since": "1h"}, timeout=30).json()["functions"]
        assert row["function"] == "orders" and row["disabled"]["source_ip"] == "198.51.100.7"

        shown = subprocess.run(
            [*FNSCOPE, "stats", "--api", url], capture_output=True, text=True, timeout=120, env=_plain_env()
        )
        assert shown.returncode == 0, shown.stderr
        header, first = shown.stdout.splitlines()[:2]
        assert header.split()[:2] == ["function", "state"] and first.split()[:2] == ["orders", "DISABLED"]
        at = datetime.fromtimestamp(now - 90, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (
            f"orders is disabled (reserved concurrency 0) by arn:aws:iam::{ACCOUNT}:user/mallory from 198.51.100.7, {at}"
            in shown.stdout.splitlines()
        )

        deadline = time.monotonic() + 30  # the alert service evaluates stored batches on its own thread
        while not (alerts := [a for a in _alerts(url) if a["rule"] == "function-disabled"]):
            assert time.monotonic() < deadline, "no function-disabled alert"
            time.sleep(0.3)
        assert alerts[0]["state"] == "firing" and alerts[0]["labels"]["function"] == "orders"
        assert "by arn:aws:iam::111122223333:user/mallory from 198.51.100.7" in alerts[0]["summary"]
    finally:
        proc.stop()


def _alerts(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/alerts", timeout=30).json()["alerts"]


def _plain_env() -> dict[str, str]:
    """Piped, without the terminal settings of whoever runs the tests."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FNSCOPE_API")}


def test_the_alerts_concurrency_counts_a_cold_starts_init() -> None:
    """A warm invocation over 0-5 s and a cold start whose 1 s init (stated by its REPORT) runs 1-2 s: two at once."""
    signals = Signals(3600, 1000)
    base = T0.timestamp()

    def report(rid: str, start: float, end: float, init_ms: float | None) -> Invocation:
        return Invocation(
            event_id="", time=datetime.fromtimestamp(end, UTC), source="telemetry", function="orders", request_id=rid,
            kind="report", duration_ms=(end - start) * 1000, start_time=datetime.fromtimestamp(start, UTC),
            init_duration_ms=init_ms, cold_start=init_ms is not None,
        )  # fmt: skip

    signals.observe([report("warm", base, base + 5, None), report("cold", base + 2, base + 2.1, 1000.0)], base + 6)
    fn = signals.functions[("default", "orders")]
    assert signals.peak_concurrency(fn, base + 1, base + 6, until=base + 2) == 2  # the init, beside the warm one
    assert signals.peak_concurrency(fn, base, base + 6, until=base + 1) == 1  # before the init
    assert signals.peak_concurrency(fn, base + 2.2, base + 6) == 1  # after the cold invocation


def test_gb_seconds_far_above_its_baseline_run_away() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    _steady(ev, clock, "transcode", 60, 15)  # 60 calls of 100 ms at 1 GB a minute: 6 GB-s a minute
    clock.now += 60
    # as many calls, each now running 30 s (a dependency hanging): 1,800 GB-s in the minute
    burst = _notices(ev, reports("transcode", 60, clock.now, duration_ms=30_000), "function-runaway")
    assert [n.kind for n in burst] == ["firing"]
    values = burst[0].instance.values
    assert values["baseline"]["gb_seconds"] == pytest.approx(6) and values["current"]["gb_seconds"] == pytest.approx(
        1800
    )
    assert "1,800 GB-s a minute against a median of 6" in values["reasons"]
    assert values["current"]["invocations"] == 60  # the call rate did not move


def test_without_a_runaway_rule_no_minute_history_is_kept() -> None:
    """The per-minute history only the runaway rule reads costs memory and sweeps per function: off with the rule."""
    kept, skipped = Signals(360, 1000), Signals(360, 1000, watch_minutes=False)
    at = T0.timestamp()
    for signals in (kept, skipped):
        signals.observe(reports("resize", 50, at), at)
        signals.prune(at + 120)
    [fn_kept], [fn_skipped] = kept.functions.values(), skipped.functions.values()
    assert sum(fn_kept.minute_invocations.values()) == 50 and fn_kept.minute_peaks
    assert not fn_skipped.minute_invocations and not fn_skipped.minute_gb_seconds and not fn_skipped.minute_peaks
