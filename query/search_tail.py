"""Live tail: matching lines as they are stored, streamed as NDJSON (one JSON object per line).

Follows arrival time (``ingested_at``, min/max-indexed by migration v004), polled every quarter second, so a
line is on the stream well within a second of its insert returning. ``ingested_at`` is stamped when an insert
starts, and a slow insert can become visible after a poll that already passed its stamp: each poll therefore
looks back ``OVERLAP`` behind the newest stamp seen, and ids already sent in that window are skipped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from fnscope.query.context import QueryContext
from fnscope.query.runner import QueryRunner
from fnscope.query.search import COLUMNS, SearchError, SearchFilter, SearchRequest, run
from fnscope.query.search_results import highlighter, row_out

POLL_SECONDS = 0.25
OVERLAP_MS = 5000
HEARTBEAT_SECONDS = 5.0  # an empty line while idle: proxies keep the stream open, a gone client is noticed
BATCH = 1000


class Tail:
    """The state of one follower: the arrival watermark and the ids sent within the overlap window."""

    def __init__(self, runner: QueryRunner, req: SearchRequest) -> None:
        self.runner, self.req = runner, req
        self.pattern = highlighter(req.compiled.highlight)
        self.watermark_ms = self.start_ms = 0
        self.sent: dict[str, int] = {}

    def start(self, backlog: int) -> list[dict[str, Any]]:
        """Fix the watermark at the store's clock; the ``backlog`` newest lines before it, oldest first."""
        self.watermark_ms = self.runner.rows("SELECT toUnixTimestamp64Milli(now64(3)) AS now", {})[0]["now"]
        self.start_ms = self.watermark_ms
        if backlog <= 0:
            return []
        where = self.req.where(time_range=False)
        sql = (
            f"SELECT {COLUMNS}, toUnixTimestamp64Milli(ingested_at) AS _in FROM function_logs WHERE {where.sql()} "
            "AND ingested_at < fromUnixTimestamp64Milli({wm:Int64}, 'UTC') "
            "AND time >= {since:DateTime64(3)} ORDER BY time DESC, event_id DESC LIMIT {n:UInt32}"
        )
        params = {**where.params, "wm": self.watermark_ms, "since": self.req.since, "n": backlog}
        rows = run(self.runner, sql, params, self.req.max_seconds)
        return self._emit(list(reversed(rows)), track=False)

    def poll(self) -> list[dict[str, Any]]:
        where = self.req.where(time_range=False)
        sql = (
            f"SELECT {COLUMNS}, toUnixTimestamp64Milli(ingested_at) AS _in FROM function_logs WHERE {where.sql()} "
            "AND ingested_at >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC') "
            "ORDER BY ingested_at, time, event_id LIMIT {n:UInt32}"
        )
        params = {**where.params, "from_ms": max(self.start_ms, self.watermark_ms - OVERLAP_MS), "n": BATCH}
        rows = run(self.runner, sql, params, self.req.max_seconds)
        fresh = [r for r in rows if r["event_id"] not in self.sent]
        if rows:
            self.watermark_ms = max(self.watermark_ms, max(r["_in"] for r in rows))
        floor = self.watermark_ms - OVERLAP_MS
        self.sent = {k: v for k, v in self.sent.items() if v >= floor}
        return self._emit(fresh, track=True)

    def _emit(self, rows: list[dict[str, Any]], track: bool) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            arrived = row.pop("_in")
            if track:
                self.sent[row["event_id"]] = arrived
            out.append(row_out(row, self.pattern))
        return out


# Live tails one tenant may hold open at once: each polls the store every POLL_SECONDS, and the store's query
# handles are shared with every other tenant's searches.
MAX_TAILS_PER_TENANT = 4


def tail_routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["search"])
    open_tails: Counter[str] = Counter()

    @router.get(
        "/search/tail",
        summary="Follow matching log lines live (NDJSON stream)",
        response_class=StreamingResponse,
    )
    async def api_tail(
        request: Request,
        tenant: str = Depends(ctx.auth.read),
        match: SearchFilter = Depends(),
        backlog: int = Query(0, ge=0, le=1000, description="first send the newest N lines already stored"),
        backlog_since: str = Query("1h", description="how far back the backlog may reach"),
    ) -> StreamingResponse:
        req = match.request(tenant, backlog_since, None, 1)
        if open_tails[tenant] >= MAX_TAILS_PER_TENANT:
            raise HTTPException(
                429, f"at most {MAX_TAILS_PER_TENANT} live tails at once per tenant", headers={"Retry-After": "5"}
            )
        tail = Tail(ctx.runner, req)
        try:
            first = await run_in_threadpool(tail.start, backlog)
        except SearchError as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        open_tails[tenant] += 1

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in lines():
                    yield chunk
            finally:
                open_tails[tenant] -= 1

        async def lines() -> AsyncIterator[bytes]:
            for row in first:
                yield orjson.dumps(row) + b"\n"
            idle = 0.0
            while not await request.is_disconnected():
                try:
                    rows = await run_in_threadpool(tail.poll)
                except SearchError as exc:
                    yield orjson.dumps({"error": str(exc)}) + b"\n"
                    return
                for row in rows:
                    yield orjson.dumps(row) + b"\n"
                if rows:
                    idle = 0.0
                    continue
                idle += POLL_SECONDS
                if idle >= HEARTBEAT_SECONDS:
                    idle = 0.0
                    yield b"\n"
                await asyncio.sleep(POLL_SECONDS)

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    return router
