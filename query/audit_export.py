"""What an auditor takes away: every stored version of the events in a time range with every field the content hash
covers, the manifest entries of the digests that sealed them, and the tenant's whole chain of digests with their
signatures, so that the bundle can be checked without fnscope and without the store (``fnscope audit export``
writes it, ``fnscope audit verify --bundle`` and its VERIFY.md check it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool

from fnscope.audit_chain import CONTENT_FIELDS, load_signer
from fnscope.query.audit import with_versions
from fnscope.query.context import QueryContext, api_time, json_response
from fnscope.query.runner import QueryRunner

MAX_EVENTS = 1_000_000
_FIELDS = ", ".join(name for name, _ in CONTENT_FIELDS)
# Sealed versions only: one that arrived after the last sealed window is in no manifest yet (a minute or so).
_EVENTS_SQL = (
    f"SELECT {_FIELDS}, time, content, toUnixTimestamp64Milli(min(ingested_at)) AS ingested_ms "
    f"FROM audit_events WHERE tenant = {{tenant:String}} AND time >= {{since:DateTime64(3)}} "
    f"AND time <= {{until:DateTime64(3)}} GROUP BY {_FIELDS}, time, content "
    "HAVING ingested_ms < {sealed_until:Int64} ORDER BY time, event_id, content LIMIT {limit:UInt32}"
)
_UNSEALED_SQL = (
    "SELECT count() FROM (SELECT event_id, content FROM audit_events WHERE tenant = {tenant:String} "
    "AND time >= {since:DateTime64(3)} AND time <= {until:DateTime64(3)} GROUP BY event_id, content "
    "HAVING toUnixTimestamp64Milli(min(ingested_at)) >= {sealed_until:Int64})"
)
_ENTRIES_SQL = (
    "SELECT seq, toUnixTimestamp64Milli(ingested_at) AS ingested_ms, event_id, toUnixTimestamp64Milli(time) AS time_ms, "
    "toString(content) AS content FROM audit_seal_entries FINAL WHERE tenant = {tenant:String} "
    "AND seq IN (SELECT DISTINCT seq FROM audit_seal_entries WHERE tenant = {tenant:String} "
    "AND event_id IN {ids:Array(String)}) ORDER BY seq, ingested_at, event_id, time, content"
)
_DIGESTS_SQL = (
    "SELECT seq, toUnixTimestamp64Milli(window_start) AS window_start_ms, toUnixTimestamp64Milli(window_end) "
    "AS window_end_ms, event_count, events_hash, prev_hash, digest_hash, algorithm, key_id, signature "
    "FROM audit_digests FINAL WHERE tenant = {tenant:String} ORDER BY seq"
)


def export(runner: QueryRunner, tenant: str, since: datetime, until: datetime, signing_key: str) -> dict[str, Any]:
    digests = [{**row, "tenant": tenant} for row in runner.rows(_DIGESTS_SQL, {"tenant": tenant})]
    sealed_until = max((int(d["window_end_ms"]) for d in digests), default=0)
    params = {"tenant": tenant, "since": since, "until": until, "limit": MAX_EVENTS, "sealed_until": sealed_until}
    events = with_versions(runner, tenant, runner.rows(_EVENTS_SQL, params), siblings=False)
    unsealed = runner.rows(_UNSEALED_SQL, params)[0]["count()"]
    ids = sorted({event["event_id"] for event in events})
    entries = runner.rows(_ENTRIES_SQL, {"tenant": tenant, "ids": ids}) if ids else []
    signer = load_signer(signing_key)
    return {
        "tenant": tenant,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "events": events,
        "entries": entries,
        "digests": digests,
        "unsealed": unsealed,  # versions in the range that arrived after the last seal: left out, not yet evidence
        "public_key": signer.public_pem() if signer is not None else "",
        "algorithm": signer.algorithm if signer is not None else "",
    }


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit/export", summary="Every version of the events in a range, with the seals that cover them")
    async def api_export(
        tenant: str = Depends(ctx.auth.read),
        since: str = Query("90d"),
        until: str = Query("0s", description="end of the range (default: now)"),
    ) -> Response:
        start, end = api_time(since, "since"), api_time(until or "0s", "until")
        assert start is not None and end is not None
        body = await run_in_threadpool(export, ctx.runner, tenant, start, end, ctx.settings.audit_signing_key)
        return json_response(body)

    return router
