"""AWS AppSync (GraphQL) logs, as CloudWatch Logs holds them in ``/aws/appsync/apis/{apiId}``.

Every line stays a searchable log line, tagged with its request id. A request's ``RequestSummary`` line (status,
latency in nanoseconds) also becomes an API request (``ApiAccess``, source ``appsync``): the route is the GraphQL
operation, and the request errs when its status is 400 or more or a resolver's mapping line says
``fieldInError``. The operation's name comes from the verbose ``GraphQL Query: ..., Operation: NAME`` line, else
from the query's own name, else from the root fields its ``Tracing`` lines resolved (``Mutation.putItem``);
AppSync writes a request's lines to one stream together, so they are looked for in the same delivery, and a
summary delivered apart from them keeps an empty route. Resolvers' figures (``Tracing`` lines' durations, mapping
errors) are read from the stored lines themselves (``fnscope.query.appsync``).

Field names and units are AWS's log type reference (AppSync developer guide, "Log type reference").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from fnscope.events import ApiAccess, Event, stable_id
from fnscope.sink import IngestContext

SOURCE = "appsync"
_GROUP = re.compile(r"/aws/appsync/apis/([A-Za-z0-9]+)$")
_QUERY_LINE = re.compile(r"([0-9A-Za-z-]{8,64}) GraphQL Query: ", re.S)
# The line goes on with the caller's query, ", Operation: NAME, Variables: " and the caller's variables, any of which
# may hold that same text: a name counts only if the query defines an operation of that name.
_OPERATION_FIELD = re.compile(r", Operation: ([_A-Za-z][_0-9A-Za-z]{0,127}), Variables: ")
_DEFINED_OPERATION = re.compile(r"(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]{0,127})")
_MAPPING = ("RequestMapping", "ResponseMapping")
_NANOS_PER_MS = 1e6
MAX_ROOT_FIELDS = 5
MAX_ERROR = 512


def api_id(log_group: str) -> str:
    """The GraphQL API's id of an AppSync log group, else ''."""
    match = _GROUP.match(log_group)
    return match.group(1) if match else ""


@dataclass
class Requests:
    """What one delivery's lines say of each request: its operation, root fields and first error."""

    operations: dict[str, str] = field(default_factory=dict)
    root_fields: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def read(self, message: str) -> tuple[str, dict[str, Any] | None]:
        """The line's request id and, for a JSON line, its record; what it says of its request is remembered."""
        if message[:1] == "{":
            try:
                record = orjson.loads(message)
            except orjson.JSONDecodeError:
                return "", None
            if not isinstance(record, dict):
                return "", None
            request = _text(record.get("requestId"))
            if request:
                self._note(request, record)
            return request, record
        query = _QUERY_LINE.match(message)
        if query is None:
            return "", None
        request, text = query.group(1), message[query.end() :]
        defined = _DEFINED_OPERATION.findall(text)
        named = [n for n in _OPERATION_FIELD.findall(text) if n in defined]
        name = named[0] if named else (defined[0] if _DEFINED_OPERATION.match(text) else "")
        if name:
            self.operations[request] = name
        return request, None

    def _note(self, request: str, record: dict[str, Any]) -> None:
        kind = record.get("logType")
        if kind == "Tracing" and isinstance(record.get("path"), list) and len(record["path"]) == 1:
            roots = self.root_fields.setdefault(request, [])
            name = f"{_text(record.get('parentType'))}.{_text(record.get('fieldName'))}"
            if name not in roots and len(roots) < MAX_ROOT_FIELDS:
                roots.append(name)
        elif kind in _MAPPING and record.get("fieldInError") is True and request not in self.errors:
            self.errors[request] = _error_text(record)

    def operation(self, request: str) -> str:
        return self.operations.get(request) or "+".join(sorted(self.root_fields.get(request, [])))


def request_events(
    record: dict[str, Any], time: datetime, ctx: IngestContext, where: tuple[str, str, str], requests: Requests
) -> list[Event]:
    """The API request a ``RequestSummary`` line sums up (a list, as ``Parsed.collect`` takes); ``where``: the
    API's id, account and region."""
    api, account, region = where
    request = _text(record.get("requestId"))
    status = _int(record.get("statusCode"))
    latency = _int(record.get("latency"))
    error = requests.errors.get(request, "")
    request_event = ApiAccess(
        event_id=stable_id(SOURCE, api, request),
        time=time,
        tenant=ctx.tenant,
        account=account,
        region=region,
        source=SOURCE,
        api_id=_text(record.get("graphQLAPIId")) or api,
        request_id=request,
        method="POST",
        route=requests.operation(request),
        status=status or 0,
        latency_ms=None if latency is None else latency / _NANOS_PER_MS,
        error_message=error or (f"HTTP {status}" if status and status >= 400 else ""),
        raw=orjson.dumps(record).decode(),
    )
    return [request_event]


def _error_text(record: dict[str, Any]) -> str:
    errors = record.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else errors
    text = _text(first) if first else f"{_text(record.get('parentType'))}.{_text(record.get('fieldName'))} failed"
    return text[:MAX_ERROR]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):
        return None
