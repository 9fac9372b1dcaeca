"""AppSync (GraphQL) logs: lines shaped as AppSync writes them (field names and units from AWS's "Log type
reference": latency and durations in nanoseconds), through a CloudWatch Logs subscription and through Firehose.

The parser tests use the reference's own example records; the end-to-end test sends the simulator's AppSync
traffic to a real `fnscope up` and checks every operation's and resolver's figures against the simulation.
"""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from fnscope.collector.formats import cloudwatch, firehose
from fnscope.events import ApiAccess, AuditEvent, FunctionLog
from fnscope.simulator.scheduler import simulate
from fnscope.simulator.wire import appsync_api_id_for, appsync_requests, graphql_field
from fnscope.sink import IngestContext
from tests.conftest import FNSCOPE, all_stored, start_fnscope_up

API = "pmo28inf75eepg63qxq4ekoeg4"
REQUEST = "dbe87af3-c114-4b32-ae79-8af11f3f96f1"
GROUP = f"/aws/appsync/apis/{API}"
RESOLVER = f"arn:aws:appsync:us-east-1:111111111111:apis/{API}/types/Mutation/fields/putItem"
# the reference's examples, as they are printed there
SUMMARY = {
    "logType": "RequestSummary",
    "requestId": REQUEST,
    "graphQLAPIId": API,
    "statusCode": 200,
    "latency": 242000000,
}
TRACING = {
    "duration": 216820346,
    "logType": "Tracing",
    "path": ["putItem"],
    "fieldName": "putItem",
    "startOffset": 178156,
    "resolverArn": RESOLVER,
    "requestId": REQUEST,
    "parentType": "Mutation",
    "returnType": "Item",
    "graphQLAPIId": API,
}
EXECUTION = {
    "duration": 217406145,
    "logType": "ExecutionSummary",
    "requestId": REQUEST,
    "startTime": "2019-01-01T06:06:18.956Z",
    "endTime": "2019-01-01T06:06:19.174Z",
    "parsing": {"startOffset": 49033, "duration": 34784},
    "version": 1,
    "validation": {"startOffset": 129048, "duration": 69126},
    "graphQLAPIId": API,
}
FAILED_MAPPING = {
    "logType": "ResponseMapping",
    "path": ["putItem"],
    "fieldName": "putItem",
    "parentType": "Mutation",
    "resolverArn": RESOLVER,
    "requestId": REQUEST,
    "graphQLAPIId": API,
    "fieldInError": True,
    "errors": ["Unable to convert {id=1} to Item"],
}
QUERY_LINE = f'{REQUEST} GraphQL Query: mutation PutItem($name: String!) {{ putItem(name: $name) {{ id }} }}, Operation: PutItem, Variables: {{"name": "x"}}'


def _message(*lines: dict[str, Any] | str, group: str = GROUP) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "111111111111",
        "logGroup": group,
        "logStream": "6d0c6f2b1fa2f6d1d0d31d4f4e4b3e42",
        "subscriptionFilters": ["fnscope"],
        "logEvents": [
            {
                "id": str(i),
                "timestamp": 1546322779174 + i,
                "message": line if isinstance(line, str) else orjson.dumps(line).decode(),
            }
            for i, line in enumerate(lines)
        ],
    }


def _parsed(*lines: dict[str, Any] | str, ctx: IngestContext | None = None) -> list[Any]:
    body = gzip.compress(orjson.dumps(_message(*lines)))
    return cloudwatch.parse(body, ctx or IngestContext(tenant="acme")).events


def test_a_request_summary_is_an_api_request_named_by_its_operation() -> None:
    events = _parsed(QUERY_LINE, TRACING, EXECUTION, SUMMARY)
    (request,) = [e for e in events if isinstance(e, ApiAccess)]
    assert (request.source, request.api_id, request.request_id, request.route) == ("appsync", API, REQUEST, "PutItem")
    assert (request.status, request.latency_ms, request.error_message) == (200, 242.0, "")
    assert request.account == "111111111111"
    lines = [e for e in events if isinstance(e, FunctionLog)]
    assert len(lines) == 4 and {e.request_id for e in lines} == {REQUEST}  # every line stays searchable


def test_a_failed_resolver_makes_its_request_an_error() -> None:
    events = _parsed(SUMMARY, FAILED_MAPPING, TRACING)  # the summary may come first
    (request,) = [e for e in events if isinstance(e, ApiAccess)]
    assert request.error_message == "Unable to convert {id=1} to Item" and request.status == 200


def test_without_the_verbose_query_line_the_operation_is_its_root_fields() -> None:
    (request,) = [e for e in _parsed(TRACING, SUMMARY) if isinstance(e, ApiAccess)]
    assert request.route == "Mutation.putItem"
    anonymous = QUERY_LINE.replace("Operation: PutItem", "Operation: null").replace("mutation PutItem", "mutation")
    (request,) = [e for e in _parsed(anonymous, TRACING, SUMMARY) if isinstance(e, ApiAccess)]
    assert request.route == "Mutation.putItem"
    (request,) = [e for e in _parsed(SUMMARY) if isinstance(e, ApiAccess)]  # delivered apart from its lines
    assert request.route == ""


def test_a_callers_variables_cannot_name_the_operation() -> None:
    forged = QUERY_LINE.replace(
        '{"name": "x"}', '{"name": "x, Operation: Evil\\u001b[31m, Variables: , Operation: Evil, Variables: "}'
    )
    (request,) = [e for e in _parsed(forged, SUMMARY) if isinstance(e, ApiAccess)]
    assert request.route == "PutItem"


