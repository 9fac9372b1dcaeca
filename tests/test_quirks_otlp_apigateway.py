"""OTLP/HTTP logs and API Gateway access-log quirks, pinned by fixtures written for these tests
(tests/fixtures/otlp, tests/fixtures/apigateway).

OTLP/JSON: trace and span ids as hex in upper case (any case is hex, not base64), ``intValue`` and
``timeUnixNano`` written as strings (64-bit integers in JSON), ``observedTimeUnixNano`` when the record has no
time, resource attributes naming the function (``faas.name``, else ``service.name``), version, region, account
and log group; a ``kvlistValue`` body as JSON; SeverityNumber ranges mapped to levels; the protobuf encoding of
the same content (plain and gzip) giving the same events, and the endpoint's answer for it.

API Gateway: lines that the JSON access-log format's ``$context`` templates of REST and HTTP APIs produce (the
variables' names as users write them, values as API Gateway fills them in): status as a string or a number,
``-`` for a variable without a value, ``requestTime`` in its CLF form with any UTC offset, ``requestTimeEpoch``
in seconds or milliseconds, as a number or a string; ``$context.path`` over ``resourcePath``; throttling; the
function from an integration ARN; CLF and CSV lines (the other templates) dead-lettered with the reason, and a
400 when nothing in the body is a JSON line.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from fnscope.collector.formats import apigateway, otlp
from fnscope.collector.formats.base import Parsed
from fnscope.decoding.errors import UnusableBody
from fnscope.events import ApiAccess, FunctionLog
from fnscope.sink import IngestContext
from tests.fixtures.formats import dead_letters, gzipped, load_json, logs, post, read_bytes, read_lines

CTX = IngestContext(tenant="acme")


# --- OTLP/HTTP logs -------------------------------------------------------------------------------------------


def otlp_json() -> Parsed:
    return otlp.parse(read_bytes("otlp", "lambda_logs.json"), CTX, "application/json")


def otlp_events(parsed: Parsed) -> list[FunctionLog]:
    found = logs(parsed.events)
    assert len(found) == len(parsed.events)
    return found


def as_protobuf(doc: dict[str, Any]) -> bytes:
    """The same request in the protobuf encoding; hex ids converted here, independently of the parser."""
    doc = copy.deepcopy(doc)
    for resource_logs in doc["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    return json_format.ParseDict(doc, ExportLogsServiceRequest()).SerializeToString()


def test_otlp_json_upper_case_hex_ids_and_64_bit_integers_as_strings() -> None:
    parsed = otlp_json()
    assert parsed.meta == {"rejected_log_records": 0, "error_message": ""} and parsed.dead == []
    declined, slow, invoice = otlp_events(parsed)

    assert declined.trace_id == "0af7651916cd43dd8448eb211c80319c"  # "0AF76519...": hex, upper case
    assert declined.fields["span_id"] == "b7ad6b7169203331"
    assert invoice.trace_id == "5b8efff798038103d269b633813fc60c" and invoice.fields["span_id"] == "eee19b7ec3c1b174"
    assert slow.trace_id == "" and "span_id" not in slow.fields

    assert declined.time == datetime(2024, 3, 5, 10, 0, 0, 123456, tzinfo=UTC)  # "1709632800123456789" ns
    assert slow.time == datetime(2024, 3, 5, 10, 0, 1, tzinfo=UTC)  # no timeUnixNano: observedTimeUnixNano
    assert invoice.time == datetime(2024, 3, 5, 10, 0, 3, tzinfo=UTC)

    assert (declined.fields["order.items"], slow.fields["latency_ms"]) == ("3", "2250")  # intValue "3", "2250"
    assert (declined.fields["order.total"], declined.fields["retry"]) == ("12.5", "false")
    assert declined.message == "card declined"
    assert json.loads(invoice.message) == {"event": "invoice.sent", "cents": 1250}  # kvlist body, int64 "1250"


def test_otlp_resource_attributes_name_the_function_and_where_it_runs() -> None:
    declined, slow, invoice = otlp_events(otlp_json())
    for log in (declined, slow):
        assert (log.function, log.version, log.region, log.account) == (
            "checkout",
            "14",
            "eu-central-1",
            "111122223333",
        )
        assert log.log_group == "/aws/lambda/checkout"  # the first of aws.log.group.names
        assert log.log_stream == "2024/03/05/[14]0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        assert (log.fields["service.name"], log.fields["faas.max_memory"]) == ("shop", "536870912")
        assert (log.fields["otel.scope.name"], log.fields["otel.scope.version"]) == ("checkout.handler", "2.0.1")
        assert (log.source, log.tenant) == ("otlp", "acme")
    assert declined.request_id == "5a1f0c2e-xmpl-4e9a-8c6f-2d4b1e0a9f37"  # faas.invocation_id
    assert slow.request_id == ""
    assert (invoice.function, invoice.version, invoice.region, invoice.account) == ("billing", "", "", "")
    assert invoice.fields["otel.scope.name"] == "billing.events"


def test_otlp_severity_text_and_number() -> None:
    declined, slow, invoice = otlp_events(otlp_json())
    assert (declined.level, slow.level, invoice.level) == ("ERROR", "WARN", "INFO")  # text; 13 -> WARN; 9 -> INFO


def _one_record(record: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})


@pytest.mark.parametrize(
    ("number", "level"),
    [
        (0, ""),
        (1, "TRACE"),
        (4, "TRACE"),
        (5, "DEBUG"),
        (8, "DEBUG"),
        (9, "INFO"),
        (12, "INFO"),
        (13, "WARN"),
        (16, "WARN"),
        (17, "ERROR"),
        (20, "ERROR"),
        (21, "FATAL"),
        (24, "FATAL"),
    ],
)
def test_otlp_severity_number_ranges(number: int, level: str) -> None:
    body = _one_record({"timeUnixNano": "1709632800000000000", "severityNumber": number, "body": {"stringValue": "x"}})
    [log] = otlp.parse(body, CTX, "application/json").events
    assert isinstance(log, FunctionLog) and log.level == level


def test_otlp_protobuf_of_the_same_content_gives_the_same_events() -> None:
    from_json = otlp_json()
    body = as_protobuf(load_json("otlp", "lambda_logs.json"))
    for encoded, content_type in ((body, "application/x-protobuf"), (gzipped(body), "application/x-protobuf")):
        from_proto = otlp.parse(encoded, CTX, content_type)
        assert [e.model_dump() for e in from_proto.events] == [e.model_dump() for e in from_json.events]
    assert [e.event_id for e in from_json.events] == [e.event_id for e in otlp_json().events]
    assert len({e.event_id for e in from_json.events}) == 3

    answer, stored = post("/v1/logs", body, headers={"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    reply = ExportLogsServiceResponse()
    reply.ParseFromString(answer.content)
    assert not reply.HasField("partial_success")
    assert [e.message for e in logs(stored)] == [e.message for e in logs(from_json.events)]


# --- API Gateway access logs --------------------------------------------------------------------------------------

API_CTX = IngestContext(tenant="acme", params={"api": "a1b2c3d4e5", "stage": "prod"})


def access(folder_file: str) -> list[ApiAccess]:
    parsed = apigateway.parse(read_bytes("apigateway", folder_file), API_CTX)
    assert parsed.dead == []
    found = [e for e in parsed.events if isinstance(e, ApiAccess)]
    assert len(found) == len(parsed.events)
    return found


def test_rest_api_lines() -> None:
    lines = read_lines("apigateway", "rest_api.ndjson")
    get, post_, put, throttled = access("rest_api.ndjson")
    assert [e.raw for e in (get, post_, put, throttled)] == [line.strip() for line in lines]
    assert {(e.api_id, e.stage, e.tenant, e.source) for e in (get, post_, put, throttled)} == {
        ("a1b2c3d4e5", "prod", "acme", "apigateway")
    }

    assert (get.request_id, get.method, get.route, get.protocol) == (
        "7d1c2e3f-0a4b-4c5d-9e6f-1a2b3c4d5e01",
        "GET",
        "/orders/{orderId}",
        "HTTP/1.1",
    )
    assert (get.status, get.response_length, get.source_ip) == (200, 1024, "203.0.113.7")  # "200", "1024"
    assert get.time == datetime(2024, 3, 5, 10, 0, 0, tzinfo=UTC)  # "05/Mar/2024:10:00:00 +0000"
    assert get.throttled is False and get.error_message == ""

    assert (post_.status, post_.response_length, post_.route) == (502, 36, "/orders")
    assert post_.time == datetime(2024, 3, 5, 10, 0, 1, tzinfo=UTC)  # "05/Mar/2024:05:00:01 -0500"

    assert put.time == datetime(2024, 3, 5, 10, 0, 2, 345000, tzinfo=UTC)  # requestTimeEpoch in milliseconds
    assert (put.status, put.integration_status) == (200, 200)  # "status":200, a number
    assert (put.path, put.route) == ("/prod/orders/17", "/orders/{orderId}")  # $context.path wins as the path
    assert (put.latency_ms, put.integration_latency_ms, put.response_length) == (48.0, 41.0, 512)
    assert put.region == "eu-west-1"  # from the execute-api domain name

    assert (throttled.status, throttled.throttled, throttled.error_message) == (429, True, "Too Many Requests")
    assert throttled.response_length is None  # "-": API Gateway's no value


def test_http_api_lines() -> None:
    delete, not_found, timed_out = access("http_api.ndjson")
    assert (delete.request_id, delete.route, delete.status, delete.response_length) == (
        "Uq3PkFvKoAMEbQC=",
        "DELETE /carts/{id}",
        204,
        None,
    )
    assert delete.time == datetime(2024, 3, 5, 10, 0, 4, tzinfo=UTC)

    assert (not_found.route, not_found.status, not_found.protocol, not_found.response_length) == (
        "$default",
        404,
        "HTTP/2.0",
        0,
    )
    assert not_found.time == datetime(2024, 3, 5, 10, 0, 5, tzinfo=UTC)  # requestTimeEpoch "1709632805": seconds

    assert (timed_out.status, timed_out.error_message) == (503, "Lambda invocation timed out")
    assert timed_out.function == "checkout"  # from the function ARN with its alias
    assert (timed_out.integration_status, timed_out.integration_latency_ms) == (0, 30001.0)  # status "-"
    assert timed_out.throttled is False


@pytest.mark.parametrize(
    ("time_field", "expected"),
    [
        ('"requestTime":"05/Mar/2024:10:00:00 +0000"', datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ('"requestTime":"05/Mar/2024:11:30:00 +0130"', datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ('"requestTime":"04/Mar/2024:23:00:00 -1100"', datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ('"requestTimeEpoch":1709632800123', datetime(2024, 3, 5, 10, 0, 0, 123000, tzinfo=UTC)),
        ('"requestTimeEpoch":"1709632800123"', datetime(2024, 3, 5, 10, 0, 0, 123000, tzinfo=UTC)),
        ('"requestTimeEpoch":"1709632800"', datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ('"requestTimeEpoch":1709632800', datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
    ],
)
def test_request_time_formats(time_field: str, expected: datetime) -> None:
    line = '{"requestId":"r-7d1c2e3f","httpMethod":"GET","status":"200",' + time_field + "}"
    [event] = apigateway.parse(line.encode(), API_CTX).events
    assert isinstance(event, ApiAccess) and event.time == expected


@pytest.mark.parametrize("status", ['"status":"503"', '"status":503', '"status":" 503 "'])
def test_status_as_a_string_or_a_number(status: str) -> None:
    line = '{"requestId":"r-1","requestTime":"05/Mar/2024:10:00:00 +0000",' + status + "}"
    [event] = apigateway.parse(line.encode(), API_CTX).events
    assert isinstance(event, ApiAccess) and event.status == 503


def test_clf_and_csv_template_lines_are_dead_lettered() -> None:
    json_line = read_lines("apigateway", "rest_api.ndjson")[0]
    others = read_lines("apigateway", "clf_lines.log")
    parsed = apigateway.parse("\n".join([json_line, *others]).encode(), API_CTX)
    assert [e.request_id for e in parsed.events] == ["7d1c2e3f-0a4b-4c5d-9e6f-1a2b3c4d5e01"]
    assert [(d.reason, d.raw.decode()) for d in parsed.dead] == [(apigateway.NOT_JSON, line) for line in others]

    only_others = "\n".join(others).encode()
    with pytest.raises(UnusableBody, match="use the JSON access-log format"):
        apigateway.parse(only_others, API_CTX)
    answer, stored = post("/ingest/apigateway", only_others, params={"api": "a1b2c3d4e5"})
    assert answer.status_code == 400 and "use the JSON access-log format" in answer.json()["detail"]
    assert len(dead_letters(stored)) == 1  # the whole body, kept with the reason
