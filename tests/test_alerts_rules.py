"""The evaluator's state machine on its own: `for`, grouping by labels, repeat interval and silences.

Time is a clock the test advances (the rules are about durations); events are the real event model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fnscope.alerts.config import AlertSettings, Silence
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.signals import Signals
from fnscope.events import ApiAccess, Invocation

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def throttle(function: str, n: int, at: float, tenant: str = "default") -> list[ApiAccess]:
    when = datetime.fromtimestamp(at, UTC)
    return [
        ApiAccess(
            event_id=f"{function}-{at}-{i}",
            time=when,
            tenant=tenant,
            source="apigateway",
            function=function,
            status=429,
            throttled=True,
        )  # fmt: skip
        for i in range(n)
    ]


def evaluator(clock: Clock, rules: list[dict], silences: list[Silence] | None = None) -> Evaluator:
    settings = AlertSettings(builtins=True, rules=rules)
    return Evaluator(settings.effective_rules(), Signals(3600, 1000), silences, clock)


def test_for_duration_keeps_an_alert_pending_until_it_has_held_long_enough() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "function-throttled", "for_s": 5, "window_s": 10, "resolve_after_s": 3}])
    _, notices = ev.ingest(throttle("a", 2, clock.now))
    assert notices == [] and [i.state for i in ev.instances.values()] == ["pending"]
    clock.now += 3
    assert ev.tick()[1] == []
    clock.now += 2.5
    changed, notices = ev.tick()
    assert [(n.kind, n.instance.value) for n in notices] == [("firing", 2)]
    kinds: list[str] = []
    while not kinds and clock.now < T0.timestamp() + 60:  # ticking, as the service does
        clock.now += 0.5
        kinds = [n.kind for n in ev.tick()[1]]
    assert kinds == ["resolved"]
    # the throttles (second 0) leave the 10 s window after second 10; resolved 3 s of "false" later
    assert 13 <= clock.now - T0.timestamp() <= 14


def test_a_condition_that_stops_before_for_never_notifies() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "function-throttled", "for_s": 30, "window_s": 5}])
    ev.ingest(throttle("a", 1, clock.now))
    clock.now += 6
    changed, notices = ev.tick()
    assert notices == [] and [c.state for c in changed] == ["inactive"] and not ev.instances


def test_grouping_by_tenant_gives_one_alert_for_many_functions() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "function-throttled", "group_by": ["tenant"]}])
    _, first = ev.ingest(throttle("a", 1, clock.now) + throttle("b", 3, clock.now))
    _, second = ev.ingest(throttle("c", 1, clock.now))
    assert len(first) == 1 and second == []
    assert first[0].instance.values["functions"] == ["a", "b"]
    assert first[0].instance.values["function"] == "b" and first[0].instance.value == 3


def test_a_firing_alert_is_stored_on_each_transition_and_its_value_at_most_once_a_second() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "function-throttled", "window_s": 600}])
    changed, notices = ev.ingest(throttle("a", 1, clock.now))
    assert [(c.state, c.value) for c in changed] == [("firing", 1)] and [n.kind for n in notices] == ["firing"]
    clock.now += 0.2
    changed, _ = ev.ingest(throttle("a", 2, clock.now) + throttle("b", 1, clock.now))
    assert [(c.labels["function"], c.state) for c in changed] == [("b", "firing")]  # a: no news within the second
    clock.now += 1
    changed, _ = ev.tick()
    assert sorted((c.labels["function"], c.value) for c in changed) == [("a", 3), ("b", 1)]  # the latest values


def test_repeat_interval_renotifies_a_still_firing_alert() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "function-throttled", "repeat_interval_s": 60, "window_s": 600}])
    assert [n.kind for n in ev.ingest(throttle("a", 1, clock.now))[1]] == ["firing"]
    clock.now += 30
    assert ev.ingest(throttle("a", 1, clock.now))[1] == []
    clock.now += 31
    assert [n.kind for n in ev.ingest(throttle("a", 1, clock.now))[1]] == ["repeat"]


def test_a_silence_holds_notifications_back_but_not_the_state() -> None:
    clock = Clock()
    silence = Silence(matchers={"function": "a"}, ends_at=T0 + timedelta(minutes=5), comment="deploy window")
    ev = evaluator(clock, [{"name": "function-throttled"}], [silence])
    _, notices = ev.ingest(throttle("a", 1, clock.now) + throttle("b", 1, clock.now))
    by_function = {n.instance.labels["function"]: n.silenced_by for n in notices}
    assert by_function == {"a": "deploy window", "b": ""}


def test_error_rate_needs_enough_invocations() -> None:
    clock = Clock()
    ev = evaluator(clock, [{"name": "error-rate", "for_s": 0, "min_invocations": 10, "threshold": 0.5}])

    sent = iter(range(1_000_000))

    def reports(n: int, status: str) -> list[Invocation]:
        return [
            Invocation(
                event_id="",
                time=datetime.fromtimestamp(clock.now, UTC),
                source="telemetry",
                function="f",
                request_id=f"req-{next(sent)}",
                status=status,
                duration_ms=10.0,
            )  # fmt: skip
            for _ in range(n)
        ]

    assert ev.ingest(reports(5, "error"))[1] == []  # 100 % of 5: too few to judge
    _, notices = ev.ingest(reports(5, "error") + reports(2, "success"))
    assert [(n.kind, round(n.instance.value, 2)) for n in notices] == [("firing", 0.83)]


def test_an_unknown_rule_kind_is_refused_at_load() -> None:
    with pytest.raises(ValueError):
        AlertSettings(rules=[{"name": "x", "kind": "cpu", "threshold": 1}])