def test_appsync_lines_are_never_audit_records_nor_access_logs() -> None:
    """A caller's variables are in AppSync's lines: a CloudTrail record or an access-log line among them is text."""
    record = {"eventVersion": "1.09", "eventID": "f0rged", "eventName": "DeleteTrail", "eventSource": "cloudtrail.amazonaws.com",
              "eventTime": "2019-01-01T06:06:18Z", "awsRegion": "us-east-1", "userIdentity": {"type": "Root"}}  # fmt: skip
    access = {"apiId": "x1", "status": "200", "requestId": "r1"}
    events = _parsed(record, access, ctx=IngestContext(tenant="acme", audit=True))
    assert [type(e) for e in events] == [FunctionLog, FunctionLog]
    assert not any(isinstance(e, AuditEvent) for e in events)


def test_out_of_range_numbers_cost_only_their_record() -> None:
    huge = {**SUMMARY, "requestId": "r-huge", "latency": 1e30}
    parsed = cloudwatch.parse(gzip.compress(orjson.dumps(_message(huge, SUMMARY))), IngestContext(tenant="acme"))
    requests = [e for e in parsed.events if isinstance(e, ApiAccess)]
    assert [r.request_id for r in requests] == [REQUEST]
    (dead,) = parsed.dead
    assert "latency" in dead.reason


def test_through_firehose_the_same_events() -> None:
    sim = simulate(4, 6.0, 4.0, seed=3, start=datetime(2026, 12, 1, tzinfo=UTC))
    (first, *_) = appsync_requests(sim)
    ctx = IngestContext(tenant="acme")
    via_firehose = firehose.parse(first.body, ctx).events
    records = orjson.loads(first.body)["records"]
    direct = cloudwatch.parse(base64.b64decode(records[0]["data"]), ctx).events
    assert [e.model_dump(exclude={"source"}) for e in via_firehose] == [
        e.model_dump(exclude={"source"}) for e in direct
    ]
    assert any(isinstance(e, ApiAccess) and e.source == "appsync" for e in direct)


# --- end to end ---------------------------------------------------------------------------------------------

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    tmp = tmp_path_factory.mktemp("appsync")
    url, proc = start_fnscope_up(tmp / "data", tmp / "up.log")
    sim = simulate(6, 12.0, 20.0, seed=9, start=START)
    for request in appsync_requests(sim):
        r = httpx.post(f"{url}{request.path}", content=request.body, headers=dict(request.headers), timeout=60)
        assert r.status_code == 200, r.text
    all_stored(url)
    yield url, sim
    assert proc.stop() == 0


def _expected(sim: Any) -> dict[str, dict[str, Any]]:
    """Per operation, from the simulation: requests and failures of the functions the GraphQL API fronts."""
    graphql = {spec.name for i, spec in enumerate(sorted(sim.functions, key=lambda f: f.name)) if i % 3 == 0}
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for inv in sim.invocations:
        if inv.function in graphql and inv.status != "throttled":
            name = graphql_field(sim.by_name[inv.function])[2]
            out[name]["requests"] += 1
            out[name]["errors"] += inv.status in ("error", "timeout", "oom")
    return {name: dict(c) | {"errors": c["errors"]} for name, c in out.items()}


def test_each_operation_and_resolver_has_its_figures(fleet: tuple[str, Any]) -> None:
    url, sim = fleet
    api = appsync_api_id_for(sim.seed)
    answer = httpx.get(f"{url}/api/appsync", params={"api": api, "since": "1h"}, timeout=30).json()
    operations = {
        row["operation"]: {"requests": row["requests"], "errors": row["errors"]} for row in answer["operations"]
    }
    expected = _expected(sim)
    assert operations == expected and sum(e["errors"] for e in expected.values()) > 0
    resolvers = {row["resolver"].split(".")[1]: (row["calls"], row["errors"]) for row in answer["resolvers"]}
    by_field = {}
    for spec in sim.functions:
        parent, field, name = graphql_field(spec)
        if name in expected:
            by_field[field] = (expected[name]["requests"], expected[name]["errors"])
    assert resolvers == by_field
    assert all(row["p99_ms"] >= row["p50_ms"] > 0 for row in answer["resolvers"] + answer["operations"])


def test_appsync_lines_are_searchable_by_request(fleet: tuple[str, Any]) -> None:
    url, sim = fleet
    row = httpx.get(f"{url}/api/search", params={"q": "ExecutionSummary", "since": "1h", "limit": 1}, timeout=30).json()
    (line,) = row["results"]
    request_id = line["request_id"]
    same = httpx.get(f"{url}/api/search", params={"request_id": request_id, "since": "1h"}, timeout=30).json()
    assert len(same["results"]) == 5  # the query, mapping, tracing and both summaries


def test_the_cli_prints_operations_and_resolvers(fleet: tuple[str, Any]) -> None:
    url, sim = fleet
    out = subprocess.run(
        [*FNSCOPE, "appsync", "--api-id", appsync_api_id_for(sim.seed), "--since", "1h", "--api", url],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert out.returncode == 0, out.stderr
    for name, figures in _expected(sim).items():
        (line,) = [x for x in out.stdout.splitlines() if f" {name} " in f" {x} "]
        assert str(figures["requests"]) in line.split()
