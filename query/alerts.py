"""Alerts API: rules and their current instances, the notification history, a test notification, and silences and
acknowledgements made by people (admin scope to make them, read scope to see them; each records who)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.notify import Notifier
from fnscope.alerts.silences import matching_silence
from fnscope.alerts.store import ACTIVE_SQL, HISTORY_SQL, MAX_ACTIVE_SILENCES, AlertStore, decode_row
from fnscope.query.context import QueryContext, api_time
from fnscope.ratelimit import RateLimiter
from fnscope.timeparse import parse_duration

STATES = ("pending", "firing", "resolved")
MAX_SILENCE = timedelta(days=90)
MAX_MATCHERS = 20


class SilenceRequest(BaseModel):
    """Hold back the notifications of the caller's alerts whose labels equal every matcher, for ``duration``."""

    matchers: dict[str, str] = Field(
        ..., description="label = value, all required: rule, function, version, principal, action, account, ..."
    )
    duration: str = Field("2h", description="from now: 30m, 2h, 1d (at most 90d)")
    comment: str = Field(..., min_length=1, max_length=1000, description="why (kept with the silence)")


class AckRequest(BaseModel):
    fingerprint: str = Field(..., min_length=1, max_length=200, description="the alert's fingerprint (GET /api/alerts)")
    comment: str = Field("", max_length=1000)


def _silence_window(request: SilenceRequest) -> tuple[datetime, datetime]:
    try:
        length = parse_duration(request.duration)
    except ValueError as exc:
        raise HTTPException(400, f"duration: {exc}") from exc
    if not timedelta(seconds=1) <= length <= MAX_SILENCE:
        raise HTTPException(400, "duration: from 1s to 90d")
    now = datetime.now(UTC)
    return now, now + length


def _check_matchers(matchers: dict[str, str]) -> dict[str, str]:
    if not matchers:
        raise HTTPException(400, "matchers: at least one label (a silence of everything is not one)")
    if len(matchers) > MAX_MATCHERS:
        raise HTTPException(400, f"matchers: at most {MAX_MATCHERS}")
    if "tenant" in matchers:
        raise HTTPException(400, "matchers: tenant is the token's own, not a matcher")
    if any(not key or len(key) > 100 or len(value) > 1000 for key, value in matchers.items()):
        raise HTTPException(400, "matchers: names of 1-100 characters, values of at most 1000")
    return matchers


# A test notification reaches the operator's webhooks: any tenant may send one, but not a flood of them.
TEST_RATE = "5/minute"


