"""The canary-regression rule on the evaluator (real events, a test clock), and the cloudwatch_alarm target
against botocore's Stubber: firing sets ALARM, resolved sets OK, a test only looks the alarm up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber

from fnscope.alerts.cloudwatch_alarm import UnsafeName, alarm_name, set_alarm_state
from fnscope.alerts.config import AlertSettings, Target
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.notify import Notifier, payload
from fnscope.alerts.signals import Signals
from fnscope.canary import Policy
from fnscope.collector.formats import cloudtrail
from fnscope.events import Invocation
from fnscope.sink import IngestContext
from tests.test_alerts_rules import T0, Clock


def reports(version: str, n: int, error_rate: float, at: float, seed: int, median_ms: float = 80.0) -> list[Invocation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        when = datetime.fromtimestamp(at - rng.uniform(0, 240), UTC)
        out.append(
            Invocation(
                event_id="",
                time=when,
                source="telemetry",
                function="checkout",
                version=version,
                request_id=f"{version}-{seed}-{i}",
                kind="report",
                status="error" if rng.random() < error_rate else "success",
                duration_ms=rng.lognormvariate(0, 0.3) * median_ms,
                start_time=when - timedelta(milliseconds=median_ms),
            )  # fmt: skip
        )
    return out


def _evaluator(clock: Clock) -> Evaluator:
    return Evaluator(AlertSettings().effective_rules(), Signals(3600, 1000), clock=clock)


def test_a_worse_new_version_fires_once_per_version_and_resolves() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    _, notices = ev.ingest(reports("7", 800, 0.01, clock.now, 1) + reports("8", 80, 0.3, clock.now, 2))
    firing = [n for n in notices if n.instance.rule == "canary-regression"]
    assert [(n.kind, n.instance.labels["version"]) for n in firing] == [("firing", "8")]
    assert firing[0].instance.values["baseline"] == "7"
    assert firing[0].instance.summary.startswith("checkout version 8 is worse than version 7: error rate")

    # once the new version stops taking traffic (rolled back), the alert resolves
    clock.now += 600 + 121
    kinds = [n.kind for n in ev.tick()[1] + ev.tick()[1] if n.instance.rule == "canary-regression"]
    assert kinds == ["resolved"]


def test_too_little_traffic_or_no_regression_never_fires() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    _, notices = ev.ingest(reports("7", 800, 0.01, clock.now, 3) + reports("8", 12, 0.0, clock.now, 4))
    _, more = ev.ingest(reports("8", 600, 0.01, clock.now, 5))
    assert not [n for n in notices + more if n.instance.rule == "canary-regression"]


def _cloudwatch() -> tuple[object, Stubber]:
    client = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def _notice(kind: str, function: str = "checkout") -> Notice:
    labels = {"tenant": "default", "function": function, "version": "8"}
    inst = Instance(
        "canary-regression", "fp", "default", labels, "firing", 1.0, {"function": function}, "checkout version 8 is worse",
        active_since=T0.timestamp(), last_true=T0.timestamp(),
    )  # fmt: skip
    return Notice(kind, inst, "critical")  # type: ignore[arg-type]


def test_alarm_target_sets_alarm_then_ok_and_a_test_only_looks() -> None:
    client, stub = _cloudwatch()
    target = Target(format="cloudwatch_alarm", alarm_name="fnscope-canary-{function}", rules=["canary-regression"])
    notifier = Notifier([target], store=None, base_url="http://fnscope:4318", cloudwatch=lambda region: client)  # type: ignore[arg-type]
    for state in ("ALARM", "OK"):
        stub.add_response(
            "set_alarm_state",
            {},
            {
                "AlarmName": "fnscope-canary-checkout",
                "StateValue": state,
                "StateReason": "fnscope canary-regression: checkout version 8 is worse",
                "StateReasonData": ANY,
            },
        )
    stub.add_response(
        "describe_alarms",
        {"MetricAlarms": [{"AlarmName": "fnscope-canary-checkout"}]},
        {"AlarmNames": ["fnscope-canary-checkout"]},
    )
    with stub:
        for kind in ("firing", "resolved", "test"):
            (delivery,) = notifier._deliver_all(_notice(kind))
            assert (delivery.delivery, delivery.target) == ("delivered", "cloudwatch-alarm:fnscope-canary-{function}")
        stub.assert_no_pending_responses()


def test_alarm_target_refuses_names_from_crafted_labels_and_other_rules() -> None:
    client, stub = _cloudwatch()
    target = Target(format="cloudwatch_alarm", alarm_name="fnscope-{function}", rules=["canary-regression"])
    with stub:  # no AWS call at all: the stubber fails on any
        crafted = set_alarm_state(target, payload(_notice("firing", "x,prod-db-alarm"), ""), "t", lambda r: client)
        assert crafted.delivery == "failed" and "cannot be part of an alarm name" in crafted.error
        other_rule = _notice("firing")
        other_rule.instance.rule = "function-throttled"
        notifier = Notifier([target], store=None, base_url="", cloudwatch=lambda region: client)  # type: ignore[arg-type]
        assert [d.delivery for d in notifier._deliver_all(other_rule)] == ["no_target"]
    with pytest.raises(ValueError, match="alarm_name"):
        Target(format="cloudwatch_alarm")
    assert (
        alarm_name("deploy-{function}-{version}", {"function": "orders_v2", "version": "$LATEST"})
        == "deploy-orders_v2-$LATEST"
    )


def _fact(request_id: str, kind: str, at: float, version: str = "8", status: str = "error") -> Invocation:
    when = datetime.fromtimestamp(at, UTC)
    return Invocation(
        event_id="", time=when, source="telemetry", function="checkout", version=version, request_id=request_id,
        kind=kind, status=status, duration_ms=80.0 if kind == "report" else None,
    )  # type: ignore[arg-type]  # fmt: skip


def test_a_timeout_counts_in_its_reports_second_so_a_window_never_holds_more_timeouts_than_calls() -> None:
    clock = Clock()
    ev = _evaluator(clock)
    now = clock.now
    # version 8's two calls reported before the canary's 10-minute window, their "Task timed out" facts inside it
    early = [_fact(f"old-{i}", "report", now - 700) for i in range(2)]
    late = [_fact(f"old-{i}", "timeout", now - 100, status="timeout") for i in range(2)]
    batch = reports("7", 300, 0.0, now, 11) + early + late + [_fact("new-0", "report", now - 50, status="success")]
    ev.ingest(batch)  # before the fix: wilson() on 2 timeouts of 1 call, a ValueError out of the whole batch
    new, base = ev.signals.canary_figures(("default", "checkout"), "8", 600, now, ev.canary_policy)
    assert (new.invocations, new.timeouts) == (1, 0)
    assert base is not None and base.version == "7"
    # both facts are still the function's timeouts, counted where they happened
    assert ev.signals.measure("timeouts", ("default", "checkout"), 600, now)["value"] == 2
    # a report after its timeout fact counts in the report's second as well
    ev.ingest([_fact("later", "timeout", now - 20, status="timeout"), _fact("later", "report", now - 650)])
    assert ev.signals.canary_figures(("default", "checkout"), "8", 600, now, ev.canary_policy)[0].timeouts == 0


def _alert(kind: str, function: str) -> Notice:
    notice = _notice(kind, function)
    notice.instance.fingerprint = f"fp-{function}"
    return notice


def test_an_alarm_two_alerts_map_to_goes_back_to_ok_only_when_both_resolved() -> None:
    client, stub = _cloudwatch()
    target = Target(format="cloudwatch_alarm", alarm_name="fnscope-canary", rules=["canary-regression"])
    notifier = Notifier([target], store=None, base_url="", cloudwatch=lambda region: client)  # type: ignore[arg-type]
    expected = {"AlarmName": "fnscope-canary", "StateReason": ANY, "StateReasonData": ANY}
    for state in ("ALARM", "ALARM", "OK"):
        stub.add_response("set_alarm_state", {}, expected | {"StateValue": state})
    with stub:  # the stubber fails on any call not queued: the first resolve must make none
        for kind, function, result in (
            ("firing", "checkout", "delivered"),
            ("firing", "billing", "delivered"),
            ("resolved", "checkout", "kept"),  # billing still fires: the deployment must still roll back
            ("resolved", "billing", "delivered"),
        ):
            (delivery,) = notifier._deliver_all(_alert(kind, function))
            assert delivery.delivery == result, (kind, function, delivery.error)
        stub.assert_no_pending_responses()

    # after a restart, an alert restored as firing still holds the alarm
    restarted = Notifier([target], store=None, base_url="", cloudwatch=lambda region: client)  # type: ignore[arg-type]
    restarted.restore([_alert("firing", "billing").instance])
    with stub:
        (delivery,) = restarted._deliver_all(_alert("resolved", "checkout"))
    assert delivery.delivery == "kept" and "1 other alert" in delivery.error


@pytest.mark.parametrize("value", ["checkout\n", "checkout\nprod-db", "", "a" * 129])
def test_an_alarm_name_label_must_be_whole_lambda_name_characters(value: str) -> None:
    with pytest.raises(UnsafeName, match="cannot be part of an alarm name"):
        alarm_name("fnscope-{function}", {"function": value})


def test_per_request_facts_without_a_run_are_forgotten_with_their_second() -> None:
    signals, now = Signals(120, 1000), T0.timestamp()
    # an hour of reports without request ids (a path that has none), each a timeout, plus timeout facts of runs
    # never seen starting here; the function keeps running, so its state as a whole is never dropped
    for minute in range(60):
        at = now + minute * 60
        batch = [_fact("", "report", at - i, status="timeout").model_copy(update={"event_id": f"r{minute}-{i}"})
                 for i in range(20)]  # fmt: skip
        batch += [_fact(f"orphan-{minute}-{i}", "timeout", at - i, status="timeout") for i in range(5)]
        signals.observe(batch, at)
        signals.prune(at)
    fn = signals.functions[("default", "checkout")]
    kept = 3 * 25  # the last ~2 minutes' worth, no more
    assert len(fn.run_versions) <= kept and len(fn.timed_out) <= kept and len(fn.version_timed_out) <= kept
    # and what is kept still counts: the version's timeouts in the last half minute are its reports'
    new, _ = signals.canary_figures(("default", "checkout"), "8", 30, now + 59 * 60, Policy())
    assert new.timeouts == new.invocations == 20


def _throttled_invoke(n: int, at: float, called: str, routed: str = "") -> bytes:
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "eventVersion": "1.09", "eventTime": when, "eventSource": "lambda.amazonaws.com", "eventName": "Invoke",
        "awsRegion": "eu-west-1", "recipientAccountId": "111122223333", "eventID": f"7c1e5d2a-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall", "eventCategory": "Data", "errorCode": "TooManyRequestsException",
        "userIdentity": {"type": "AWSService", "invokedBy": "apigateway.amazonaws.com"},
        "requestParameters": {"functionName": called},
        "additionalEventData": {"functionVersion": routed} if routed else {},
        "resources": [{"type": "AWS::Lambda::Function", "ARN": "arn:aws:lambda:eu-west-1:111122223333:function:checkout"}],
    }  # fmt: skip
    return orjson.dumps({"Records": [record]})


def test_a_throttled_invoke_counts_for_the_version_it_named_as_the_verdict_api_counts_it() -> None:
    signals, now = Signals(3600, 1000), T0.timestamp()
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:checkout"
    bodies = [
        _throttled_invoke(1, now - 10, f"{arn}:live", routed=f"{arn}:8"),
        _throttled_invoke(2, now - 9, f"{arn}:8"),  # no functionVersion: the qualifier it was called with
        _throttled_invoke(3, now - 8, "checkout:7"),
        _throttled_invoke(4, now - 7, f"{arn}:live"),  # an alias alone: no version
    ]
    events = [e for body in bodies for e in cloudtrail.parse(body, IngestContext(audit=True)).events]
    assert len(events) == 4 and all(e.function == "checkout" for e in events)
    signals.observe(events, now)
    fn = signals.functions[("default", "checkout")]
    assert {v: sum(st.throttles.values()) for v, st in fn.versions.items()} == {"8": 2, "7": 1}
