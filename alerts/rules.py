"""Alert rules: what is measured, over which window, and when an alert fires and resolves."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

RuleKind = Literal[
    "throttles", "concurrency", "error_rate", "p99_duration", "timeouts", "audit", "canary", "disabled", "runaway"
]


class Budget(BaseModel):
    """What one function may use in an hour (0: no budget)."""

    invocations_per_hour: float = Field(0.0, ge=0)
    gb_seconds_per_hour: float = Field(0.0, ge=0)


class Runaway(BaseModel):
    """When a function runs away: a figure of its last ``window_s`` at least ``factor`` times the median of the
    same figure over its previous minutes (and above that figure's floor, so a quiet function doubling its three
    calls is no runaway), or its last hour over a budget."""

    factor: float = Field(10.0, gt=1)
    baseline_minutes: int = Field(60, ge=1, le=60, description="the minutes before the window the median is over")
    min_baseline_minutes: int = Field(
        10, ge=1, le=60, description="minutes watched before a baseline is trusted (after a start, none is known)"
    )
    floor_invocations_per_minute: float = Field(600.0, ge=0)
    floor_concurrency: float = Field(20.0, ge=0)
    floor_gb_seconds_per_minute: float = Field(300.0, ge=0)
    budget: Budget = Field(default_factory=Budget, description="every function's hourly budget")
    budgets: dict[str, Budget] = Field(default_factory=dict, description="per function, instead of `budget`")

    def budget_of(self, function: str) -> Budget:
        return self.budgets.get(function, self.budget)


class Rule(BaseModel):
    """One rule. The value is measured per function (per matching CloudTrail principal for ``audit``) over the
    last ``window_s`` seconds of event time; the condition is ``value >= threshold``.

    - throttles: throttled calls (the largest count any one source saw: API Gateway or CloudTrail Invoke)
    - concurrency: peak concurrent executions / the function's limit (reserved, else the account's unreserved pool)
    - error_rate: failed / invocations (only with at least ``min_invocations``)
    - p99_duration: 99th percentile duration in ms
    - timeouts: invocations that timed out
    - audit: CloudTrail records whose fields equal every ``match`` entry (a list means any of)
    - canary: 1 while a function's newest numbered version, running beside another, gets a ``fail`` verdict
      against the busiest other version (``fnscope.canary``; group by ``version`` to get one alert per version)
    - disabled: 1 while the function's reserved concurrency is 0 (PutFunctionConcurrency in the audit trail,
      until DeleteFunctionConcurrency or a non-zero Put): who set it, when and from where
    - runaway: 1 while the function's invocations, concurrency or GB-seconds over the window run ``runaway.factor``
      times its recent baseline and above a floor, or its last hour is over its budget (see ``Runaway``)
    """

    name: str
    kind: RuleKind
    threshold: float
    window_s: float = Field(60.0, gt=0, le=3600)
    for_s: float = Field(0.0, ge=0, description="the condition must hold this long before the alert fires")
    resolve_after_s: float = Field(60.0, ge=0, description="resolved once the condition is false this long")
    repeat_interval_s: float = Field(4 * 3600.0, gt=0, description="re-notify a still-firing alert this often")
    group_by: list[str] = Field(default_factory=lambda: ["tenant", "function"])
    severity: Literal["info", "warning", "critical"] = "warning"
    summary: str = ""
    min_invocations: int = 0
    match: dict[str, str | bool | list[str]] = Field(default_factory=dict)
    runaway: Runaway = Field(default_factory=Runaway, description="runaway rules: factor, floors and budgets")
    enabled: bool = True


_AUDIT_GROUP = ["tenant", "account", "principal", "action"]

BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(
        name="function-throttled",
        kind="throttles",
        threshold=1,
        severity="critical",
        summary="{function} is being throttled: {value:g} throttled calls in the last {window}",
    ),
    Rule(
        name="concurrency-headroom",
        kind="concurrency",
        threshold=0.8,
        window_s=60,
        severity="warning",
        summary="{function} reached {peak} concurrent executions of its {limit_source} limit {limit} "
        "({value:.0%}): throttling starts at the limit",
    ),
    Rule(
        name="error-rate",
        kind="error_rate",
        threshold=0.05,
        window_s=300,
        for_s=60,
        min_invocations=20,
        summary="{function} fails {value:.1%} of its invocations ({errors} of {invocations}) in the last {window}",
    ),
    Rule(
        name="p99-duration",
        kind="p99_duration",
        threshold=10_000,
        window_s=300,
        for_s=120,
        min_invocations=20,
        summary="{function} p99 duration is {value:.0f} ms over the last {window}",
    ),
    Rule(
        name="function-timeouts",
        kind="timeouts",
        threshold=1,
        window_s=300,
        summary="{function} timed out {value:g} times in the last {window}",
    ),
    Rule(
        name="canary-regression",
        kind="canary",
        threshold=1,
        window_s=600,
        resolve_after_s=120,
        severity="critical",
        group_by=["tenant", "function", "version"],
        summary="{function} version {version} is worse than version {baseline}: {reasons}",
    ),
    Rule(
        name="function-disabled",
        kind="disabled",
        threshold=1,
        resolve_after_s=0,
        summary="{function} is disabled: reserved concurrency set to 0 by {by} from {source_ip} at {at}",
    ),
    Rule(
        name="function-runaway",
        kind="runaway",
        threshold=1,
        window_s=60,
        resolve_after_s=300,
        severity="critical",
        summary="{function} is running away: {reasons}",
    ),
    Rule(
        name="root-login",
        kind="audit",
        threshold=1,
        severity="critical",
        group_by=_AUDIT_GROUP,
        match={"action": "ConsoleLogin", "principal_type": "Root", "error_code": ""},
        summary="root user console login in account {account} from {source_ip}",
    ),
    Rule(
        name="cloudtrail-stopped",
        kind="audit",
        threshold=1,
        severity="critical",
        group_by=_AUDIT_GROUP,
        match={
            "service": "cloudtrail.amazonaws.com",
            "action": ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"],
            "error_code": "",
        },
        summary="{action} on CloudTrail by {principal} in account {account}: the audit trail may have stopped",
    ),
    Rule(
        name="console-login-without-mfa",
        kind="audit",
        threshold=1,
        group_by=_AUDIT_GROUP,
        match={"action": "ConsoleLogin", "mfa": False, "error_code": ""},
        summary="console login without MFA by {principal} in account {account} from {source_ip}",
    ),
)
