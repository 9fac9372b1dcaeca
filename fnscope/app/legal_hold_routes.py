"""The legal hold over HTTP: see it (read), place or lift it (admin), each with who and why.

It lives with the process roles rather than the query API because a hold changes the store's retention, which the
read side never does (``fnscope.processors.legal_hold``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from fnscope.auth import TokenAuth
from fnscope.processors import legal_hold


def hold_router(auth: TokenAuth, open_client: Callable[[], Client], retention_days: int) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["audit"])
    clients: list[Client] = []
    lock = threading.Lock()

    def change(tenant: str, held: bool, by: str, reason: str) -> dict[str, Any]:
        with lock:  # one handle of its own, one change at a time
            if not clients:
                clients.append(open_client())
            legal_hold.record(clients[0], tenant, held, by, reason, retention_days)
            return state(tenant)

    def state(tenant: str) -> dict[str, Any]:
        if not clients:
            clients.append(open_client())
        past = legal_hold.history(clients[0], tenant)
        return {"tenant": tenant, "held": bool(past and past[-1]["held"]), "history": past}

    @router.get("/audit/hold", summary="Whether the tenant's audit trail is on legal hold, and every hold and lift")
    async def api_hold_state(tenant: str = Depends(auth.read)) -> dict[str, Any]:
        return await run_in_threadpool(state, tenant)

    @router.post("/audit/hold", summary="Keep the tenant's audit trail past its retention until the hold is lifted")
    async def api_hold(
        request: Request, tenant: str = Depends(auth.admin), reason: str = Body(..., embed=True, min_length=1)
    ) -> dict[str, Any]:
        return await run_in_threadpool(change, tenant, True, auth.who(request), reason)

    @router.delete("/audit/hold", summary="Lift the legal hold: retention applies again")
    async def api_lift(
        request: Request, tenant: str = Depends(auth.admin), reason: str = Query(..., min_length=1)
    ) -> dict[str, Any]:
        return await run_in_threadpool(change, tenant, False, auth.who(request), reason)

    return router
