"""API Gateway access logs (REST and HTTP APIs) in, ApiAccess events out.

``POST /ingest/apigateway?api=ID[&stage=S]`` with one JSON access-log line per line (the JSON access-log format,
whatever names the user gave the ``$context`` variables), or a JSON array of such objects. CLF, XML and CSV
lines are not parsed: they become dead letters telling the sender to switch to the JSON format.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson

from fnscope.collector.formats.base import Parsed, error_reason
from fnscope.decoding.arn import function_name
from fnscope.decoding.budget import take_records
from fnscope.decoding.compression import inflate_body
from fnscope.decoding.errors import UnusableBody
from fnscope.decoding.jsontext import compact_json
from fnscope.events import ApiAccess, stable_id
from fnscope.sink import IngestContext

SOURCE = "apigateway"
NOT_JSON = "not a JSON access-log line: use the JSON access-log format"

# Normalised key (lower case, no "$context."/"context." prefix, nested objects flattened with dots) -> field.
# The first alias with a present value wins.
_ALIASES: dict[str, tuple[str, ...]] = {
    "request_id": ("requestid", "request_id", "extendedrequestid"),
    "source_ip": ("ip", "sourceip", "identity.sourceip", "clientip", "client_ip", "remoteip"),
    "time_epoch": ("requesttimeepoch", "requesttime_epoch", "epoch"),
    "time": ("requesttime", "time", "timestamp", "@timestamp"),
    "method": ("httpmethod", "method", "http_method", "requestmethod"),
    "route": ("routekey", "route", "route_key", "resourcepath"),
    "path": ("path", "requestpath", "resourcepath"),
    "protocol": ("protocol",),
    "status": ("status", "statuscode", "status_code", "httpstatus"),
    "integration_status": (
        "integration.status",
        "integrationstatus",
        "integration.integrationstatus",
        "integration_status",
    ),
    "latency": ("responselatency", "latency", "response_latency"),
    "integration_latency": ("integration.latency", "integrationlatency", "integration_latency"),
    "response_length": ("responselength", "response_length", "responsesize", "bytes"),
    "user_agent": ("identity.useragent", "useragent", "user_agent", "user-agent"),
    "error_message": (
        "error.message",
        "errormessage",
        "error_message",
        "integrationerrormessage",
        "integration.error",
        "error.messagestring",
    ),
    "error_type": ("error.responsetype", "responsetype"),
    "api_id": ("apiid", "api_id", "restapiid"),
    "stage": ("stage",),
    "deployment_id": ("deploymentid", "deployment_id"),
    "canary": ("iscanaryrequest", "is_canary_request", "canary"),
    "account": ("accountid", "account_id", "identity.accountid"),
    "region": ("region", "awsregion"),
    "domain": ("domainname", "domain_name"),
    "function": (
        "functionname",
        "function_name",
        "lambdafunction",
        "lambda_function",
        "function",
        "lambda",
        "integration.functionname",
        "integration.function",
    ),
}
# The fields that make an object an access-log record rather than some other JSON.
# Normalised key -> the fields it is an alias of, with its rank among each field's aliases (lower wins).
_ALIAS_RANKS: dict[str, tuple[tuple[str, int], ...]] = {
    alias: tuple((field, aliases.index(alias)) for field, aliases in _ALIASES.items() if alias in aliases)
    for alias in {alias for aliases in _ALIASES.values() for alias in aliases}
}
# An access-log record has its response status and at least one of what identifies the request; a record without
# them (a CloudTrail record, any other JSON) is not one and is dead-lettered rather than stored as a request.
_REQUEST_FIELDS = ("request_id", "method", "route", "path")
_THROTTLE_TEXT = ("rate exceeded", "too many requests", "throttl")
_THROTTLE_TYPES = frozenset({"THROTTLED", "QUOTA_EXCEEDED"})
_LAMBDA_ARN = re.compile(r"arn:aws[\w-]*:lambda:[\w-]*:\d*:function:[^\s\"',]+")
_REGION_IN_DOMAIN = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
_CLF_TIME = re.compile(r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\s*([+-])(\d{2}):?(\d{2}))?")
_MONTHS = {
    m: i
    for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)
}
_MAX_REASONS = 5


class LineError(ValueError):
    """An access-log line that cannot be used; the message is the dead-letter reason."""


# --- values ---------------------------------------------------------------------------------------------------


def _flatten_context(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys joined with dots, lower-cased and without a ``$context.``/``context.`` prefix; the first of
    two keys that normalise alike wins. Values stay as decoded (unlike lambda_text.flatten, which stringifies)."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = prefix + _normal_key(key)
        if isinstance(value, dict):
            flat.update(_flatten_context(value, name + "."))
        else:
            flat.setdefault(name, value)
    return flat


@lru_cache(maxsize=4096)  # a sender's log format repeats the same few keys on every line
def _normal_key(key: object) -> str:
    name = str(key).strip().lower()
    for strip in ("$context.", "context."):
        if name.startswith(strip):
            name = name[len(strip) :]
    return name


def _picked(flat: dict[str, Any]) -> dict[str, Any]:
    """Each field's value: its first alias (in _ALIASES order) with a present value; absent fields are left out.

    One pass over the record's keys instead of one lookup per alias per field."""
    best: dict[str, tuple[int, Any]] = {}
    for name, value in flat.items():
        ranks = _ALIAS_RANKS.get(name)
        if ranks is None or not _present(value):
            continue
        for field, rank in ranks:
            if field not in best or rank < best[field][0]:
                best[field] = (rank, value)
    return {field: value for field, (_, value) in best.items()}


