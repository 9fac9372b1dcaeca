"""Audit queries: who did what, to what, from where; and the store's integrity check.

What every audit query sees: every version of every event. History is append-only: an identical re-delivery is no
new row, while a record re-sent with the same eventID but other content is a version of its own, shown beside the
first with ``version`` (1 for the first stored) and ``versions`` (how many the event has); nothing that arrives
later replaces or hides what was stored. A CloudTrail correction (``addendum.originalEventID``) is an event of its
own that names the one it corrects (``corrects``); the event it names stays and lists it (``corrected_by``).

A search by principal or resource reads the companion table ``audit_lookup`` (v006: the same rows, ordered by
principal ARN, function, resource ARN and resource name), so it reads only those keys' ranges instead of every
granule of ``audit_events``; the full conditions are applied to what it reads, so the answer is the same.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool

from fnscope.audit_chain import epoch_ms, load_signer
from fnscope.dashboards.saved_queries import AUDIT_COLUMNS, FINAL_SETTINGS
from fnscope.query.audit_details import with_details
from fnscope.query.audit_verify import NEW_VERSIONS_SQL, verify
from fnscope.query.context import QueryContext, api_time, json_response
from fnscope.query.runner import QueryRunner, Where
from fnscope.timeparse import LATEST

_PRINCIPAL = (
    "(principal_arn ILIKE {p:String} OR principal_name ILIKE {p:String} OR access_key = {pe:String} "
    "OR session_issuer = {pe:String})"
)
# CloudTrail's eventCategory values; a record without one (eventVersion before 1.07) counts as Management
CATEGORIES = ("Management", "Data", "NetworkActivity", "Insight")
MAX_DETAILED = 1000  # rows a details=true answer may carry: each may hold up to 3 x 64 KiB of its record


def prefix_pattern(value: str) -> str:
    """A LIKE pattern matching what starts with ``value`` (its own % and _ matched literally)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains_pattern(value: str) -> str:
    return "%" + prefix_pattern(value)


def resource_name(value: str) -> str:
    """What follows the last ``:`` or ``/`` (all of it without one): v006's ``n`` keys, computed the same way."""
    return re.split(r"[:/]", value)[-1]


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
    account: str = ""
    region: str = ""
    changes: bool = False
    categories: tuple[str, ...] = ()  # any of CATEGORIES; empty: every category
    hide_reads: bool = False  # leave out read-only calls (readOnly true); a record that doesn't say stays


def audit_where(req: AuditRequest) -> Where:
    where = Where(req.tenant)
    if req.since:
        where.add("time >= {since:DateTime64(3)}", since=req.since)
    if req.until:
        where.add("time <= {until:DateTime64(3)}", until=req.until)
    if req.principal:
        # A part of the ARN or user name (case-insensitive), or exactly an access key id or the session issuer.
        where.add(_PRINCIPAL, p=contains_pattern(req.principal), pe=req.principal)
    if req.action:
        # Real event names carry API dates (UpdateFunctionCode20150331v2): a prefix finds them.
        where.add("action ILIKE {action:String}", action=prefix_pattern(req.action))
    if req.resource:
        # A function name, a resource ARN (or its start: an unqualified function ARN finds the qualified ones), or
        # the name at the end of an ARN (a bucket, a role): never a mere substring, so fn-4 does not find fn-42.
        where.add(
            "(function = {r:String} OR arrayExists(x -> startsWith(x, {r:String}) "
            "OR endsWith(x, {rc:String}) OR endsWith(x, {rs:String}), resources))",
            r=req.resource,
            rc=f":{req.resource}",
            rs=f"/{req.resource}",
        )
    if req.source:
        where.add(
            "(source_ip = {src:String} OR user_agent ILIKE {srcl:String})",
            src=req.source,
            srcl=contains_pattern(req.source),
        )
    if req.failed:
        where.add("error_code != ''")
    if req.changes:
        where.add("read_only = false")
    if req.hide_reads:
        where.add("NOT ifNull(read_only, false)")
    if req.categories:
        wanted = [*req.categories, *([""] if "Management" in req.categories else [])]
        where.add("event_category IN {categories:Array(String)}", categories=wanted)
    if req.account:
        where.add("account = {account:String}", account=req.account)
    if req.region:
        where.add("region = {region:String}", region=req.region)
    return where


def audit_sql(where: Where) -> str:
    return (
        f"SELECT {AUDIT_COLUMNS} FROM audit_events FINAL WHERE {where.sql()} "
        f"ORDER BY time DESC, event_id, content LIMIT {{limit:UInt32}} {FINAL_SETTINGS}"
    )


