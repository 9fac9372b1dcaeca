"""The fleet page's Functions table states on chDB: p99 duration against each function's timeout (as the audit trail
configured it, else as `Task timed out after N seconds` lines state it), and a disabled function (reserved
concurrency 0) shown though it ran nothing. Real wire formats through the real parsers and EventWriter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from fnscope.collector.formats import cloudtrail, cloudwatch, telemetry
from fnscope.dashboards.panels import FLEET, P99_OF_TIMEOUT_CRITICAL, P99_OF_TIMEOUT_WARN, STATE_ORDER
from fnscope.dashboards.sql import to_clickhouse
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.sink import IngestContext
from tests.test_alerts_concurrency_controls import ACCOUNT, concurrency_call

TENANT = "acme"
NOW = datetime.now(UTC).replace(microsecond=0)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reports(function: str, durations_ms: list[float]) -> list[Any]:
    """platform.report records, as a Telemetry API extension posts them."""
    body = []
    for i, ms in enumerate(durations_ms):
        end = NOW - timedelta(seconds=60 - i * 0.5)
        body.append({"time": _iso(end), "type": "platform.report", "record": {
            "requestId": f"{function}-{i}", "status": "success",
            "metrics": {"durationMs": ms, "billedDurationMs": ms, "memorySizeMB": 128, "maxMemoryUsedMB": 60},
        }})  # fmt: skip
    ctx = IngestContext(tenant=TENANT, params={"function": function})
    return telemetry.parse(orjson.dumps(body), ctx).events


def configured(
    function: str, timeout_s: int, action: str = "UpdateFunctionConfiguration20150331v2", hours_ago: float = 2
) -> list[Any]:
    """The timeout as set in the audit trail, through the CloudTrail parser."""
    record = configuration_record(function, timeout_s, NOW - timedelta(hours=hours_ago), action)
    return cloudtrail.parse(orjson.dumps({"Records": [record]}), IngestContext(tenant=TENANT, audit=True)).events


def configuration_record(
    function: str, timeout_s: int, at: datetime, action: str = "UpdateFunctionConfiguration20150331v2"
) -> dict:
    """A function's configuration call as CloudTrail writes it (the response carries the whole configuration)."""
    return {
        "eventVersion": "1.09", "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "lambda.amazonaws.com", "eventName": action, "awsRegion": "eu-west-1",
        "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci"},
        "sourceIPAddress": "203.0.113.1", "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"functionName": function, "timeout": timeout_s},
        "responseElements": {"functionName": function, "timeout": timeout_s, "memorySize": 128},
        "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT,
    }  # fmt: skip


def timed_out_lines(function: str, seconds: float) -> list[Any]:
    """A CloudWatch Logs subscription delivery with the line Lambda writes when an invocation times out."""
    end = NOW - timedelta(seconds=30)
    message = f"{_iso(end)} {function}-late Task timed out after {seconds:.2f} seconds"
    body = {"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": f"/aws/lambda/{function}",
            "logStream": "2026/12/07/[$LATEST]0123456789abcdef", "subscriptionFilters": ["fnscope"],
            "logEvents": [{"id": "1", "timestamp": int(end.timestamp() * 1000), "message": message}]}  # fmt: skip
    return cloudwatch.parse(orjson.dumps(body), IngestContext(tenant=TENANT)).events


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    client = open_store(f"chdb://{tmp_path_factory.mktemp('fleet-states') / 'store'}")
    events = (
        reports("near-timeout", [2900.0] * 200) + configured("near-timeout", 3)  # 97 % of 3 s
        + reports("getting-close", [2500.0] * 200) + configured("getting-close", 3, "CreateFunction20150331")  # 83 %
        + reports("was-close", [2900.0] * 200) + configured("was-close", 30, hours_ago=1) + configured("was-close", 3)  # raised since
        + reports("logs-only", [9800.0] * 200) + timed_out_lines("logs-only", 10)  # 98 % of the 10 s the lines state
        + reports("fine", [120.0] * 200) + configured("fine", 3)
    )  # fmt: skip
    for e in concurrency_call("switched-off", NOW.timestamp() - 600, 0):
        e.tenant = TENANT
        events.append(e)
    writer = EventWriter(client)
    try:
        writer.write(events)
        writer.health.flush()
        yield client
    finally:
        writer.health.stop()
        client.close()


def _functions_table(client: Client) -> dict[str, dict[str, Any]]:
    (panel,) = [p for p in FLEET.panels if p.title == "Functions"]
    sql, params = to_clickhouse(panel.sql, NOW - timedelta(hours=1), NOW + timedelta(minutes=1), 60, {"tenant": TENANT})
    result = client.query(sql, parameters=params)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    assert [STATE_ORDER.index(r["state"]) for r in rows] == sorted(STATE_ORDER.index(r["state"]) for r in rows)
    return {r["function"]: r for r in rows}


def test_p99_against_the_timeout_colours_the_state(store: Client) -> None:
    table = _functions_table(store)
    assert P99_OF_TIMEOUT_WARN < 2500 / 3000 < P99_OF_TIMEOUT_CRITICAL < 2900 / 3000
    assert (table["near-timeout"]["timeout_ms"], table["near-timeout"]["state"]) == (3000, "critical")
    assert (table["getting-close"]["timeout_ms"], table["getting-close"]["state"]) == (3000, "warning")
    assert (table["was-close"]["timeout_ms"], table["was-close"]["state"]) == (30_000, "ok")  # the newest setting wins
    assert (table["logs-only"]["timeout_ms"], table["logs-only"]["state"]) == (10_000, "critical")
    assert (table["fine"]["timeout_ms"], table["fine"]["state"]) == (3000, "ok")


def test_a_disabled_function_shows_though_it_ran_nothing(store: Client) -> None:
    table = _functions_table(store)
    off = table["switched-off"]
    assert off["state"] == "disabled" and off["invocations"] == 0 and off["p99_ms"] is None
    assert list(table).index("switched-off") == 2  # after the two critical ones, before the warning
