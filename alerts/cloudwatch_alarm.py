"""An alert target that sets a CloudWatch alarm's state, so that CodeDeploy's alarm-based rollback (or anything
else watching the alarm) reacts to an fnscope alert: firing sets ALARM, resolved sets OK (SetAlarmState).

The alarm is named by the target, optionally per alert: ``alarm_name: "fnscope-canary-{function}"`` takes the
alert's labels. A label value can come from ingested data (a function name), so only the characters of Lambda
function names and versions are let into the name: a crafted name can never point the target at another alarm.
A test notification only checks that the alarm exists (DescribeAlarms): it never flips an alarm that may roll a
deployment back.

Several alerts can map to one alarm (a name without ``{function}``, or two rules on one target): the alarm goes
back to OK only when the last of them resolves (``AlarmHolders``); until then a resolve is recorded as ``kept``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from fnscope.alerts.config import Target
from fnscope.alerts.store import Delivery

_SAFE_LABEL = re.compile(r"[A-Za-z0-9._$-]{1,128}")
MAX_REASON = 1023  # SetAlarmState's limits
MAX_REASON_DATA = 4000

ClientFactory = Callable[[str], Any]


def boto3_client(region: str) -> Any:
    import boto3  # the first alarm target to deliver pays the import, never the server's start

    return boto3.client("cloudwatch", region_name=region or None)


class UnsafeName(ValueError):
    pass


class AlarmHolders:
    """Which firing alerts (rule and fingerprint) hold each alarm in ALARM."""

    def __init__(self) -> None:
        self._by_alarm: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def fire(self, alarm: str, alert: tuple[str, str]) -> None:
        with self._lock:
            self._by_alarm.setdefault(alarm, set()).add(alert)

    def resolve(self, alarm: str, alert: tuple[str, str]) -> int:
        """Let go of the alarm; how many other alerts still hold it."""
        with self._lock:
            holders = self._by_alarm.get(alarm, set())
            holders.discard(alert)
            if not holders:
                self._by_alarm.pop(alarm, None)
            return len(holders)

    def restore(self, target: Target, firing: Iterable[tuple[str, str, dict[str, str]]]) -> None:
        """The alerts still firing after a restart ((rule, fingerprint, labels) each) that hold the target's alarms."""
        for rule, fp, labels in firing:
            if target.wants(rule):
                try:
                    self.fire(alarm_name(target.alarm_name, {**labels, "rule": rule}), (rule, fp))
                except UnsafeName:
                    continue  # never set ALARM either


def alarm_name(template: str, labels: dict[str, str]) -> str:
    """The alarm's name from the target's template and the alert's labels (checked, see the module's docstring)."""

    def label(match: re.Match[str]) -> str:
        value = labels.get(match.group(1), "")
        if not _SAFE_LABEL.fullmatch(value):
            raise UnsafeName(f"label {match.group(1)}={value[:80]!r} cannot be part of an alarm name")
        return value

    name = re.sub(r"\{([a-z_]+)\}", label, template)
    if not 1 <= len(name) <= 255:
        raise UnsafeName("an alarm name is 1 to 255 characters")
    return name


def _reason_data(body: dict[str, Any]) -> str:
    data = {k: body.get(k) for k in ("rule", "kind", "function", "value", "fingerprint", "started_at", "fired_at")}
    data["labels"] = body.get("labels", {})
    data["links"] = {k: v for k, v in body.get("links", {}).items() if k in ("stats", "alerts")}
    text = json.dumps(data, default=str)
    return text if len(text) <= MAX_REASON_DATA else json.dumps({k: data[k] for k in ("rule", "kind", "function")})


def set_alarm_state(
    target: Target,
    body: dict[str, Any],
    label: str,
    client_for: ClientFactory = boto3_client,
    holders: AlarmHolders | None = None,
) -> Delivery:
    """Deliver one notification (``payload``'s body) to a ``cloudwatch_alarm`` target; ``holders`` (one per
    target, kept by the notifier) keeps an alarm in ALARM while another alert on it still fires."""
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.perf_counter()
    delivery = Delivery(label, target.format, "delivered", attempts=1)
    try:
        name = alarm_name(target.alarm_name, {**body.get("labels", {}), "rule": body.get("rule", "")})
        client = client_for(target.region)
        if body["kind"] == "test":
            if not client.describe_alarms(AlarmNames=[name]).get("MetricAlarms") and not client.describe_alarms(
                AlarmNames=[name], AlarmTypes=["CompositeAlarm"]
            ).get("CompositeAlarms"):
                raise UnsafeName(f"no CloudWatch alarm named {name}")
        else:
            state = "OK" if body["kind"] == "resolved" else "ALARM"
            alert = (str(body.get("rule", "")), str(body.get("fingerprint", "")))
            if holders is not None and state == "ALARM":
                holders.fire(name, alert)
            elif holders is not None and (others := holders.resolve(name, alert)):
                delivery.delivery, delivery.error = "kept", f"{name} stays in ALARM: {others} other alert(s) on it fire"
                return delivery
            reason = f"fnscope {body['rule']}: {body['summary']}"
            client.set_alarm_state(
                AlarmName=name, StateValue=state, StateReason=reason[:MAX_REASON], StateReasonData=_reason_data(body)
            )
    except (UnsafeName, ClientError, BotoCoreError) as exc:
        delivery.delivery, delivery.error = "failed", str(exc)[:500]
    delivery.delivery_ms = round((time.perf_counter() - started) * 1000, 1)
    return delivery
