"""What every query route needs: the store, the caller's tenant (auth) and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import HTTPException, Response

from fnscope.auth import TokenAuth
from fnscope.config import Settings
from fnscope.timeparse import parse_time
from query.runner import QueryRunner


@dataclass
class QueryContext:
    runner: QueryRunner
    auth: TokenAuth
    settings: Settings


def api_time(value: str | None, name: str) -> datetime | None:
    """A `since`/`until` parameter, or a 400 that says how to write it."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from exc


def json_response(body: dict[str, Any]) -> Response:
    """Serialised once with orjson: query rows are plain JSON types already, and FastAPI's validation and encoding
    of the returned value would walk every row a second time (for thousands of rows, more than the query cost)."""
    return Response(orjson.dumps(body), media_type="application/json")
