"""CloudTrail records inside CloudWatch Logs: a trail that delivers to a log group writes one record per log event,
and a subscription (directly, or through Firehose) carries them to fnscope. They become the audit events the trail's
S3 files give (same ids, same content), so the two deliveries of one record are stored once; only from a token that
may send audit events, and never from a Lambda function's own log group.

The payloads are built as AWS sends them: the DATA_MESSAGE gzip (the subscription destination's body), the
same gzip base64-encoded as a Firehose HTTP-endpoint record. The records are the detonation set
(tests/fixtures/cloudtrail_set.py) the S3-file tests import.
"""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fnscope.collector.formats import cloudtrail, cloudwatch, firehose
from fnscope.events import AuditEvent, FunctionLog
from fnscope.sink import IngestContext
from tests.conftest import FNSCOPE, ROOT
from tests.fixtures.cloudtrail_set import ACCOUNT, REGION
from tests.fixtures.formats import b64, firehose_body, gzipped, subscription_message
from tests.test_audit_support import FIXTURE_SET
from tests.test_import_cloudtrail import start_up

TRAIL_GROUP = f"aws-cloudtrail-logs-{ACCOUNT}-5e1a9c2b"
TRAIL_STREAM = f"{ACCOUNT}_CloudTrail_{REGION}"  # how CloudTrail names its stream in the group
DELIVERED_MS = 1722520800000  # when CloudWatch Logs took the records (after their eventTime)


def records() -> list[dict[str, Any]]:
    return FIXTURE_SET.all_records()


def trail_message(recs: list[dict[str, Any]], group: str = TRAIL_GROUP) -> bytes:
    """The subscription DATA_MESSAGE of a trail's group: each log event's message is one record's JSON."""
    lines = [(DELIVERED_MS + i, orjson.dumps(r).decode()) for i, r in enumerate(recs)]
    return orjson.dumps(subscription_message(group, TRAIL_STREAM, lines))


def as_from_s3(recs: list[dict[str, Any]], ctx: IngestContext) -> list[AuditEvent]:
    parsed = cloudtrail.parse(orjson.dumps({"Records": recs}), ctx)
    assert parsed.dead == []
    return [e for e in parsed.events if isinstance(e, AuditEvent)]


def audit_and_lines(events: list[Any]) -> tuple[list[AuditEvent], list[FunctionLog]]:
    return [e for e in events if isinstance(e, AuditEvent)], [e for e in events if isinstance(e, FunctionLog)]


# --- the parsers ----------------------------------------------------------------------------------------------


def test_subscription_records_map_exactly_as_the_s3_file_does() -> None:
    ctx = IngestContext(tenant="acme", audit=True)
    parsed = cloudwatch.parse(gzipped(trail_message(records())), ctx)
    audit, lines = audit_and_lines(parsed.events)
    assert parsed.dead == [] and lines == []
    assert [e.model_dump() for e in audit] == [e.model_dump() for e in as_from_s3(records(), ctx)]
    assert len(audit) == len(records())


def test_firehose_framing_gives_the_same_audit_events() -> None:
    ctx = IngestContext(tenant="acme", audit=True)
    half = len(records()) // 2
    body = firehose_body(
        "req-1",
        DELIVERED_MS,
        [gzipped(trail_message(records()[:half])), gzipped(trail_message(records()[half:]))],
    )
    parsed = firehose.parse(body, ctx)
    audit, lines = audit_and_lines(parsed.events)
    assert parsed.dead == [] and lines == []
    assert [e.model_dump() for e in audit] == [e.model_dump() for e in as_from_s3(records(), ctx)]


def test_without_the_audit_scope_the_records_stay_log_lines() -> None:
    recs = records()[:3]
    parsed = cloudwatch.parse(gzipped(trail_message(recs)), IngestContext(tenant="acme", audit=False))
    audit, lines = audit_and_lines(parsed.events)
    assert audit == []
    assert [orjson.loads(line.message) for line in lines] == recs


def test_a_lambda_functions_printed_record_is_never_an_audit_event() -> None:
    """A function can print anything; its group's lines are its output, not CloudTrail's."""
    forged = records()[:2]
    message = trail_message(forged, group="/aws/lambda/orders-api")
    parsed = cloudwatch.parse(gzipped(message), IngestContext(tenant="acme", audit=True))
    audit, lines = audit_and_lines(parsed.events)
    assert audit == [] and len(lines) == 2


