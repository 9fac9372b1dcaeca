"""What every query route needs: the store, the caller's tenant (auth) and the settings the read side uses.

The process that serves the API builds this (``fnscope.app.server``): the read side opens no store of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from fastapi import HTTPException, Response

from fnscope.alerts.config import AlertSettings, Target
from fnscope.auth import TokenAuth
from fnscope.canary import Policy
from fnscope.query.runner import QueryRunner
from fnscope.timeparse import parse_time


@dataclass(frozen=True)
class QuerySettings:
    """The settings the query routes read, handed over by the process from its own."""

    account_concurrency_limit: int
    price_per_gb_second: float
    price_per_request: float
    audit_signing_key: str
    audit_retention_days: int
    alerts: AlertSettings = field(default_factory=AlertSettings)
    alert_targets: tuple[Target, ...] = ()
    alert_base_url: str = ""
    canary: Policy = field(default_factory=Policy)


@dataclass
class QueryContext:
    runner: QueryRunner
    auth: TokenAuth
    settings: QuerySettings
    # A store connection of a route's own, for work that must not hold up the runner's (verify, alert tests).
    open_client: Callable[[], Client]


def api_time(value: str | None, name: str) -> datetime | None:
    """A `since`/`until` parameter, or a 400 that says how to write it."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from exc


def api_window(since: str | None, until: str | None, longest: timedelta | None = None) -> tuple[datetime, datetime]:
    """A route's [since, until) (until defaults to now), or a 400 naming what is wrong with it."""
    start = api_time(since, "since")
    if start is None:
        raise HTTPException(400, "since: required (10m, 1h, 7d or ISO-8601)")
    end = api_time(until, "until") or datetime.now(UTC)
    if end <= start:
        raise HTTPException(400, "since must be before until")
    if longest is not None and end - start > longest:
        raise HTTPException(400, f"since: at most {_span(longest)} at once: narrow it")
    return start, end


def _span(value: timedelta) -> str:
    return f"{value.days} day{'s' if value.days != 1 else ''}" if value.days else f"{value.seconds // 60} minutes"


def json_response(body: dict[str, Any]) -> Response:
    """Serialised once with orjson: query rows are plain JSON types already, and FastAPI's validation and encoding
    of the returned value would walk every row a second time (for thousands of rows, more than the query cost)."""
    return Response(orjson.dumps(body), media_type="application/json")
