"""A function's change history: every Lambda call that changed it (``LAMBDA_CHANGE_ACTIONS``), newest first, each
with a short summary of what changed ("reserved concurrency → 0", "alias live → v7 90% / v8 10%", "layer ... added").

Which function a call changed: the stored ``function`` (the collector reads it from ``functionName``, a name or any
form of ARN, or the response's ``functionArn``), else, for calls that name it only elsewhere, ``resource`` (tags) or
a ``FunctionName``/``functionArn`` in the request, and for event source mapping updates and deletions that name
only the mapping's ``uUID``, the function that mapping was created for (or last updated to).

The summaries read the CloudTrail record as AWS writes it (``requestParameters``/``responseElements``, the API's
field names in lower camel case). Layer changes are told against the layers the function had before: from the
history itself, or from the last event before it that named them; without one the new list is shown whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from fnscope.dashboards.saved_queries import lambda_changes
from fnscope.decoding.arn import function_name
from fnscope.query.context import QueryContext, api_window
from fnscope.query.runner import QueryRunner
from fnscope.query.search import MAX_SECONDS, run

MAX_SUMMARY = 400
_API_DATE = re.compile(r"[0-9]{8}(v[0-9]+)?$")
COLUMNS = (
    "time, action, principal_type, principal_arn, principal_name, source_ip, user_agent, mfa, error_code, event_id"
)
_REQUEST_UUID = (
    "coalesce(nullIf(JSONExtractString(raw, 'requestParameters', 'uUID'), ''), "
    "nullIf(JSONExtractString(raw, 'requestParameters', 'UUID'), ''), "
    "JSONExtractString(raw, 'requestParameters', 'uuid'))"
)
# A function named where the collector does not look: a tagged resource's ARN, a FunctionName in the request.
_NAMED_ELSEWHERE = (
    "arrayFirst(x -> x != '', arrayMap(v -> if(match(v, '(^|:)function:'), "
    "extract(v, '(?:^|:)function:([^:/\\\\s]+)'), if(startsWith(v, 'arn:'), '', splitByChar(':', v)[1])), "
    "[JSONExtractString(raw, 'requestParameters', 'resource'), "
    "JSONExtractString(raw, 'requestParameters', 'FunctionName'), "
    "JSONExtractString(raw, 'requestParameters', 'functionArn')]))"
)
# The event source mappings of the function: the uUIDs its mapping calls returned.
_MAPPINGS = (
    "SELECT JSONExtractString(raw, 'responseElements', 'uUID') FROM audit_events WHERE tenant = {tenant:String} "
    "AND function = {function:String} AND match(action, '^(Create|Update)EventSourceMapping') "
    "AND JSONExtractString(raw, 'responseElements', 'uUID') != ''"
)
_OF_FUNCTION = (
    f"(function = {{function:String}} OR (function = '' AND ({_NAMED_ELSEWHERE} = {{function:String}} "
    f"OR (match(action, '^(Update|Delete)EventSourceMapping') AND {_REQUEST_UUID} IN ({_MAPPINGS})))))"
)
_LAYERED = (
    "(match(action, '^(CreateFunction|UpdateFunctionConfiguration|UpdateFunctionCode)([0-9]{8}(v[0-9]+)?)?$') "
    "AND (JSONHas(raw, 'requestParameters', 'layers') OR JSONHas(raw, 'responseElements', 'layers')))"
)


LAYERS_LOOKBACK_DAYS = 400  # how far before a range its functions' earlier layers are looked for (over a year)


def function_changes(
    runner: QueryRunner, tenant: str, function: str, since: datetime, until: datetime, limit: int = 20
) -> list[dict[str, Any]]:
    """The function's changes in [since, until], newest first, each with its ``summary``."""
    sql = (
        f"SELECT {COLUMNS}, raw FROM audit_events FINAL WHERE tenant = {{tenant:String}} "
        "AND time >= {since:DateTime64(3)} AND time <= {until:DateTime64(3)} "
        f"AND {lambda_changes()} AND {_OF_FUNCTION} ORDER BY time DESC, event_id LIMIT {{limit:UInt32}}"
    )
    params = {"tenant": tenant, "function": function, "since": since, "until": until, "limit": limit}
    rows = run(runner, sql, params, MAX_SECONDS)
    records = [_load(row.pop("raw")) for row in rows]
    layers = None
    if any(_layers(record) is not None for record in records):  # the layers the function had before the range
        before = run(
            runner,
            f"SELECT raw FROM audit_events WHERE tenant = {{tenant:String}} AND function = {{function:String}} "
            f"AND time < {{since:DateTime64(3)}} AND time >= {{since:DateTime64(3)}} - INTERVAL {LAYERS_LOOKBACK_DAYS} DAY "
            f"AND error_code = '' AND {_LAYERED} ORDER BY time DESC LIMIT 1",
            params,
            MAX_SECONDS,
        )
        layers = _layers(_load(before[0]["raw"])) if before else None
    for row, record in zip(reversed(rows), reversed(records), strict=True):  # oldest first: against the layers before
        row["summary"] = summarize(row["action"], record, layers)
        named = _layers(record)
        if named is not None and not row["error_code"]:
            layers = named
    return rows