@pytest.mark.parametrize("stream", ["2024/08/01/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0", "2024/08/01/[7]abc"])
def test_a_lambda_stream_in_a_custom_log_group_is_never_an_audit_event(stream: str) -> None:
    """A function with a custom log group (advanced logging controls) still writes Lambda's streams."""
    forged = records()[:2]
    lines = [(DELIVERED_MS + i, orjson.dumps(r).decode()) for i, r in enumerate(forged)]
    message = orjson.dumps(subscription_message("shared/app-logs", stream, lines))
    parsed = cloudwatch.parse(gzipped(message), IngestContext(tenant="acme", audit=True))
    audit, kept = audit_and_lines(parsed.events)
    assert audit == [] and [orjson.loads(line.message) for line in kept] == forged
    # the same records in the trail's own stream are audit events
    trail = cloudwatch.parse(gzipped(trail_message(forged, group="shared/app-logs")), IngestContext(audit=True))
    assert len(audit_and_lines(trail.events)[0]) == 2


def test_only_whole_records_are_taken_the_rest_of_a_group_stays_lines() -> None:
    """A line missing one of the keys every record has, JSON that is not an object, text: all stay lines."""
    rec = records()[0]
    partial = {k: v for k, v in rec.items() if k != "eventSource"}
    messages = [
        orjson.dumps(rec).decode(),
        orjson.dumps(partial).decode(),
        orjson.dumps([rec]).decode(),
        '{"eventVersion": "1.08", "note": "not a record"}',
        "plain text mentioning eventVersion",
    ]
    lines = [(DELIVERED_MS + i, m) for i, m in enumerate(messages)]
    body = orjson.dumps(subscription_message(TRAIL_GROUP, TRAIL_STREAM, lines))
    parsed = cloudwatch.parse(gzipped(body), IngestContext(tenant="acme", audit=True))
    audit, kept = audit_and_lines(parsed.events)
    assert [e.event_id for e in audit] == [rec["eventID"]]
    assert [line.message for line in kept] == messages[1:]


def test_a_record_that_cannot_be_mapped_is_a_dead_letter_and_costs_only_itself() -> None:
    good, bad = records()[0], {**records()[1], "eventTime": "yesterday"}
    lines = [(DELIVERED_MS, orjson.dumps(bad).decode()), (DELIVERED_MS + 1, orjson.dumps(good).decode())]
    body = orjson.dumps(subscription_message(TRAIL_GROUP, TRAIL_STREAM, lines))
    parsed = cloudwatch.parse(gzipped(body), IngestContext(tenant="acme", audit=True))
    assert [e.event_id for e in parsed.events] == [good["eventID"]]
    assert len(parsed.dead) == 1 and "eventTime" in parsed.dead[0].reason


# --- end to end: `fnscope up`, the CLI import, the subscription and Firehose endpoints ------------------------

TOKENS = {
    "tok-both": "both:telemetry+audit",  # what the CloudTrail template's Firehose holds
    "tok-import": "both:audit",
    "tok-tel": "tel:telemetry",  # a telemetry-only token: the records stay lines
    "tok-read-both": "both:read",
    "tok-read-tel": "tel:read",
}


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("up")
    env = {"FNSCOPE_TOKENS": ",".join(f"{token}:{grant}" for token, grant in TOKENS.items())}
    url, proc = start_up(tmp / "data", tmp / "up.log", env)
    yield url
    proc.stop()


def _get(url: str, path: str, token: str, **params: Any) -> Any:
    answer = httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def audit_rows(url: str, token: str) -> list[dict[str, Any]]:
    return _get(url, "/api/audit", token, since="20000d", limit=100_000)["results"]


