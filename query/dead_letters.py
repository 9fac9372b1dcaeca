"""What was refused, and why: the dead-letter store, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from query.runner import QueryRunner, Where


def dead_letters(runner: QueryRunner, tenant: str, since: datetime | None, source: str = "",
                 limit: int = 100) -> list[dict[str, Any]]:
    where = Where(tenant)
    if since:
        where.add("time >= {since:DateTime64(3)}", since=since)
    if source:
        where.add("source = {source:String}", source=source)
    sql = (
        "SELECT time, source, reason, length(raw) AS raw_bytes, substring(raw, 1, 512) AS raw_preview, event_id "
        f"FROM dead_letters FINAL WHERE {where.sql()} ORDER BY time DESC LIMIT {{limit:UInt32}}"
    )
    return runner.rows(sql, {**where.params, "limit": max(1, min(limit, 10_000))})
