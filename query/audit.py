"""Audit queries: who did what, to what, from where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from query.context import QueryContext, api_time
from query.runner import QueryRunner, Where

AUDIT_COLUMNS = (
    "time, account, region, service, action, principal_type, principal_arn, principal_name, mfa, "
    "source_ip, user_agent, error_code, error_message, function, resources, event_id"
)


@dataclass
class AuditRequest:
    tenant: str
    principal: str = ""
    action: str = ""
    resource: str = ""
    source: str = ""
    failed: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


def audit(runner: QueryRunner, req: AuditRequest) -> list[dict[str, Any]]:
    where = Where(req.tenant)
    if req.since:
        where.add("time >= {since:DateTime64(3)}", since=req.since)
    if req.until:
        where.add("time <= {until:DateTime64(3)}", until=req.until)
    if req.principal:
        where.add(
            "(principal_arn ILIKE {p:String} OR principal_name ILIKE {p:String} OR access_key = {pe:String})",
            p=f"%{req.principal}%",
            pe=req.principal,
        )
    if req.action:
        where.add("action ILIKE {action:String}", action=f"{req.action}%")
    if req.resource:
        where.add(
            "(function = {r:String} OR arrayExists(x -> x ILIKE {rl:String}, resources))",
            r=req.resource,
            rl=f"%{req.resource}%",
        )
    if req.source:
        where.add(
            "(source_ip = {src:String} OR user_agent ILIKE {srcl:String})", src=req.source, srcl=f"%{req.source}%"
        )
    if req.failed:
        where.add("error_code != ''")
    sql = (
        f"SELECT {AUDIT_COLUMNS} FROM audit_events FINAL WHERE {where.sql()} "
        "ORDER BY time DESC, event_id LIMIT {limit:UInt32}"
    )
    return runner.rows(sql, {**where.params, "limit": max(1, min(req.limit, 100_000))})


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit", summary="Who did what, to what, from where")
    async def api_audit(
        tenant: str = Depends(ctx.auth),
        principal: str = "",
        action: str = "",
        resource: str = "",
        source: str = "",
        failed: bool = False,
        since: str = "90d",
        until: str | None = None,
        limit: int = Query(100, ge=1, le=100_000),
    ) -> dict[str, Any]:
        req = AuditRequest(
            tenant,
            principal,
            action,
            resource,
            source,
            failed,
            api_time(since, "since"),
            api_time(until, "until"),
            limit,
        )
        return {"results": await run_in_threadpool(audit, ctx.runner, req)}

    return router