def lookup_keys(req: AuditRequest) -> tuple[str, dict[str, str]] | None:
    """The ``audit_lookup`` key ranges holding every event the request can match, or None to read audit_events.

    A principal: the ARNs whose ARN, name, access key or session issuer match, from ``audit_principals``.
    A resource R: the function R; resource ARNs starting with R; and for ARNs ending in ``:R`` or ``/R`` the ``n``
    key of R's last segment (or the ``f`` key, where v006 left that out as the event's function name). A value
    ending in ``:`` or ``/`` has no last segment: audit_events answers it.
    """
    if req.principal:
        return (
            "kind = 'p' AND key IN (SELECT principal_arn FROM audit_principals WHERE tenant = {tenant:String} "
            f"AND {_PRINCIPAL})"
        ), {"p": contains_pattern(req.principal), "pe": req.principal}
    if req.resource and resource_name(req.resource):
        return (
            "((kind = 'f' AND key IN ({r:String}, {rn:String})) OR (kind = 'n' AND key = {rn:String}) "
            "OR (kind = 'r' AND startsWith(key, {r:String})))"
        ), {"r": req.resource, "rn": resource_name(req.resource)}
    return None


def audit_query(req: AuditRequest) -> tuple[str, dict[str, Any]]:
    """The SQL and bound parameters answering ``req``."""
    limit = max(1, min(req.limit, 100_000))
    keys = lookup_keys(req)
    if keys is None:
        where = audit_where(req)
        return audit_sql(where), {**where.params, "limit": limit}
    # Every delivery of a version shares its keys and time, so the ranges read hold them all: keep one row per
    # version (an event may also sit under several keys), then filter, as FINAL does.
    ranges = Where(req.tenant)
    if req.since:
        ranges.add("time >= {since:DateTime64(3)}", since=req.since)
    if req.until:
        ranges.add("time <= {until:DateTime64(3)}", until=req.until)
    ranges.add(keys[0], **keys[1])
    where = audit_where(req)
    sql = (
        f"SELECT {AUDIT_COLUMNS} FROM (SELECT tenant, {AUDIT_COLUMNS} FROM audit_lookup WHERE {ranges.sql()} "
        f"ORDER BY ingested_at DESC LIMIT 1 BY event_id, content) WHERE {where.sql()} "
        "ORDER BY time DESC, event_id, content LIMIT {limit:UInt32}"
    )
    return sql, {**ranges.params, **where.params, "limit": limit}


def audit(runner: QueryRunner, req: AuditRequest) -> list[dict[str, Any]]:
    sql, params = audit_query(req)
    return with_versions(runner, req.tenant, runner.rows(sql, params))


# Every version of the given events (their first arrival) and the corrections naming them, for the rows of a page.
# Every version of the given events (each with its first arrival) and the corrections naming them, for a page.
_VERSIONS_SQL = (
    f"SELECT {AUDIT_COLUMNS}, corrects, ingested_at AS first_arrival FROM audit_events FINAL "
    "WHERE tenant = {tenant:String} AND event_id IN {ids:Array(String)} "
    f"ORDER BY event_id, first_arrival, content {FINAL_SETTINGS}"
)
_CORRECTIONS_SQL = (
    "SELECT key AS corrected, groupUniqArray(event_id) AS by FROM audit_lookup "
    "WHERE tenant = {tenant:String} AND kind = 'c' AND key IN {ids:Array(String)} GROUP BY key"
)


def with_versions(
    runner: QueryRunner, tenant: str, rows: list[dict[str, Any]], siblings: bool = True
) -> list[dict[str, Any]]:
    """Rows of events, each with ``version`` (its place among the event's versions, by first arrival),
    ``versions``, ``corrects`` (the event a correction names) and ``corrected_by`` (the corrections naming it).

    With ``siblings``, an event's other versions join the one a search matched, right after it: whichever path
    found an event (principal, resource, action, a saved query), it answers with the same versions of it.
    """
    ids = sorted({row["event_id"] for row in rows if "event_id" in row and "content" in row})
    if not ids:
        return rows
    versions: dict[str, list[dict[str, Any]]] = {}
    for version in runner.rows(_VERSIONS_SQL, {"tenant": tenant, "ids": ids}):
        versions.setdefault(version["event_id"], []).append(version)
    corrected_by = {
        r["corrected"]: sorted(r["by"]) for r in runner.rows(_CORRECTIONS_SQL, {"tenant": tenant, "ids": ids})
    }
    out: list[dict[str, Any]] = []
    shown: set[tuple[str, str]] = set()
    for row in rows:
        if "content" not in row:
            out.append(row)
            continue
        event_id = row["event_id"]
        known = versions.get(event_id, [])
        contents = [version["content"] for version in known]
        family = [row] if not siblings else [
            row if version["content"] == row["content"] else {name: version[name] for name in row if name in version}
            for version in known
        ] or [row]  # fmt: skip
        for member in family:
            if (event_id, member["content"]) in shown:
                continue
            shown.add((event_id, member["content"]))
            member["version"] = contents.index(member["content"]) + 1 if member["content"] in contents else 1
            member["versions"] = max(len(contents), 1)
            member["corrects"] = next((v["corrects"] for v in known if v["corrects"]), "")
            member["corrected_by"] = corrected_by.get(event_id, [])
            out.append(member)
    return out


