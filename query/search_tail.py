"""Live tail: matching lines as they are stored, streamed as NDJSON (one JSON object per line), each line once and
in time order (``tail_order``).

Follows arrival time (``ingested_at``, min/max-indexed by migration v004), polled every quarter second.
``ingested_at`` is stamped when an insert starts, and a slow insert can become visible after a poll that already
passed its stamp: each poll therefore looks back ``OVERLAP_MS`` behind the newest stamp seen. That window is
scanned by its keys alone (id, arrival, time), page by page, so a busy window can't hide the rows after it; only
the rows not yet seen are then read whole.
"""

from __future__ import annotations

import asyncio
import time
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
from fnscope.query.tail_order import Key, Sequencer

POLL_SECONDS = 0.25
OVERLAP_MS = 5000
HEARTBEAT_SECONDS = 5.0  # an empty line while idle: proxies keep the stream open, a gone client is noticed
BATCH = 1000  # new lines read whole per poll; more wait for the next poll
SCAN_PAGE = 5000  # keys per page of the look-back scan
MAX_SCAN_PAGES = 20  # a poll's scan stops here; the next poll goes on from where it stopped


class Tail:
    """One follower: the arrival watermark it has read up to, and its ``Sequencer``."""

    def __init__(self, runner: QueryRunner, req: SearchRequest) -> None:
        self.runner, self.req = runner, req
        self.pattern = highlighter(req.compiled.highlight)
        self.watermark_ms = self.start_ms = 0
        self.clock_offset_ms = 0  # the store's clock minus this one: lines are held by the store's time
        self.order = Sequencer()

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def start(self, backlog: int) -> list[dict[str, Any]]:
        """Fix the watermark at the store's clock; the ``backlog`` newest lines before it, oldest first."""
        self.watermark_ms = self.runner.rows("SELECT toUnixTimestamp64Milli(now64(3)) AS now", {})[0]["now"]
        self.start_ms = self.watermark_ms
        self.clock_offset_ms = self.watermark_ms - int(time.time() * 1000)
        if backlog <= 0:
            return []
        where = self.req.where(time_range=False)
        sql = (
            f"SELECT {COLUMNS} FROM function_logs WHERE {where.sql()} "
            "AND ingested_at < fromUnixTimestamp64Milli({wm:Int64}, 'UTC') AND time >= {since:DateTime64(3)} "
            "ORDER BY time DESC, event_id DESC LIMIT 1 BY event_id LIMIT {n:UInt32}"
        )
        params = {**where.params, "wm": self.watermark_ms, "since": self.req.since, "n": backlog}
        rows = [(_key(row), row) for row in reversed(run(self.runner, sql, params, self.req.max_seconds))]
        self.order.sent(rows)
        return [self._out(row, late=False) for _key_, row in rows]

    def poll(self) -> list[dict[str, Any]]:
        """The lines due now: new ones read since the last poll and ones held back until their turn."""
        floor = max(self.start_ms, self.watermark_ms - OVERLAP_MS)
        new = self._scan(floor)
        now = self.now_ms()
        if new:
            for row in self._read(new, floor):
                # its lag counted to when a poll first sees it: an insert is visible only once it has finished
                self.order.hold(_key(row), now, row)
        return [self._out(row, late) for row, late in self.order.release(now)]

    def _scan(self, floor: int) -> list[str]:
        """Ids not seen yet that arrived from ``floor`` on, oldest arrival first (at most ``BATCH``)."""
        where = self.req.where(time_range=False)
        sql = (
            f"SELECT event_id, toUnixTimestamp64Milli(ingested_at) AS _in FROM function_logs WHERE {where.sql()} "
            "AND ingested_at >= fromUnixTimestamp64Milli({floor:Int64}, 'UTC') "
            "AND (toUnixTimestamp64Milli(ingested_at), event_id) > ({after_in:Int64}, {after_id:String}) "
            "ORDER BY ingested_at, event_id LIMIT {n:UInt32}"
        )
        new: dict[str, None] = {}
        after: tuple[int, str] = (floor - 1, "")
        for _page in range(MAX_SCAN_PAGES):
            params = {**where.params, "floor": floor, "after_in": after[0], "after_id": after[1], "n": SCAN_PAGE}
            keys = run(self.runner, sql, params, self.req.max_seconds)
            for row in keys:
                after = (row["_in"], row["event_id"])
                if not self.order.known(row["event_id"]):
                    new[row["event_id"]] = None
                    if len(new) >= BATCH:
                        break
            if len(new) >= BATCH or len(keys) < SCAN_PAGE:
                break
        # read up to the last key examined: anything stored later, or not examined, is in the next poll's window
        self.watermark_ms = max(self.watermark_ms, after[0])
        return list(new)

    def _read(self, ids: list[str], floor: int) -> list[dict[str, Any]]:
        """The whole rows of ``ids``, one per id (a copy not yet merged away is another row with the same id)."""
        where = self.req.where(time_range=False)
        sql = (
            f"SELECT {COLUMNS} FROM function_logs WHERE {where.sql()} "
            "AND event_id IN {ids:Array(String)} AND ingested_at >= fromUnixTimestamp64Milli({floor:Int64}, 'UTC') "
            "ORDER BY ingested_at LIMIT 1 BY event_id"
        )
        return run(self.runner, sql, {**where.params, "ids": ids, "floor": floor}, self.req.max_seconds)

    def _out(self, row: dict[str, Any], late: bool) -> dict[str, Any]:
        out = row_out(row, self.pattern)
        out["late"] = late
        return out


def _key(row: dict[str, Any]) -> Key:
    return (row["_ms"], row["event_id"])


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
