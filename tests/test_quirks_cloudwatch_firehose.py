"""CloudWatch Logs subscription and Firehose HTTP-endpoint quirks, pinned by fixtures written for these tests
(tests/fixtures/cloudwatch, tests/fixtures/firehose).

CloudWatch Logs: a gzip DATA_MESSAGE from a Lambda log group (platform lines, runtime lines, a bare line that
falls in its invocation, a REPORT whose X-Ray part follows a line break inside the same message); the same
message in the ``{"awslogs": {"data": ...}}`` Lambda-trigger form and zlib-deflated rather than gzip; a
CONTROL_MESSAGE, which gives no events and is no error; ``extractedFields`` naming the source account and region
of a cross-account delivery; several JSON objects back to back (Firehose framing), plain, gzip, as gzip members
and as NDJSON; truncated base64 in ``awslogs.data`` (a dead letter with the reason, a 400 when nothing else came);
Lambda@Edge log groups (``/aws/lambda/us-east-1.NAME``) and numbered versions in the log stream name. A line and a
REPORT delivered by the Telemetry API and by a subscription are one fact each.

Firehose: records that are gzip CloudWatch subscription payloads and records that are JSON lines or text; the
delivery ``timestamp`` as a string; a body that is not JSON (UnusableBody, a 400); bad records dead-lettered
with the rest kept; the answer Firehose expects (``requestId`` and ``timestamp`` in milliseconds, plus
``errorMessage`` on errors); Lambda transformation events accepted as deliveries.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from fnscope.collector.formats import cloudwatch, firehose, telemetry
from fnscope.decoding.errors import UnusableBody
from fnscope.events import DeadLetter, Event, stable_id
from fnscope.sink import IngestContext
from tests.fixtures.formats import (
    awslogs,
    b64,
    dead_letters,
    deflated,
    firehose_body,
    gzipped,
    invocations,
    load_json,
    logs,
    post,
    read_bytes,
)

CTX = IngestContext(tenant="acme", params={"region": "eu-west-1"})
RID = "5a1f0c2e-xmpl-4e9a-8c6f-2d4b1e0a9f37"
STREAM = "2024/03/05/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def at(second: int, millis: int = 0) -> datetime:
    return datetime(2024, 3, 5, 10, 0, second, millis * 1000, tzinfo=UTC)


def lambda_message() -> bytes:
    return orjson.dumps(load_json("cloudwatch", "lambda_data_message.json"))


def dumped(events: list[Event], *exclude: str) -> list[dict[str, Any]]:
    return [e.model_dump(exclude=set(exclude)) for e in events]


# --- CloudWatch Logs subscriptions ----------------------------------------------------------------------------


def test_gzip_data_message_from_a_lambda_log_group() -> None:
    parsed = cloudwatch.parse(gzipped(lambda_message()), CTX)
    assert parsed.dead == []
    assert parsed.meta == {"data_messages": 1, "control_messages": 0, "log_events": 5}
    found = logs(parsed.events)
    assert [(e.log_type, e.message) for e in found] == [
        ("platform", f"START RequestId: {RID} Version: $LATEST"),
        ("function", "looking up order 17"),
        ("function", "order 17 found"),
        ("platform", f"END RequestId: {RID}"),
        (
            "platform",
            f"REPORT RequestId: {RID}\tDuration: 120.75 ms\tBilled Duration: 121 ms\tMemory Size: 256 MB\t"
            "Max Memory Used: 88 MB\tInit Duration: 380.25 ms\t\nXRAY TraceId: 1-65e6f0a1-0f1e2d3c4b5a69788796a5b4\t"
            "SegmentId: 5d4c3b2a1f0e9d8c\tSampled: true\t",
        ),
    ]
    # who and where: the function from the log group, the version from the stream, the account from `owner`
    assert {(e.function, e.version, e.account, e.region, e.log_group, e.log_stream) for e in found} == {
        ("orders-api", "$LATEST", "111122223333", "eu-west-1", "/aws/lambda/orders-api", STREAM)
    }
    assert {(e.function, e.version, e.account, e.region) for e in invocations(parsed.events)} == {
        ("orders-api", "$LATEST", "111122223333", "eu-west-1")
    }
    assert [e.time for e in found] == [at(0, 400), at(0, 412), at(0, 450), at(0, 526), at(0, 527)]
    assert [e.request_id for e in found] == [RID] * 5  # the bare line falls between its START and END
    assert [e.level for e in found if e.log_type == "function"] == ["INFO", ""]
    # CloudWatch's id, which is unique within its log group only
    assert found[0].event_id == stable_id(
        found[0].log_group, "38121546328416125218731562738391829334092146522361921536"
    )

    [start] = invocations(parsed.events, "start")
    assert (start.request_id, start.version, start.start_time) == (RID, "$LATEST", at(0, 400))
    [report] = invocations(parsed.events, "report")
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb) == (
        120.75,
        121,
        256,
        88,
    )
    assert (report.init_duration_ms, report.cold_start) == (380.25, True)
    assert report.trace_id == "1-65e6f0a1-0f1e2d3c4b5a69788796a5b4"  # after the line break, same message
    assert report.start_time == at(0, 527) - timedelta(milliseconds=120.75)


def test_awslogs_lambda_trigger_form_gives_the_same_events() -> None:
    direct = cloudwatch.parse(gzipped(lambda_message()), CTX)
    wrapped = cloudwatch.parse(awslogs(lambda_message()), CTX)
    assert wrapped.dead == [] and wrapped.meta == direct.meta
    assert dumped(wrapped.events) == dumped(direct.events)


def test_zlib_deflated_payload_gives_the_same_events() -> None:
    direct = cloudwatch.parse(gzipped(lambda_message()), CTX)
    for body in (deflated(lambda_message()), awslogs(lambda_message(), deflated)):
        parsed = cloudwatch.parse(body, CTX)
        assert parsed.dead == [] and parsed.meta == direct.meta
        assert dumped(parsed.events) == dumped(direct.events)


def test_control_message_gives_no_events_and_is_no_error() -> None:
    raw = read_bytes("cloudwatch", "control_message.json")
    for body in (raw, gzipped(raw), awslogs(raw)):
        parsed = cloudwatch.parse(body, CTX)
        assert (parsed.events, parsed.dead) == ([], [])
        assert parsed.meta == {"data_messages": 0, "control_messages": 1, "log_events": 0}
    answer, stored = post("/ingest/cloudwatch", gzipped(raw))
    assert (answer.status_code, answer.json(), stored) == (200, {"accepted": 0, "rejected": 0}, [])

    # a health check in the same Firehose batch as data does not disturb the data
    mixed = cloudwatch.parse(gzipped(raw + b"\n" + lambda_message()), CTX)
    assert mixed.meta == {"data_messages": 1, "control_messages": 1, "log_events": 5}
    assert len(logs(mixed.events)) == 5 and mixed.dead == []


def test_extracted_fields_name_the_source_account_and_region() -> None:
    parsed = cloudwatch.parse(read_bytes("cloudwatch", "cross_account.json"), CTX)
    assert parsed.dead == []
    assert [(e.message, e.account, e.region) for e in logs(parsed.events)] == [
        ("ledger closed for 2024-03-04", "111111111111", "us-east-1"),
        ("ledger opened for 2024-03-05", "222222222222", "ap-southeast-2"),
    ]
    assert [e.fields for e in logs(parsed.events)] == [
        {"@aws.account": "111111111111", "@aws.region": "us-east-1"},
        {"@aws.account": "222222222222", "@aws.region": "ap-southeast-2"},
    ]
    assert {(e.function, e.version) for e in parsed.events} == {("ledger", "5")}


def test_json_objects_back_to_back_plain_gzip_members_and_ndjson() -> None:
    concatenated = read_bytes("cloudwatch", "concatenated_objects.txt")
    first, second = (orjson.dumps(v) for v in orjson.loads(b"[" + concatenated.replace(b"}{", b"},{") + b"]"))
    bodies = {
        "plain": concatenated,
        "gzip": gzipped(concatenated),
        "gzip members": gzipped(first) + gzipped(second),
        "ndjson": first + b"\n" + second + b"\n",
    }
    for name, body in bodies.items():
        parsed = cloudwatch.parse(body, CTX)
        assert parsed.dead == [], name
        assert parsed.meta["data_messages"] == 2, name
        assert [(e.log_group, e.function, e.message) for e in logs(parsed.events)] == [
            ("/aws/lambda/orders-api", "orders-api", "first stream's line"),
            ("/ecs/billing-worker", "", "second stream's line"),  # not a Lambda group: no function
        ], name


def test_truncated_base64_is_a_dead_letter_with_the_reason() -> None:
    body = read_bytes("cloudwatch", "truncated_awslogs.json")
    parsed = cloudwatch.parse(body, CTX)
    assert parsed.events == []
    [letter] = parsed.dead
    assert letter.reason.startswith("awslogs.data is not valid base64 (truncated?)")
    assert letter.raw == orjson.dumps(orjson.loads(body)) and letter.source == "cloudwatch"

    # cut on a 4-character boundary it is valid base64, but of a gzip stream that stops short
    cut = orjson.dumps({"awslogs": {"data": b64(gzipped(lambda_message()))[:120]}})
    [short] = cloudwatch.parse(cut, CTX).dead
    assert short.reason == "compressed data is truncated"

    answer, stored = post("/ingest/cloudwatch", body)
    assert answer.status_code == 400
    assert answer.json()["detail"] == {"accepted": 0, "rejected": 1, "errors": [letter.reason]}
    assert [d.reason for d in dead_letters(stored)] == [letter.reason]


def test_truncated_message_beside_good_ones_keeps_the_good_ones() -> None:
    good = awslogs(lambda_message())
    body = good + b"\n" + read_bytes("cloudwatch", "truncated_awslogs.json")
    parsed = cloudwatch.parse(body, CTX)
    assert len(logs(parsed.events)) == 5
    assert [d.reason.split(":")[0] for d in parsed.dead] == ["awslogs.data is not valid base64 (truncated?)"]
    answer, stored = post("/ingest/cloudwatch", body)
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 7 and answer.json()["rejected"] == 1  # 5 lines, START and REPORT facts
    assert len(dead_letters(stored)) == 1


def test_lambda_edge_log_group_and_numbered_version() -> None:
    parsed = cloudwatch.parse(read_bytes("cloudwatch", "lambda_edge.json"), CTX)
    [report] = invocations(parsed.events, "report")
    assert (report.function, report.version, report.request_id) == (
        "edge-auth",
        "12",
        "2e3f4a5b-xmpl-4c6d-8e7f-9a0b1c2d3e4f",
    )
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb) == (4.12, 5, 128)
    [log] = logs(parsed.events)
    assert (log.function, log.version, log.log_group) == ("edge-auth", "12", "/aws/lambda/us-east-1.edge-auth")


def test_a_line_and_a_report_sent_by_telemetry_and_by_subscription_are_one_fact_each() -> None:
    by_telemetry = telemetry.parse(
        read_bytes("telemetry", "lifecycle.json"), IngestContext(tenant="acme", params={"function": "orders-api"})
    )
    by_subscription = cloudwatch.parse(gzipped(lambda_message()), CTX)
    line = "looking up order 17"
    [via_extension] = [e for e in logs(by_telemetry.events) if e.message == line]
    [via_cloudwatch] = [e for e in logs(by_subscription.events) if e.message == line]
    assert via_extension.event_id == via_cloudwatch.event_id
    assert (
        invocations(by_telemetry.events, "report")[0].event_id
        == invocations(by_subscription.events, "report")[0].event_id
    )
    assert (
        invocations(by_telemetry.events, "start")[0].event_id
        == invocations(by_subscription.events, "start")[0].event_id
    )


# --- Firehose HTTP-endpoint deliveries -------------------------------------------------------------------------

FIREHOSE_CTX = IngestContext(tenant="acme", params={"function": "app-worker", "region": "eu-west-1"})
DELIVERY_ID = "4c2e1a0b-9f8d-4e7c-a6b5-3d2c1b0a9f8e"


def test_records_that_are_cloudwatch_subscription_payloads() -> None:
    control = read_bytes("cloudwatch", "control_message.json")
    body = firehose_body("req-cw-1", 1709632805000, [gzipped(lambda_message()), gzipped(control)])
    parsed = firehose.parse(body, FIREHOSE_CTX)
    assert parsed.dead == []
    assert parsed.meta == {
        "request_id": "req-cw-1",
        "records": 2,
        "data_messages": 1,
        "control_messages": 1,
        "log_events": 5,
    }
    direct = cloudwatch.parse(gzipped(lambda_message()), CTX)
    assert dumped(parsed.events, "source") == dumped(direct.events, "source")
    assert {e.source for e in parsed.events} == {"firehose"}
    assert {e.function for e in parsed.events} == {"orders-api"}  # the log group names it, not the URL


def test_records_that_are_json_lines_or_text_and_a_string_timestamp() -> None:
    body = read_bytes("firehose", "delivery.json")
    parsed = firehose.parse(body, FIREHOSE_CTX)
    assert parsed.dead == [] and parsed.meta["request_id"] == DELIVERY_ID
    found = logs(parsed.events)
    delivered = datetime(2024, 3, 5, 10, 0, 5, tzinfo=UTC)  # "timestamp": "1709632805000", a string
    assert [(e.time, e.level, e.message) for e in found] == [
        (delivered, "INFO", "order placed"),  # its own "timestamp" stays a field
        (delivered, "WARN", "inventory low"),
        (delivered, "", "worker started"),
        (delivered, "ERROR", "ERROR queue unreachable"),
    ]
    assert found[0].fields["orderId"] == "o-1001" and found[1].fields["sku"] == "SKU-7"
    assert found[0].fields["timestamp"] == "2024-03-05T10:00:03.000Z"
    assert {(e.function, e.source, e.tenant) for e in found} == {("app-worker", "firehose", "acme")}
    again = firehose.parse(body, FIREHOSE_CTX)
    assert [e.event_id for e in again.events] == [e.event_id for e in found]  # a re-delivery lands on the same ids
    assert len({e.event_id for e in found}) == 4


def test_body_that_is_not_json_is_unusable_and_answered_400_in_the_firehose_shape() -> None:
    body = read_bytes("firehose", "invalid_missing_comma.txt")
    with pytest.raises(UnusableBody, match="Firehose body is not JSON"):
        firehose.parse(body, FIREHOSE_CTX)
    request_id = "e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9"
    before = int(time.time() * 1000)
    answer, stored = post("/ingest/firehose", body, headers={"X-Amz-Firehose-Request-Id": request_id})
    assert answer.status_code == 400
    reply = answer.json()
    assert set(reply) == {"requestId", "timestamp", "errorMessage"}
    assert reply["requestId"] == request_id and reply["errorMessage"].startswith("Firehose body is not JSON")
    assert isinstance(reply["timestamp"], int) and before <= reply["timestamp"] <= int(time.time() * 1000)
    [letter] = stored
    assert isinstance(letter, DeadLetter) and letter.raw == body and letter.reason == reply["errorMessage"]


def test_bad_records_are_dead_lettered_and_the_rest_kept() -> None:
    records: list[Any] = [
        {"data": b64(b"worker started\n")},
        {"data": "!!not base64!!"},
        "not an object",
        {"data": 42},
        {"data": b64(gzipped(lambda_message())[:-8])},
    ]
    body = orjson.dumps({"requestId": "req-bad-1", "timestamp": 1709632805000, "records": records})
    parsed = firehose.parse(body, FIREHOSE_CTX)
    assert [e.message for e in logs(parsed.events)] == ["worker started"]
    assert [d.reason for d in parsed.dead] == [
        "Firehose record 1: `data` is not valid base64: Only base64 data is allowed",
        "Firehose record 2: not an object",
        "Firehose record 3: missing or non-string `data`",
        "Firehose record 4: compressed data is truncated",
    ]
    assert [orjson.loads(d.raw) for d in parsed.dead] == records[1:]

    answer, stored = post("/ingest/firehose", body, headers={"X-Amz-Firehose-Request-Id": "req-bad-1"})
    assert answer.status_code == 200  # delivered: a retry would not mend the bad records
    assert answer.json()["requestId"] == "req-bad-1"
    assert len(dead_letters(stored)) == 4 and len(logs(stored)) == 1


def test_answer_has_the_request_id_and_a_millisecond_timestamp() -> None:
    before = int(time.time() * 1000)
    answer, stored = post(
        "/ingest/firehose",
        read_bytes("firehose", "delivery.json"),
        headers={"X-Amz-Firehose-Request-Id": DELIVERY_ID, "Content-Type": "application/json"},
        params={"function": "app-worker"},
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    reply = answer.json()
    assert set(reply) == {"requestId", "timestamp"}
    assert reply["requestId"] == DELIVERY_ID
    assert isinstance(reply["timestamp"], int) and before <= reply["timestamp"] <= int(time.time() * 1000)
    assert [e.function for e in logs(stored)] == ["app-worker"] * 4


def test_lambda_transformation_event_is_accepted_as_a_delivery() -> None:
    parsed = firehose.parse(read_bytes("firehose", "transformation_event.json"), FIREHOSE_CTX)
    assert parsed.dead == [] and parsed.meta["request_id"] == "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910"
    plain, structured = logs(parsed.events)
    assert (plain.message, plain.level, plain.time) == ("cache warmed", "", datetime.fromtimestamp(1709632806.123, UTC))
    assert (structured.level, structured.message, structured.fields["refundId"]) == ("ERROR", "refund failed", "r-88")
    assert structured.time == datetime.fromtimestamp(1709632806.456, UTC)  # approximateArrivalTimestamp
    assert plain.event_id != structured.event_id