def _load(raw: str) -> dict[str, Any]:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _base(action: str) -> str:
    """The API name without CloudTrail's date: UpdateFunctionCode20150331v2 -> UpdateFunctionCode."""
    return _API_DATE.sub("", action)


def _layers(record: dict[str, Any]) -> list[str] | None:
    """The layer ARNs a function has after this call, if the call names them (request first, then response)."""
    for part in ("requestParameters", "responseElements"):
        layers = _obj(record.get(part)).get("layers")
        if isinstance(layers, list):
            return [layer.get("arn", "") if isinstance(layer, dict) else str(layer) for layer in layers]
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _percent(weight: float) -> str:
    return f"{round(weight * 100, 2):g}%"


def _routing(version: str, weights: dict[str, Any]) -> str:
    """An alias's target: v7, or with weights v7 90% / v8 10% (its own version takes what the others leave)."""
    extra = {v: float(w) for v, w in weights.items() if isinstance(w, (int, float)) and not isinstance(w, bool)}
    shares = [f"v{v} {_percent(w)}" for v, w in extra.items()]
    if version:
        shares.insert(0, f"v{version} {_percent(1 - sum(extra.values()))}" if extra else f"v{version}")
    return " / ".join(shares) or "?"


def _alias(verb: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def summary(req: dict[str, Any], resp: dict[str, Any]) -> str:
        name = req.get("name") or resp.get("name") or "?"
        if verb == "deleted":
            return f"alias {name} deleted"
        version = str(req.get("functionVersion") or resp.get("functionVersion") or "")
        routing = _obj(req.get("routingConfig")) or _obj(resp.get("routingConfig"))
        target = _routing(version, _obj(routing.get("additionalVersionWeights")))
        return f"alias {name} {'created ' if verb == 'created' else ''}→ {target}"

    return summary


_CONFIG_NAMES = {"memorySize": "memory", "timeout": "timeout", "runtime": "runtime", "handler": "handler",
                 "role": "role", "description": "description", "kMSKeyArn": "KMS key"}  # fmt: skip
_CONFIG_UNITS = {"memorySize": " MB", "timeout": " s"}
_NOT_CHANGES = {"functionName", "layers", "revisionId", "fullyQualifiedArn"}


def _configuration(req: dict[str, Any]) -> list[str]:
    """What a configuration request set: memory → 512 MB, environment changed, ..."""
    parts = []
    for key, value in req.items():
        if key in _NOT_CHANGES:
            continue
        label = _CONFIG_NAMES.get(key, key)
        if isinstance(value, (str, int, float, bool)):
            parts.append(f"{label} → {value}{_CONFIG_UNITS.get(key, '')}")
        else:
            parts.append(f"{label} changed")
    return parts


def _layer_change(after: list[str] | None, before: list[str] | None) -> list[str]:
    if after is None:
        return []
    if before is None:
        return [f"layers → {', '.join(after)}" if after else "no layers"]
    added = [f"layer {arn} added" for arn in after if arn not in before]
    removed = [f"layer {arn} removed" for arn in before if arn not in after]
    return added + removed


def _code(req: dict[str, Any], resp: dict[str, Any]) -> str:
    source = (
        f" from s3://{req['s3Bucket']}/{req.get('s3Key', '')}" if req.get("s3Bucket")
        else f" to image {req['imageUri']}" if req.get("imageUri") else ""
    )  # fmt: skip
    sha = resp.get("codeSha256")
    out = "code replaced" + source + (f" (sha256 {sha})" if isinstance(sha, str) and sha else "")
    version = resp.get("version")
    if req.get("publish") and version and version != "$LATEST":
        out += f", published as v{version}"
    return out


_MAPPING_SHOWN = {"uUID", "UUID", "uuid", "enabled", "batchSize", "functionName", "FunctionName"}


def _mapping(verb: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def summary(req: dict[str, Any], resp: dict[str, Any]) -> str:
        uuid = req.get("uUID") or req.get("UUID") or req.get("uuid") or resp.get("uUID") or ""
        source = req.get("eventSourceArn") or resp.get("eventSourceArn") or ""
        what = f"event source mapping {uuid}".rstrip() + (f" ({source})" if source else "")
        if verb == "created":
            details = [f"batch size {req['batchSize']}"] if "batchSize" in req else []
            if req.get("enabled") is False:
                details.append("disabled")
            return f"event source {source or '?'} mapped" + (f" ({', '.join(details)})" if details else "")
        if verb == "deleted":
            return f"{what} deleted"
        changes = []
        if "enabled" in req:
            changes.append("enabled" if req["enabled"] else "disabled")
        if "batchSize" in req:
            changes.append(f"batch size → {req['batchSize']}")
        target = req.get("functionName") or req.get("FunctionName")
        if target:
            changes.append(f"function → {function_name(target)}")
        rest = [k for k in req if k not in _MAPPING_SHOWN]
        changes.extend(f"{key} changed" for key in rest)
        return f"{what} " + (", ".join(changes) if changes else "updated")

    return summary


def _permission(req: dict[str, Any], resp: dict[str, Any]) -> str:
    sid = req.get("statementId") or "?"
    who = req.get("principal") or "?"
    out = f"permission {sid} added: {who} may {req.get('action') or 'invoke'}"
    if req.get("sourceArn"):
        out += f" from {req['sourceArn']}"
    if req.get("functionUrlAuthType"):
        out += f" (function URL auth {req['functionUrlAuthType']})"
    return out


def _qualifier(req: dict[str, Any]) -> str:
    return f" on {req['qualifier']}" if req.get("qualifier") else ""


def _url(verb: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def summary(req: dict[str, Any], resp: dict[str, Any]) -> str:
        if verb == "deleted":
            return f"function URL{_qualifier(req)} deleted"
        auth = req.get("authType") or resp.get("authType")
        head = f"function URL{_qualifier(req)} {verb}"
        if auth:
            head += f": auth {auth}" + (" (public)" if auth == "NONE" else "")
        return head

    return summary


_SUMMARIES: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "UpdateFunctionCode": _code,
    "PublishVersion": lambda req, resp: (
        f"version {resp.get('version') or '?'} published"
        + (f" ({resp['description']})" if resp.get("description") else "")
    ),
    "CreateAlias": _alias("created"),
    "UpdateAlias": _alias("updated"),
    "DeleteAlias": _alias("deleted"),
    "PutFunctionConcurrency": lambda req, resp: (
        "reserved concurrency → "
        + _text(req.get("reservedConcurrentExecutions", resp.get("reservedConcurrentExecutions", "?")))
    ),
    "DeleteFunctionConcurrency": lambda req, resp: "reserved concurrency removed",
    "PutProvisionedConcurrencyConfig": lambda req, resp: (
        f"provisioned concurrency{_qualifier(req)} → " + _text(req.get("provisionedConcurrentExecutions", "?"))
    ),
    "DeleteProvisionedConcurrencyConfig": lambda req, resp: f"provisioned concurrency{_qualifier(req)} removed",
    "AddPermission": _permission,
    "RemovePermission": lambda req, resp: f"permission {req.get('statementId') or '?'} removed",
    "CreateFunctionUrlConfig": _url("created"),
    "UpdateFunctionUrlConfig": _url("updated"),
    "DeleteFunctionUrlConfig": _url("deleted"),
    "CreateEventSourceMapping": _mapping("created"),
    "UpdateEventSourceMapping": _mapping("updated"),
    "DeleteEventSourceMapping": _mapping("deleted"),
    "DeleteFunction": lambda req, resp: (
        f"version {req['qualifier']} deleted" if req.get("qualifier") else "function deleted"
    ),
    "TagResource": lambda req, resp: "tags set: " + ", ".join(_obj(req.get("tags"))),
    "UntagResource": lambda req, resp: (
        "tags removed: "
        + ", ".join(str(k) for k in (req.get("tagKeys") if isinstance(req.get("tagKeys"), list) else []))
    ),
    "PutRuntimeManagementConfig": lambda req, resp: f"runtime updates → {req.get('updateRuntimeOn') or '?'}",
    "PutFunctionRecursionConfig": lambda req, resp: f"recursive loops → {req.get('recursiveLoop') or '?'}",
    "PutFunctionCodeSigningConfig": lambda req, resp: (
        "code signing config → " + _text(req.get("codeSigningConfigArn") or "?")
    ),
    "DeleteFunctionCodeSigningConfig": lambda req, resp: "code signing config removed",
    "DeleteFunctionEventInvokeConfig": lambda req, resp: "async invoke config removed",
}


def summarize(action: str, record: dict[str, Any], layers_before: list[str] | None = None) -> str:
    """What one Lambda call changed, in a few words (never raises: an unexpected shape says less; at most
    ``MAX_SUMMARY`` characters, whatever a record holds)."""
    text = _summary(action, record, layers_before)
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _summary(action: str, record: dict[str, Any], layers_before: list[str] | None) -> str:
    base = _base(action)
    req, resp = _obj(record.get("requestParameters")), _obj(record.get("responseElements"))
    try:
        if base in _SUMMARIES:
            return _SUMMARIES[base](req, resp)
        if base == "CreateFunction":
            details = [f"{k} {req[k]}" for k in ("runtime", "packageType") if isinstance(req.get(k), str)]
            layers = _layer_change(_layers(record), None) if _layers(record) else []
            return (
                "function created"
                + (f" ({', '.join(details)})" if details else "")
                + "".join(f"; {part}" for part in layers)
            )
        if base == "UpdateFunctionConfiguration":
            after = _layers({"requestParameters": req}) if "layers" in req else None
            if after is None and not req:
                after = _layers({"responseElements": resp})
            parts = _layer_change(after, layers_before) + _configuration(req)
            return "; ".join(parts) if parts else "configuration updated"
        if base in ("PutFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig"):
            parts = _configuration(req)
            return "async invoke config: " + (", ".join(parts) if parts else "updated")
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    return base


def routes(ctx: QueryContext) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/audit/changes", summary="A function's change history, newest first, each change summarized")
    async def api_function_changes(
        tenant: str = Depends(ctx.auth.read),
        function: str = Query(..., min_length=1, max_length=256, description="the function's name"),
        since: str = "7d",
        until: str = Query("0s", description="end of the range (default: now)"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        start, end = api_window(since, until)
        found = await run_in_threadpool(function_changes, ctx.runner, tenant, function, start, end, limit)
        return {"function": function, "changes": found}

    return router
