"""Alert instances (one per rule and label group) and the notices their transitions produce."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

State = Literal["pending", "firing", "resolved", "inactive"]
NoticeKind = Literal["firing", "resolved", "repeat", "test"]


@dataclass
class Instance:
    rule: str
    fingerprint: str
    tenant: str
    labels: dict[str, str]
    state: State
    value: float
    values: dict[str, Any]
    summary: str
    active_since: float  # epoch seconds
    last_true: float
    fired_at: float | None = None
    last_notified: float | None = None
    resolved_at: float | None = None

    def copy(self) -> Instance:
        return replace(self, labels=dict(self.labels), values=dict(self.values))


@dataclass
class Notice:
    kind: NoticeKind
    instance: Instance
    severity: str = "warning"
    silenced_by: str = ""
    at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