def _present(value: Any) -> bool:
    """API Gateway writes "-" for a variable with no value."""
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "-"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else compact_json(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _flag(value: Any) -> bool | None:
    """``$context.isCanaryRequest`` is "true" or "false" (a JSON boolean if the format leaves out the quotes)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    return {"true": True, "false": False}.get(text)


def _int(value: Any, default: int | None = None) -> int | None:
    number = _number(value)
    if number is None:
        return default
    if not math.isfinite(number):
        raise LineError(f"{value!r} is not a finite number")
    return int(number)


# --- time -----------------------------------------------------------------------------------------------------


def _from_epoch(value: float) -> datetime:
    # Seconds, milliseconds, micro- or nanoseconds, told apart by magnitude.
    scale = next((scale for limit, scale in ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6)) if abs(value) < limit), 1e9)
    try:
        return datetime.fromtimestamp(value / scale, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise LineError(f"requestTimeEpoch out of range: {value!r}") from exc


def _from_clf(value: str) -> datetime | None:
    match = _CLF_TIME.fullmatch(value.strip())
    if not match:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    if month.lower() not in _MONTHS:
        return None
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0)) * (-1 if sign == "-" else 1)
    return datetime(
        int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset)
    )


def _time(picked: dict[str, Any]) -> datetime:
    epoch = _number(picked.get("time_epoch"))
    if epoch is not None:
        return _from_epoch(epoch)
    value = picked.get("time")
    if value is None:
        return datetime.now(UTC)  # the line has no time: the receipt time is the best there is
    number = _number(value)
    if number is not None:
        return _from_epoch(number)
    try:
        parsed = _from_clf(str(value)) or datetime.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise LineError(f"unreadable requestTime {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


# --- one record -----------------------------------------------------------------------------------------------


def _function(flat: dict[str, Any], picked: dict[str, Any], ctx: IngestContext) -> str:
    named = picked.get("function")
    if isinstance(named, str) and function_name(named):
        return function_name(named)
    for value in flat.values():
        if isinstance(value, str) and ":function:" in value:
            match = _LAMBDA_ARN.search(value)
            if match:
                return function_name(match.group(0))
    return ctx.param("function")


def _region(picked: dict[str, Any], ctx: IngestContext) -> str:
    region = picked.get("region")
    if region is not None:
        return _text(region)
    domain = picked.get("domain")
    match = _REGION_IN_DOMAIN.search(_text(domain)) if domain is not None else None
    return match.group(1) if match else ctx.param("region")


def _throttled(status: int, integration_status: int, error: str, error_type: str) -> bool:
    lowered = error.lower()
    return (
        429 in (status, integration_status)
        or error_type.upper() in _THROTTLE_TYPES
        or any(text in lowered for text in _THROTTLE_TEXT)
    )


def record_to_event(obj: dict[str, Any], line: str, ctx: IngestContext, source: str = SOURCE) -> ApiAccess:
    """Map one JSON access-log object (``line`` is its text, kept as raw and hashed when it has no requestId)."""
    flat = _flatten_context(obj)
    picked = _picked(flat)
    if "status" not in picked or not any(field in picked for field in _REQUEST_FIELDS):
        raise LineError("not an access-log record: it needs status and one of requestId, httpMethod, routeKey, path")
    api_id = ctx.param("api") or _text(picked.get("api_id"))
    request_id = _text(picked.get("request_id"))
    status = _int(picked.get("status"), 0) or 0
    integration_status = _int(picked.get("integration_status"), 0) or 0
    error = _text(picked.get("error_message"))
    return ApiAccess(
        event_id=stable_id(api_id, request_id) if request_id else stable_id(api_id, line),
        time=_time(picked),
        tenant=ctx.tenant,
        account=_text(picked.get("account")) or ctx.param("account"),
        region=_region(picked, ctx),
        source=source,
        api_id=api_id,
        stage=ctx.param("stage") or _text(picked.get("stage")),
        deployment_id=_text(picked.get("deployment_id")),
        canary=_flag(picked.get("canary")),
        request_id=request_id,
        function=_function(flat, picked, ctx),
        method=_text(picked.get("method")),
        path=_text(picked.get("path")),
        route=_text(picked.get("route")),
        protocol=_text(picked.get("protocol")),
        status=status,
        integration_status=integration_status,
        latency_ms=_number(picked.get("latency")),
        integration_latency_ms=_number(picked.get("integration_latency")),
        response_length=_int(picked.get("response_length")),
        source_ip=_text(picked.get("source_ip")),
        user_agent=_text(picked.get("user_agent")),
        error_message=error,
        throttled=_throttled(status, integration_status, error, _text(picked.get("error_type"))),
        raw=line,
    )


def access_log_in_text(text: str) -> dict[str, Any] | None:
    """An access-log line as a CloudWatch Logs group holds it, told apart from other JSON lines by the ``apiId``
    key the recommended format carries (deploy/aws/apigateway-access-log-format.json); else None."""
    if not text.startswith("{") or '"apiId"' not in text:
        return None
    obj = _loads(text)
    return obj if isinstance(obj, dict) and "apiId" in obj and "status" in obj else None


# --- the body -------------------------------------------------------------------------------------------------


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _NOT_JSON


_NOT_JSON = object()


def _items(body: bytes) -> list[tuple[Any, str]]:
    """(decoded object or _NOT_JSON, its text) for the whole body as one array/object, else for each line."""
    whole = _loads(body)
    if isinstance(whole, list):
        take_records(len(whole))
        return [(item, compact_json(item)) for item in whole]
    if isinstance(whole, dict):
        return [(whole, body.decode("utf-8", "replace").strip())]
    take_records(body.count(b"\n") + 1)
    items: list[tuple[Any, str]] = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.strip():
            items.append((_loads(line.strip()), line.strip()))
    return items


def parse(body: bytes, ctx: IngestContext, source: str = SOURCE) -> Parsed:
    """Parse access-log lines; raises ``UnusableBody`` when no line is a usable JSON access-log record."""
    body = inflate_body(body)
    if not body.strip():
        raise UnusableBody("empty body: expected JSON access-log lines")
    parsed = Parsed()
    reasons: list[str] = []
    for obj, line in _items(body):
        try:
            if obj is _NOT_JSON or not isinstance(obj, dict):
                raise LineError(NOT_JSON)
            parsed.events.append(record_to_event(obj, line, ctx, source))
        except (ValueError, RecursionError) as exc:  # LineError, pydantic's ValidationError, absurd nesting
            reason = error_reason(exc)
            parsed.reject(ctx, source, reason, line)
            if len(reasons) < _MAX_REASONS:
                reasons.append(reason)
    if not parsed.events:
        raise UnusableBody(
            f"no usable access-log line ({len(parsed.dead)} rejected): " + "; ".join(dict.fromkeys(reasons))
        )
    return parsed
