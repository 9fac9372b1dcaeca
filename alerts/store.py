"""Alert state and history in ClickHouse: written by the evaluator and notifier, read by the API."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from fnscope.alerts.config import Silence
from fnscope.alerts.instances import Instance, Notice
from fnscope.timeparse import iso_utc

_STATE_COLUMNS = [
    "tenant", "rule", "fingerprint", "labels", "state", "value", "values", "summary",
    "active_since", "last_true", "fired_at", "last_notified", "resolved_at", "updated_at",
]  # fmt: skip
_HISTORY_COLUMNS = [
    "time", "tenant", "rule", "fingerprint", "kind", "severity", "labels", "value", "values", "summary",
    "target", "format", "delivery", "attempts", "http_status", "error", "delivery_ms",
]  # fmt: skip

# Silences in force per tenant: each is matched against every alert whose notice is due, for every tenant.
MAX_ACTIVE_SILENCES = 200


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

    # --- silences and acknowledgements made through the API (v010) ---------------------------------------

    def active_silence_count(self, tenant: str) -> int:
        sql = "SELECT count() FROM alert_silences FINAL WHERE tenant = {tenant:String} AND ends_at > now64(3)"
        with self._lock:
            return int(self.client.query(sql, parameters={"tenant": tenant}).result_rows[0][0])

    def add_silence(
        self, tenant: str, matchers: dict[str, str], starts_at: datetime, ends_at: datetime, comment: str, by: str
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        row = [tenant, uuid.uuid4().hex, matchers, starts_at, ends_at, comment, by, now, "", now]
        with self._lock:
            self.client.insert("alert_silences", [row], column_names=_SILENCE_COLUMNS)
        return _silence_dict(dict(zip(_SILENCE_COLUMNS, row, strict=True)), now)

    def expire_silence(self, tenant: str, silence_id: str, by: str) -> dict[str, Any] | None:
        """End a silence now (one already over stays as it ended); None if the tenant has no such silence."""
        found = self._silence_rows(tenant, [silence_id], None)
        if not found:
            return None
        now = datetime.now(UTC)
        row = found[0]
        if row["ends_at"].replace(tzinfo=UTC) > now:
            row = {**row, "ends_at": now, "expired_by": by, "updated_at": now}
            with self._lock:
                self.client.insert(
                    "alert_silences", [[row[c] for c in _SILENCE_COLUMNS]], column_names=_SILENCE_COLUMNS
                )
        return _silence_dict(row, now)

    def silences(self, tenant: str, ended_since: datetime | None = None) -> list[dict[str, Any]]:
        """The tenant's silences still to end, and those that ended after ``ended_since``, newest first. Each has
        ``state``: active, pending (starts later) or expired."""
        now = datetime.now(UTC)
        return [_silence_dict(row, now) for row in self._silence_rows(tenant, [], ended_since or now)]

    def _silence_rows(self, tenant: str, ids: list[str], ended_since: datetime | None) -> list[dict[str, Any]]:
        sql = (
            f"SELECT {', '.join(_SILENCE_COLUMNS)} FROM alert_silences FINAL WHERE tenant = {{tenant:String}} "
            "AND (length({ids:Array(String)}) = 0 OR id IN {ids:Array(String)}) "
            "AND (length({ids:Array(String)}) > 0 OR ends_at > {ended_since:DateTime64(3)}) "
            "ORDER BY created_at DESC LIMIT 1000"
        )
        params = {"tenant": tenant, "ids": ids, "ended_since": ended_since or datetime.now(UTC)}
        with self._lock:
            return list(self.client.query(sql, parameters=params).named_results())

    def active_silences(self, tenant: str = "") -> list[Silence]:
        """The silences not yet ended (of every tenant, or of ``tenant``), as the evaluator matches them: each
        holds only its own tenant's alerts (a ``tenant`` matcher)."""
        sql = (
            "SELECT tenant, matchers, starts_at, ends_at, comment, created_by FROM alert_silences FINAL "
            "WHERE ends_at > now64(3) AND ({tenant:String} = '' OR tenant = {tenant:String}) "
            f"ORDER BY created_at LIMIT {MAX_ACTIVE_SILENCES} BY tenant"
        )
        with self._lock:
            rows = self.client.query(sql, parameters={"tenant": tenant}).named_results()
        return [
            Silence(
                matchers={**dict(r["matchers"]), "tenant": r["tenant"]},
                starts_at=r["starts_at"],
                ends_at=r["ends_at"],
                comment=f"{r['comment']} (silenced by {r['created_by']})",
            )
            for r in rows
        ]

    def alert(self, tenant: str, fingerprint: str) -> dict[str, Any] | None:
        sql = (
            "SELECT rule, fingerprint, state, active_since FROM alert_state FINAL "
            "WHERE tenant = {tenant:String} AND fingerprint = {fingerprint:String} LIMIT 1"
        )
        with self._lock:
            rows = self.client.query(sql, parameters={"tenant": tenant, "fingerprint": fingerprint}).named_results()
        return next(iter(rows), None)

    def acknowledge(self, tenant: str, alert: dict[str, Any], by: str, comment: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        row = [tenant, alert["rule"], alert["fingerprint"], alert["active_since"], now, by, comment]
        with self._lock:
            self.client.insert("alert_acks", [row], column_names=_ACK_COLUMNS)
        return _ack_dict(dict(zip(_ACK_COLUMNS, row, strict=True)))

    def acks(self, tenant: str, fingerprints: list[str]) -> dict[tuple[str, float], dict[str, Any]]:
        """Acknowledgements of these alerts, by (fingerprint, the epoch its activity began)."""
        if not fingerprints:
            return {}
        sql = (
            f"SELECT {', '.join(_ACK_COLUMNS)} FROM alert_acks FINAL WHERE tenant = {{tenant:String}} "
            "AND fingerprint IN {fingerprints:Array(String)}"
        )
        with self._lock:
            rows = self.client.query(sql, parameters={"tenant": tenant, "fingerprints": fingerprints}).named_results()
        return {(r["fingerprint"], _epoch(r["active_since"]) or 0.0): _ack_dict(r) for r in rows}


_SILENCE_COLUMNS = [
    "tenant", "id", "matchers", "starts_at", "ends_at", "comment", "created_by", "created_at", "expired_by",
    "updated_at",
]  # fmt: skip
_ACK_COLUMNS = ["tenant", "rule", "fingerprint", "active_since", "at", "by", "comment"]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value, "milliseconds")


def _silence_dict(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    starts, ends = row["starts_at"].replace(tzinfo=UTC), row["ends_at"].replace(tzinfo=UTC)
    state = "expired" if ends <= now else "pending" if starts > now else "active"
    return {
        "id": row["id"],
        "matchers": dict(row["matchers"]),
        "starts_at": _iso(starts),
        "ends_at": _iso(ends),
        "comment": row["comment"],
        "created_by": row["created_by"],
        "created_at": _iso(row["created_at"]),
        "expired_by": row["expired_by"],
        "state": state,
    }


def _ack_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": _iso(row["at"]),
        "by": row["by"],
        "comment": row["comment"],
        "active_since": _iso(row["active_since"]),
    }


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
