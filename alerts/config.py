"""Alert settings as they appear under ``alerts:`` in fnscope.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from fnscope.alerts.rules import BUILTIN_RULES, Rule


class Target(BaseModel):
    """Where notifications go. ``format``: ``json`` (the whole alert as JSON to ``url``), ``slack`` (``{"text": ...}``
    to ``url``) or ``cloudwatch_alarm`` (SetAlarmState on ``alarm_name``: ALARM while firing, OK once resolved)."""

    url: str = ""
    format: Literal["json", "slack", "cloudwatch_alarm"] = "json"
    name: str = ""  # shown in the history instead of the URL (a Slack webhook URL is a secret)
    rules: list[str] = Field(default_factory=list, description="only these rules' alerts (default: every rule)")
    alarm_name: str = Field("", description="cloudwatch_alarm: the alarm; {function}, {version}, ... take labels")
    region: str = Field("", description="cloudwatch_alarm: its region (default: the AWS SDK's)")

    @model_validator(mode="after")
    def _addressed(self) -> Target:
        if self.format == "cloudwatch_alarm" and not self.alarm_name:
            raise ValueError("a cloudwatch_alarm target needs alarm_name")
        if self.format != "cloudwatch_alarm" and not self.url:
            raise ValueError(f"a {self.format} target needs url")
        return self

    def wants(self, rule: str) -> bool:
        return not self.rules or rule in self.rules


class Silence(BaseModel):
    """Notifications of alerts whose labels match every matcher are held back between ``starts_at`` and ``ends_at``."""

    matchers: dict[str, str]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    comment: str = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AlertSettings(BaseModel):
    """The alerts' own settings, under ``alerts:`` in fnscope.yaml."""

    builtins: bool = Field(True, description="the built-in rules, each overridable by name under `rules`")
    rules: list[dict[str, Any]] = Field(default_factory=list, description="overrides by name, and rules of your own")
    targets: list[Target] = Field(default_factory=list, description="webhooks, besides FNSCOPE_ALERT_WEBHOOK_URL")
    silences: list[Silence] = Field(default_factory=list, description="notifications held back by label matchers")
    public_url: str = Field("", description="base of the search links in notifications; default http://HOST:PORT")
    audit_max_age_s: float = Field(86_400.0, description="older CloudTrail records (a backfill) never alert")
    tick_s: float = Field(1.0, description="how often pending and firing alerts are re-checked (`for`, resolving)")
    delivery_attempts: int = Field(4, description="tries per notification")
    delivery_timeout_s: float = Field(5.0, description="seconds per try")

    @model_validator(mode="after")
    def _rules_are_valid(self) -> AlertSettings:
        self.effective_rules()
        return self

    def delivery_targets(self, default_webhook_url: str) -> list[Target]:
        """FNSCOPE_ALERT_WEBHOOK_URL first (Slack's own hooks get Slack's format), then the configured targets."""
        out = list(self.targets)
        if default_webhook_url and all(t.url != default_webhook_url for t in out):
            kind = "slack" if "hooks.slack.com" in default_webhook_url else "json"
            out.insert(0, Target(url=default_webhook_url, format=kind))
        return out

    def effective_rules(self) -> list[Rule]:
        """Built-ins (if on) with the overrides given by name, then the user's own rules."""
        merged: dict[str, dict[str, Any]] = {}
        if self.builtins:
            merged = {r.name: r.model_dump() for r in BUILTIN_RULES}
        for raw in self.rules:
            name = raw.get("name")
            if not name:
                raise ValueError("every alert rule needs a name")
            merged[name] = {**merged.get(name, {}), **raw}
        return [Rule.model_validate(spec) for spec in merged.values()]