def _test_notice(tenant: str) -> Notice:
    now = time.time()
    inst = Instance(
        rule="test", fingerprint="test", tenant=tenant, labels={"tenant": tenant}, state="firing", value=0.0,
        values={}, summary="fnscope test notification: this target receives fnscope alerts", active_since=now,
        last_true=now, fired_at=now,
    )  # fmt: skip
    return Notice("test", inst, "info", at=now)


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["alerts"])
    store: list[AlertStore] = []  # its own connection, opened on first use (the runner's is in use by queries)
    test_limit = RateLimiter(TEST_RATE, exact=True)

    opening = threading.Lock()

    def alert_store() -> AlertStore:
        with opening:
            if not store:
                store.append(AlertStore(ctx.open_client()))
        return store[0]

    def annotate(tenant: str, alerts: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each alert with its rule's severity, its acknowledgement (this activity's, else null) and the silence
        holding back its notifications now (else null)."""
        severity = {r["name"]: r["severity"] for r in rules}
        kept = alert_store()
        acks = kept.acks(tenant, [a["fingerprint"] for a in alerts])
        silences = [*ctx.settings.alerts.silences, *kept.active_silences(tenant)]
        now = time.time()
        for alert in alerts:
            alert["severity"] = severity.get(alert["rule"], "warning")
            since = datetime.fromisoformat(alert["active_since"]).timestamp()
            alert["ack"] = acks.get((alert["fingerprint"], since)) if alert["state"] != "resolved" else None
            labels = {"tenant": tenant, **alert["labels"], "rule": alert["rule"]}
            held = matching_silence(silences, labels, now) if alert["state"] != "resolved" else None
            alert["silenced_by"] = (held.comment or "silenced") if held else None
        return alerts

    @router.get("/alerts", summary="Alert rules, and the alerts pending or firing now (resolved too with `state`)")
    async def api_alerts(
        tenant: str = Depends(ctx.auth.read),
        state: list[str] = Query(["pending", "firing"], description="pending, firing, resolved"),
        rule: str = "",
        function: str = "",
        limit: int = Query(500, ge=1, le=10_000),
    ) -> dict[str, Any]:
        if bad := [s for s in state if s not in STATES]:
            raise HTTPException(400, f"state: one of {', '.join(STATES)} (not {', '.join(bad)})")
        params = {"tenant": tenant, "states": state, "rule": rule, "function": function, "limit": limit}
        rows = await run_in_threadpool(ctx.runner.rows, ACTIVE_SQL, params)
        rules = [r.model_dump() for r in ctx.settings.alerts.effective_rules()]
        alerts = await run_in_threadpool(annotate, tenant, [decode_row(r) for r in rows], rules)
        return {"rules": rules, "alerts": alerts}

    @router.get("/alerts/history", summary="Every alert transition and notification delivery, newest first")
    async def api_alert_history(
        tenant: str = Depends(ctx.auth.read),
        since: str = "7d",
        rule: str = "",
        function: str = "",
        limit: int = Query(200, ge=1, le=10_000),
    ) -> dict[str, Any]:
        start = api_time(since, "since") or datetime.now(UTC) - timedelta(days=7)
        params = {"tenant": tenant, "since": start, "rule": rule, "function": function, "limit": limit}
        rows = await run_in_threadpool(ctx.runner.rows, HISTORY_SQL, params)
        return {"history": [decode_row(r) for r in rows]}

    @router.post("/alerts/test", summary="Send a test notification to every configured target")
    async def api_alert_test(tenant: str = Depends(ctx.auth.admin)) -> dict[str, Any]:
        wait = test_limit.retry_after(tenant)
        if wait is not None:
            raise HTTPException(
                429, f"at most {TEST_RATE} test notifications per tenant", headers={"Retry-After": str(wait)}
            )
        s = ctx.settings
        notifier = Notifier(
            list(s.alert_targets),
            alert_store(),
            s.alert_base_url,
            s.alerts.delivery_attempts,
            s.alerts.delivery_timeout_s,
        )
        results = await run_in_threadpool(notifier.send, _test_notice(tenant))
        return {"deliveries": [r.__dict__ for r in results]}

    @router.get("/alerts/silences", summary="Silences made through the API: in force, to come, and recently ended")
    async def api_silences(
        tenant: str = Depends(ctx.auth.read),
        ended_since: str = Query("24h", description="also those that ended since then"),
    ) -> dict[str, Any]:
        since = api_time(ended_since, "ended_since")
        listed = await run_in_threadpool(alert_store().silences, tenant, since)
        configured = [  # the operator's own: only those that may hold this tenant's alerts, never another's
            s.model_dump(mode="json")
            for s in ctx.settings.alerts.silences
            if s.matchers.get("tenant", tenant) == tenant
        ]
        return {"silences": listed, "configured": configured}

    @router.post("/alerts/silences", summary="Hold back notifications of matching alerts for a while (admin)")
    async def api_silence(
        request: Request, body: SilenceRequest, tenant: str = Depends(ctx.auth.admin)
    ) -> dict[str, Any]:
        matchers = _check_matchers(body.matchers)
        starts, ends = _silence_window(body)
        who = ctx.auth.who(request)
        store = alert_store()
        if await run_in_threadpool(store.active_silence_count, tenant) >= MAX_ACTIVE_SILENCES:
            raise HTTPException(409, f"{MAX_ACTIVE_SILENCES} silences are in force already: expire some first")
        return await run_in_threadpool(store.add_silence, tenant, matchers, starts, ends, body.comment, who)

    @router.delete("/alerts/silences/{silence_id}", summary="End a silence now (admin)")
    async def api_expire_silence(
        request: Request, silence_id: str, tenant: str = Depends(ctx.auth.admin)
    ) -> dict[str, Any]:
        ended = await run_in_threadpool(alert_store().expire_silence, tenant, silence_id, ctx.auth.who(request))
        if ended is None:
            raise HTTPException(404, f"no silence {silence_id!r}")
        return ended

    @router.post("/alerts/ack", summary="Acknowledge a firing alert: it stays listed, marked with who and when (admin)")
    async def api_ack(request: Request, body: AckRequest, tenant: str = Depends(ctx.auth.admin)) -> dict[str, Any]:
        store = alert_store()
        alert = await run_in_threadpool(store.alert, tenant, body.fingerprint)
        if alert is None:
            raise HTTPException(404, f"no alert {body.fingerprint!r}")
        if alert["state"] != "firing":
            raise HTTPException(409, f"the alert is {alert['state']}: only a firing alert is acknowledged")
        ack = await run_in_threadpool(store.acknowledge, tenant, alert, ctx.auth.who(request), body.comment)
        return {"rule": alert["rule"], "fingerprint": alert["fingerprint"], "ack": ack}

    return router
