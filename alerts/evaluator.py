"""Rule evaluation: measure each rule for the label groups a batch touched, and move their instances through
pending → firing → resolved. Pure in-memory work on ``Signals``; storing and notifying are the caller's."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from fnscope.alerts.config import Silence
from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.rules import Rule
from fnscope.alerts.signals import AuditHit, SeriesKey, Signals
from fnscope.alerts.silences import Silences, matching_silence
from fnscope.canary import Policy, judge
from fnscope.events import AuditEvent, Event, stable_id

GroupKey = tuple[str, str]  # (rule name, fingerprint)

# An alert that still holds, with no transition, is reported as changed (so stored) at most this often: under load
# every stored batch re-measures every firing alert, and storing each new value was one insert per batch. Its
# stored value and last_true lag by at most this long plus one tick; transitions are always reported at once.
REPORT_EVERY_S = 1.0


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _window(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    return stable_id(rule, *sorted(labels.items()))


def _matches(rule: Rule, event: AuditEvent) -> bool:
    for name, want in rule.match.items():
        have = getattr(event, name, None)
        if isinstance(want, list):
            if str(have) not in want:
                return False
        elif isinstance(want, bool):
            if have is not want:
                return False
        elif str(have if have is not None else "") != want:
            return False
    return True


def _audit_labels(event: AuditEvent) -> dict[str, str]:
    return {
        "tenant": event.tenant,
        "account": event.account,
        "principal": event.principal_arn or event.principal_name or event.principal_type,
        "action": event.action,
        "source_ip": event.source_ip,
        "function": event.function,
    }


class Evaluator:
    def __init__(
        self,
        rules: list[Rule],
        signals: Signals,
        silences: list[Silence] | Silences | None = None,
        clock: Callable[[], float] = time.time,
        canary_policy: Policy | None = None,
    ) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.canary_policy = canary_policy or Policy()
        self.signals = signals
        self.silences = silences if isinstance(silences, Silences) else Silences(silences or [])
        self._silences_now: list[Silence] | None = None  # read once per evaluation, when a notice needs them
        self.clock = clock
        self.instances: dict[GroupKey, Instance] = {}
        self.audit_hits: dict[GroupKey, AuditHit] = {}
        self._reported: dict[GroupKey, float] = {}  # when each instance was last returned as changed

    def restore(self, instances: Iterable[Instance]) -> None:
        """Pending and firing alerts from before a restart: they fire no second time and still resolve."""
        names = {r.name for r in self.rules}
        for inst in instances:
            if inst.rule in names and inst.state in ("pending", "firing"):
                self.instances[(inst.rule, inst.fingerprint)] = inst

    # --- entry points ------------------------------------------------------------------------------------

    def ingest(self, events: list[Event]) -> tuple[list[Instance], list[Notice]]:
        """A stored batch: update the signals and evaluate every group it touched."""
        now = self.clock()
        touched = self.signals.observe(events, now)
        groups: dict[GroupKey, tuple[Rule, dict[str, str]]] = {}
        for rule in self.rules:
            if rule.kind == "audit":
                for event in self.signals.audit_events:
                    if _matches(rule, event):
                        labels = self._group(rule, _audit_labels(event))
                        key = (rule.name, fingerprint(rule.name, labels))
                        hit = self.audit_hits.setdefault(key, AuditHit(labels))
                        hit.seconds[int(now)] += 1  # by arrival: CloudTrail is minutes late
                        hit.last = _audit_labels(event)
                        groups[key] = (rule, labels)
                continue
            for series in touched:
                series_labels = self._series_labels(series)
                if rule.kind == "canary":
                    series_labels["version"] = self.signals.canary_version(series, rule.window_s, now)
                    if not series_labels["version"]:
                        continue
                labels = self._group(rule, series_labels)
                groups[(rule.name, fingerprint(rule.name, labels))] = (rule, labels)
        return self._evaluate(groups, now)

    def tick(self) -> tuple[list[Instance], list[Notice]]:
        """Re-check pending and firing alerts: a `for` may have elapsed, or the condition stopped holding."""
        now = self.clock()
        by_name = {r.name: r for r in self.rules}
        groups = {
            key: (by_name[inst.rule], inst.labels)
            for key, inst in self.instances.items()
            if inst.state in ("pending", "firing") and inst.rule in by_name
        }
        out = self._evaluate(groups, now)
        self.signals.prune(now)
        self._prune_audit(now)
        return out

    # --- measuring groups --------------------------------------------------------------------------------

    def _series_labels(self, series: SeriesKey) -> dict[str, str]:
        fn = self.signals.functions.get(series)
        return {"tenant": series[0], "function": series[1], "account": fn.account if fn else ""}

    @staticmethod
    def _group(rule: Rule, labels: dict[str, str]) -> dict[str, str]:
        return {name: labels.get(name, "") for name in rule.group_by}

    def _measure(self, rule: Rule, key: GroupKey, labels: dict[str, str], now: float) -> tuple[bool, dict[str, Any]]:
        if rule.kind == "audit":
            hit = self.audit_hits.get(key)
            lo = int(now - rule.window_s)
            count = sum(n for s, n in hit.seconds.items() if s >= lo) if hit else 0
            return count >= rule.threshold, {"value": count, **(hit.last if hit else {})}
        if rule.kind == "canary":
            return self._measure_canary(rule, labels, now)
        if rule.kind == "disabled":
            return self._measure_disabled(rule, key, labels)
        best: dict[str, Any] = {"value": 0.0}
        firing_functions = []
        for series in self._candidates(labels):
            series_labels = self._series_labels(series)
            if any(series_labels.get(k, "") != v for k, v in labels.items()):
                continue
            if rule.kind == "runaway":
                measured = self.signals.runaway(series, rule.window_s, now, rule.runaway)
            else:
                measured = self.signals.measure(rule.kind, series, rule.window_s, now)
            if not measured:
                continue
            enough = measured.get("invocations", rule.min_invocations) >= rule.min_invocations
            if enough and measured["value"] >= rule.threshold:
                firing_functions.append(series[1])
                if measured["value"] >= best["value"] or len(firing_functions) == 1:
                    best = {**measured, "function": series[1], "account": series_labels["account"]}
        best["functions"] = sorted(firing_functions)
        return bool(firing_functions), best

    def _measure_canary(self, rule: Rule, labels: dict[str, str], now: float) -> tuple[bool, dict[str, Any]]:
        series, version = (labels.get("tenant", ""), labels.get("function", "")), labels.get("version", "")
        new, base = self.signals.canary_figures(series, version, rule.window_s, now, self.canary_policy)
        judged = judge(new, base, self.canary_policy)
        fails = judged.verdict == "fail"
        values = {
            "value": 1.0 if fails else 0.0,
            "function": series[1],
            "version": version,
            "baseline": base.version if base else "",
            "verdict": judged.verdict,
            "reasons": "; ".join(judged.reasons),
        }
        return fails and 1.0 >= rule.threshold, values

    def _measure_disabled(self, rule: Rule, key: GroupKey, labels: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        """Per function, whether or not it ran lately (a disabled function runs nothing)."""
        series = (labels.get("tenant", ""), labels.get("function", ""))
        found = self.signals.disabled(series)
        if found is None:
            return False, {"value": 0.0, "function": series[1]}
        # after a restart the limit is loaded from the store but not who set it: the restored alert still knows
        known = self.instances[key].values if key in self.instances else {}
        return 1.0 >= rule.threshold, {**known, **found, "function": series[1]}

    def _candidates(self, labels: dict[str, str]) -> list[SeriesKey]:
        """The series a group can match: the one series when it names tenant and function (the default
        grouping), so a batch touching every function costs one lookup per group rather than a scan of all."""
        if "tenant" in labels and "function" in labels:
            series = (labels["tenant"], labels["function"])
            return [series] if series in self.signals.functions else []
        return list(self.signals.functions)

    # --- the state machine -------------------------------------------------------------------------------

    def _evaluate(
        self, groups: dict[GroupKey, tuple[Rule, dict[str, str]]], now: float
    ) -> tuple[list[Instance], list[Notice]]:
        changed: list[Instance] = []
        notices: list[Notice] = []
        self._silences_now = None
        for key, (rule, labels) in groups.items():
            holds, values = self._measure(rule, key, labels, now)
            inst = self.instances.get(key)
            if holds:
                summary = rule.summary.format_map(
                    _Blank({**values, **labels, "window": _window(rule.window_s), "rule": rule.name})
                )
                transition = inst is None or inst.state not in ("pending", "firing")
                if transition:
                    inst = Instance(
                        rule.name, key[1], labels.get("tenant", "default"), labels, "pending",
                        values["value"], values, summary, active_since=now, last_true=now,
                    )  # fmt: skip
                    self.instances[key] = inst
                inst.value, inst.values, inst.summary, inst.last_true = values["value"], values, summary, now
                if inst.state == "pending" and now - inst.active_since >= rule.for_s:
                    inst.state, inst.fired_at, transition = "firing", now, True
                    notices.append(self._notice("firing", rule, inst, now))
                elif inst.state == "firing" and inst.last_notified is None and not self._silence(rule, inst, now):
                    notices.append(self._notice("firing", rule, inst, now))  # held back by a silence now over
                    transition = True
                elif inst.state == "firing" and now - (inst.last_notified or now) >= rule.repeat_interval_s:
                    if self._silence(rule, inst, now) is None:
                        notices.append(self._notice("repeat", rule, inst, now))
                    else:  # a repeat a silence holds back is skipped: the next is due an interval on, not each tick
                        inst.last_notified = now
                    transition = True  # last_notified moved: a restart must not notify again
                if transition or now - self._reported.get(key, float("-inf")) >= REPORT_EVERY_S:
                    self._reported[key] = now
                    changed.append(inst)
            elif inst is not None and inst.state == "pending":
                inst.state = "inactive"
                del self.instances[key]
                self._reported.pop(key, None)
                changed.append(inst)
            elif inst is not None and inst.state == "firing" and now - inst.last_true >= rule.resolve_after_s:
                inst.state, inst.resolved_at, inst.value = "resolved", now, values["value"]
                del self.instances[key]
                self._reported.pop(key, None)
                notices.append(self._notice("resolved", rule, inst, now))
                changed.append(inst)
        return [i.copy() for i in changed], notices

    def _silence(self, rule: Rule, inst: Instance, now: float) -> Silence | None:
        if self._silences_now is None:
            self._silences_now = self.silences.current()
        return matching_silence(self._silences_now, {"tenant": inst.tenant, **inst.labels, "rule": rule.name}, now)

    def _notice(self, kind: str, rule: Rule, inst: Instance, now: float) -> Notice:
        silence = self._silence(rule, inst, now)
        if silence is None:
            inst.last_notified = now
        return Notice(kind, inst.copy(), rule.severity, silence.comment or "silenced" if silence else "", now)  # type: ignore[arg-type]

    def _prune_audit(self, now: float) -> None:
        windows = defaultdict(float, {r.name: r.window_s for r in self.rules})
        for key, hit in list(self.audit_hits.items()):
            lo = int(now - windows[key[0]])
            for s in [s for s in hit.seconds if s < lo]:
                del hit.seconds[s]
            if not hit.seconds and key not in self.instances:
                del self.audit_hits[key]
