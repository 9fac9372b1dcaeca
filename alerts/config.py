"""Alert settings as they appear under ``alerts:`` in fnscope.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from alerts.rules import BUILTIN_RULES, Rule


class Target(BaseModel):
    """A webhook. ``format``: ``json`` (the whole alert as JSON) or ``slack`` (``{"text": ...}``)."""

    url: str
    format: Literal["json", "slack"] = "json"
    name: str = ""  # shown in the history instead of the URL (a Slack webhook URL is a secret)


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
    builtins: bool = True  # the built-in rules, each overridable by name under ``rules``
    rules: list[dict[str, Any]] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)  # besides FNSCOPE_ALERT_WEBHOOK_URL
    silences: list[Silence] = Field(default_factory=list)
    public_url: str = ""  # base of the search links in notifications; default http://HOST:PORT
    audit_max_age_s: float = 86_400.0  # older CloudTrail records (a backfill) never alert
    tick_s: float = 1.0  # how often pending and firing alerts are re-checked (for `for` and resolving)
    delivery_attempts: int = 4
    delivery_timeout_s: float = 5.0

    @model_validator(mode="after")
    def _rules_are_valid(self) -> AlertSettings:
        self.effective_rules()
        return self

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
