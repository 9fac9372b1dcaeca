"""Alerts API: rules and their current instances, the notification history, and a test notification."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.alerts.instances import Instance, Notice
from fnscope.alerts.notify import Notifier
from fnscope.alerts.store import ACTIVE_SQL, HISTORY_SQL, AlertStore, decode_row
from fnscope.query.context import QueryContext, api_time
from fnscope.ratelimit import RateLimiter

STATES = ("pending", "firing", "resolved")
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
    test_limit = RateLimiter(TEST_RATE)

    def alert_store() -> AlertStore:
        if not store:
            store.append(AlertStore(ctx.open_client()))
        return store[0]

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
        return {"rules": rules, "alerts": [decode_row(r) for r in rows]}

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

    return router