def _post(url: str, path: str, body: bytes, token: str) -> httpx.Response:
    """Sent, then read back: ``?wait=stored`` answers once the request's records are in the store."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{url}{path}", params={"wait": "stored"}, content=body, headers=headers, timeout=60)


def test_both_deliveries_of_one_record_are_one_audit_row(instance: str, tmp_path: Path) -> None:
    url, recs = instance, records()
    ids = sorted(r["eventID"] for r in recs)
    # the S3 file first: the import as a user runs it
    trail_file = tmp_path / f"{ACCOUNT}_CloudTrail_{REGION}_20240801T1300Z_0001.json.gz"
    trail_file.write_bytes(gzip.compress(orjson.dumps({"Records": recs})))
    env = {"FNSCOPE_API": url, "FNSCOPE_TOKEN": "tok-import", "PATH": ""}
    run = subprocess.run(
        [*FNSCOPE, "import", "cloudtrail", str(trail_file), "--quiet"], cwd=ROOT, env=env, capture_output=True
    )
    assert run.returncode == 0, run.stderr
    from_s3 = sorted(audit_rows(url, "tok-read-both"), key=lambda r: r["event_id"])
    assert [r["event_id"] for r in from_s3] == ids

    # then the same records through the trail's log group: the subscription payload, and Firehose framing
    answer = _post(url, "/ingest/cloudwatch", gzipped(trail_message(recs)), "tok-both")
    assert answer.status_code == 200 and answer.json()["accepted"] == len(recs), answer.text
    delivery = firehose_body("req-7", DELIVERED_MS, [gzipped(trail_message(recs))])
    answer = _post(url, "/ingest/firehose", delivery, "tok-both")
    assert answer.status_code == 200 and "errorMessage" not in answer.json(), answer.text

    after = sorted(audit_rows(url, "tok-read-both"), key=lambda r: r["event_id"])
    assert after == from_s3  # each record once, one version, unchanged
    assert all(r["versions"] == 1 for r in after)
    # they went to the audit history, not to the log lines
    assert _get(url, "/api/search", "tok-read-both", q=ids[0], since="20000d")["results"] == []


def test_records_first_through_the_subscription_then_imported_are_one_row(instance: str, tmp_path: Path) -> None:
    """The other order, with a tenant of its own: the CloudWatch copy first, the S3 file after."""
    url = instance
    recs = FIXTURE_SET.technique(FIXTURE_SET.techniques[0])
    ids = sorted(r["eventID"] for r in recs)
    # awslogs form (a Lambda subscription target's event) is the same payload base64 inside JSON
    awslogs_body = orjson.dumps({"awslogs": {"data": b64(gzipped(trail_message(recs)))}})
    assert _post(url, "/ingest/cloudwatch", awslogs_body, "tok-both").status_code == 200
    # read the rows while they are the only copy, then import the file
    first = sorted(audit_rows(url, "tok-read-both"), key=lambda r: r["event_id"])
    mine = [r for r in first if r["event_id"] in ids]
    assert [r["event_id"] for r in mine] == ids
    trail_file = tmp_path / "late.json"
    trail_file.write_bytes(orjson.dumps({"Records": recs}))
    env = {"FNSCOPE_API": url, "FNSCOPE_TOKEN": "tok-import", "PATH": ""}
    run = subprocess.run(
        [*FNSCOPE, "import", "cloudtrail", str(trail_file), "--quiet"], cwd=ROOT, env=env, capture_output=True
    )
    assert run.returncode == 0, run.stderr
    again = [r for r in audit_rows(url, "tok-read-both") if r["event_id"] in ids]
    assert sorted(again, key=lambda r: r["event_id"]) == mine


def test_a_telemetry_only_token_stores_the_records_as_searchable_lines(instance: str) -> None:
    url, rec = instance, records()[0]
    answer = _post(url, "/ingest/cloudwatch", gzipped(trail_message([rec])), "tok-tel")
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    assert audit_rows(url, "tok-read-tel") == []
    found = _get(url, "/api/search", "tok-read-tel", q=rec["eventID"], since="20000d")["results"]
    assert [orjson.loads(r["message"])["eventID"] for r in found] == [rec["eventID"]]


def test_delivery_time_is_not_the_event_time(instance: str) -> None:
    """The audit row keeps the record's eventTime, not when CloudWatch Logs received it."""
    rec = records()[0]
    row = next(r for r in audit_rows(instance, "tok-read-both") if r["event_id"] == rec["eventID"])
    event_time = datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(row["time"].replace("Z", "+00:00")).astimezone(UTC) == event_time
