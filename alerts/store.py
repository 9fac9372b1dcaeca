"""Alert state and history in ClickHouse: written by the evaluator and notifier, read by the API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from fnscope.alerts.instances import Instance, Notice

_STATE_COLUMNS = [
    "tenant", "rule", "fingerprint", "labels", "state", "value", "values", "summary",
    "active_since", "last_true", "fired_at", "last_notified", "resolved_at", "updated_at",
]  # fmt: skip
_HISTORY_COLUMNS = [
    "time", "tenant", "rule", "fingerprint", "kind", "severity", "labels", "value", "values", "summary",
    "target", "format", "delivery", "attempts", "http_status", "error", "delivery_ms",
]  # fmt: skip


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.replace(tzinfo=value.tzinfo or UTC).timestamp()


@dataclass
class Delivery:
    target: str
    format: str
    delivery: str  # delivered | failed | silenced | no_target | kept (an alarm another alert holds)
    attempts: int = 0
    http_status: int = 0
    error: str = ""
    delivery_ms: float = 0.0


class AlertStore:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    def save_states(self, instances: list[Instance]) -> None:
        if not instances:
            return
        now = datetime.now(UTC)
        rows = [
            [
                i.tenant, i.rule, i.fingerprint, i.labels, i.state, float(i.value), json.dumps(i.values, default=str),
                i.summary, _at(i.active_since), _at(i.last_true), _at(i.fired_at), _at(i.last_notified),
                _at(i.resolved_at), now,
            ]
            for i in instances
        ]  # fmt: skip
        with self._lock:
            self.client.insert("alert_state", rows, column_names=_STATE_COLUMNS)

    def load_active(self) -> list[Instance]:
        sql = f"SELECT {', '.join(_STATE_COLUMNS)} FROM alert_state FINAL WHERE state IN ('pending', 'firing')"
        with self._lock:
            rows = self.client.query(sql).named_results()
        return [
            Instance(
                rule=r["rule"],
                fingerprint=r["fingerprint"],
                tenant=r["tenant"],
                labels=dict(r["labels"]),
                state=r["state"],
                value=r["value"],
                values=json.loads(r["values"] or "{}"),
                summary=r["summary"],
                active_since=_epoch(r["active_since"]) or 0.0,
                last_true=_epoch(r["last_true"]) or 0.0,
                fired_at=_epoch(r["fired_at"]),
                last_notified=_epoch(r["last_notified"]),
                resolved_at=_epoch(r["resolved_at"]),
            )  # fmt: skip
            for r in rows
        ]

    def load_limits(self) -> dict[tuple[str, str], tuple[float, int]]:
        """Reserved concurrency per function as the health processor keeps it (from CloudTrail), for a restart."""
        sql = (
            "SELECT tenant, function, argMax(reserved, changed_at) AS reserved, max(changed_at) AS changed "
            "FROM concurrency_limits FINAL GROUP BY tenant, function"
        )
        with self._lock:
            rows = self.client.query(sql).result_rows
        return {(t, f): (_epoch(changed) or 0.0, int(reserved)) for t, f, reserved, changed in rows}

    def record_all(self, deliveries: list[tuple[Notice, Delivery]]) -> None:
        """One history row per (notice, delivery), in one insert."""
        rows = [_history_row(notice, delivery) for notice, delivery in deliveries]
        if rows:
            with self._lock:
                self.client.insert("alert_history", rows, column_names=_HISTORY_COLUMNS)


def _history_row(notice: Notice, delivery: Delivery) -> list[Any]:
    i = notice.instance
    return [
        _at(notice.at), i.tenant, i.rule, i.fingerprint, notice.kind, notice.severity, i.labels, float(i.value),
        json.dumps(i.values, default=str), i.summary, delivery.target, delivery.format, delivery.delivery,
        delivery.attempts, delivery.http_status, delivery.error[:2000], delivery.delivery_ms,
    ]  # fmt: skip


# --- reads for the API (every user value bound as a parameter) ---------------------------------------------

ACTIVE_SQL = """
SELECT rule, fingerprint, labels, state, value, values, summary, active_since, last_true, fired_at,
       last_notified, resolved_at, updated_at
FROM alert_state FINAL
WHERE tenant = {tenant:String} AND state IN {states:Array(String)}
  AND ({rule:String} = '' OR rule = {rule:String})
  AND ({function:String} = '' OR labels['function'] = {function:String})
ORDER BY state = 'firing' DESC, updated_at DESC
LIMIT {limit:UInt32}"""

HISTORY_SQL = """
SELECT time, rule, fingerprint, kind, severity, labels, value, values, summary, target, format, delivery,
       attempts, http_status, error, delivery_ms
FROM alert_history
WHERE tenant = {tenant:String} AND time >= {since:DateTime64(3)}
  AND ({rule:String} = '' OR rule = {rule:String})
  AND ({function:String} = '' OR labels['function'] = {function:String})
ORDER BY time DESC
LIMIT {limit:UInt32}"""


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("values"), str):
        out["values"] = json.loads(out["values"] or "{}")
    if "labels" in out:
        out["labels"] = dict(out["labels"])
    return out