def _categories(values: list[str]) -> tuple[str, ...]:
    """CloudTrail's names for ``category`` values given in any case, or a 400 naming the parameter."""
    known = {c.lower(): c for c in CATEGORIES}
    if bad := [v for v in values if v.lower() not in known]:
        raise HTTPException(400, f"category: one of {', '.join(CATEGORIES)} (not {', '.join(bad)})")
    return tuple(sorted({known[v.lower()] for v in values}))


class Verifier:
    """Runs the integrity check on its own connection (it is long, and must not hold up the query runner)."""

    def __init__(self, ctx: QueryContext) -> None:
        self.ctx = ctx
        self._client: Client | None = None
        self._lock = threading.Lock()

    def __call__(self, tenant: str, since: datetime | None, limit: int) -> dict[str, Any]:
        settings = self.ctx.settings
        with self._lock:
            if self._client is None:
                self._client = self.ctx.open_client()
            report = verify(
                self._client,
                tenant,
                load_signer(settings.audit_signing_key),
                settings.audit_retention_days,
                epoch_ms(since) if since else None,
                limit,
            )
        return report.as_dict()


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])
    verifier = Verifier(ctx)

    @router.get("/audit", summary="Who did what, to what, from where")
    async def api_audit(
        tenant: str = Depends(ctx.auth.read),
        principal: str = "",
        action: str = "",
        resource: str = "",
        source: str = "",
        failed: bool = False,
        since: str = "90d",
        until: str | None = None,
        limit: int = Query(100, ge=1, le=100_000),
        account: str = "",
        region: str = "",
        changes: bool = Query(False, description="only calls that change something (readOnly false)"),
        category: list[str] = Query(
            [], description=f"only these event categories ({', '.join(CATEGORIES)}; default: all)"
        ),
        hide_reads: bool = Query(False, description="leave out read-only calls (records that don't say stay)"),
        details: bool = Query(
            False,
            description=f"each row's requestParameters, responseElements, additionalEventData (at most {MAX_DETAILED} rows)",
        ),
    ) -> Response:
        if details and limit > MAX_DETAILED:
            raise HTTPException(400, f"limit: at most {MAX_DETAILED} rows with details=true")
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
            account,
            region,
            changes,
            _categories(category),
            hide_reads,
        )
        rows = await run_in_threadpool(audit, ctx.runner, req)
        if details:
            rows = await run_in_threadpool(with_details, ctx.runner, tenant, rows)
        return json_response({"results": rows})

    @router.get("/audit/verify", summary="Check the audit store's hash chain; names every event that was tampered with")
    async def api_audit_verify(
        tenant: str = Depends(ctx.auth.read),
        since: str | None = Query(None, description="only check what arrived since then (the chain is always walked)"),
        limit: int = Query(1000, ge=1, le=100_000, description="most problems listed"),
    ) -> dict[str, Any]:
        return await run_in_threadpool(verifier, tenant, api_time(since, "since"), limit)

    @router.get("/audit/arrivals", summary="How many event versions were new to the store since a moment")
    async def api_audit_arrivals(
        tenant: str = Depends(ctx.auth.read),
        since_ms: int | None = Query(
            None, ge=0, description="the store's clock in ms (`now_ms` of an earlier answer); without it, only now_ms"
        ),
    ) -> dict[str, Any]:
        """A repeat of a stored version (an import run twice, a re-delivery) is not new; a live delivery is."""
        if since_ms is None:
            (row,) = await run_in_threadpool(ctx.runner.rows, "SELECT toUnixTimestamp64Milli(now64(3)) AS now_ms", {})
            return {"now_ms": int(row["now_ms"])}
        params = {"tenant": tenant, "from_ms": since_ms, "to_ms": epoch_ms(LATEST)}
        (row,) = await run_in_threadpool(ctx.runner.rows, NEW_VERSIONS_SQL, params)
        return {"new_versions": int(row["new_versions"]), "now_ms": int(row["now_ms"])}

    return router
