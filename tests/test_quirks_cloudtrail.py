"""The CloudTrail parser and the embedded store's own CloudTrail mapping on fixtures written for these tests.

Pins, without the third-party corpus (``tests/corpus.py``), every CloudTrail quirk the corpus tests pin:

- body shapes: bare JSON arrays (no ``Records`` wrapper, as detonation logs ship), ``{"Records": [...]}`` log
  files (also gzipped, as S3 delivers them), NDJSON, concatenated documents, EventBridge envelopes, gzip bodies;
- records: region names no list holds (``ap-westeast-2r``) stored verbatim; eventVersion 1.0 to 1.10;
  ``MFAUsed`` "YES"/"Yes"/"No"; ``mfaAuthenticated`` as the strings "true"/"false"; IAM Identity Center
  identities (``type: Unknown``, empty ARN, all-zero placeholder eventIDs); ``requestParameters: null``; Lambda
  event names with API dates (``UpdateFunctionCode20150331v2``) mapped to the function; ``errorCode``
  ``Client.UnauthorizedOperation``; ``addendum`` records; records without an eventID;
- a CloudTrail digest file (whose log-file timestamps are invalid) recognised and not ingested as events;
- damaged input: a raw control character, a truncated block, bad records, each a dead letter with its raw text
  and a reason while the rest of the batch is kept;
- the store-side mapping (``processors.cloudtrail_bulk.CloudTrailBulk``) storing every fixture record, each quirk
  above among them, exactly as the parser does (the comparison helpers and the other bulk cases are
  ``tests/test_cloudtrail_bulk.py``'s), and leaving the digest, NDJSON and damaged files whole to the parser.

Records come from ``tests/fixtures/cloudtrail_set.py`` and ``tests/fixtures/cloudtrail_saved.py``; wire-level
files (a digest, NDJSON, damaged pretty-printed blocks) from ``tests/fixtures/cloudtrail/``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from fnscope.collector.formats import cloudtrail
from fnscope.collector.formats.base import Parsed
from fnscope.decoding.errors import UnusableBody
from fnscope.events import AuditEvent
from fnscope.processors.cloudtrail_bulk import CloudTrailBulk
from fnscope.sink import IngestContext
from tests.fixtures.cloudtrail_saved import (
    EVENT_VERSIONS,
    PLACEHOLDER_ID,
    quirk_records,
    saved_records,
    variant,
)
from tests.fixtures.cloudtrail_set import (
    ACCOUNT,
    IDENTITY_CENTER,
    REGION,
    TECHNIQUES,
    all_records,
    technique,
    technique_file,
    write_tree,
)
from tests.test_audit_support import chdb_store
from tests.test_cloudtrail_bulk import (
    HORIZON_S,
    MAX_CHARS,
    assert_same,
    both_ways,
    log_file,
    stored_rows,
)

FILES = Path(__file__).resolve().parent / "fixtures" / "cloudtrail"
CTX = IngestContext(tenant="acme")


def parse(body: bytes) -> Parsed:
    return cloudtrail.parse(body, CTX)


def events(body: bytes) -> list[AuditEvent]:
    """The events of a body that must have no dead letters."""
    parsed = parse(body)
    assert parsed.dead == []
    assert all(isinstance(e, AuditEvent) and e.tenant == "acme" for e in parsed.events)
    return parsed.events  # type: ignore[return-value]


def one(record: dict[str, Any]) -> AuditEvent:
    (event,) = events(orjson.dumps([record]))
    return event


def quirk(label: str) -> dict[str, Any]:
    return quirk_records()[label]


def ndjson_records() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (FILES / "records.ndjson").read_bytes().splitlines() if line.strip()]


def digest() -> dict[str, Any]:
    return orjson.loads((FILES / "digest.json").read_bytes())


# --- body shapes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TECHNIQUES)
def test_a_technique_file_is_a_bare_array_and_every_record_is_kept_whole(name: str) -> None:
    body = technique_file(name)
    records = orjson.loads(body)
    assert isinstance(records, list)  # no Records wrapper
    parsed = parse(body)
    assert parsed.dead == [] and parsed.meta["digest"] is False
    assert [e.event_id for e in parsed.events] == [r["eventID"] for r in records]
    for event, record in zip(parsed.events, records):
        assert isinstance(event, AuditEvent) and event.tenant == "acme"
        assert orjson.loads(event.raw) == record and "\n" not in event.raw  # the whole record, compact
        assert event.time == datetime.fromisoformat(record["eventTime"])
        assert (event.service, event.action) == (record["eventSource"], record["eventName"])


def test_the_whole_set_keeps_every_id_version_region_and_error() -> None:
    records = all_records()
    got = events(orjson.dumps(records))
    assert [e.event_id for e in got] == [r["eventID"] for r in records]
    assert len({e.event_id for e in got}) == len(records)
    assert {"1.05", "1.08", "1.09", "1.10"} <= {e.event_version for e in got}
    assert {e.region for e in got} == {REGION}  # not a real region: stored, never rejected
    assert [e.error_code for e in got] == [r.get("errorCode", "") for r in records]


def test_body_shapes_give_the_same_events() -> None:
    records = technique("credential-access.secretsmanager-retrieve-secrets")
    ids = [r["eventID"] for r in records]
    lines = [orjson.dumps(r) for r in records]
    shapes = {
        "log file": orjson.dumps({"Records": records}),
        "pretty-printed log file": json.dumps({"Records": records}, indent=2).encode(),
        "bare array": orjson.dumps(records),
        "ndjson": b"\n".join(lines),
        "ndjson with CRLF and blank lines": b"\r\n\r\n".join(lines) + b"\r\n",
        "concatenated documents": b"".join(lines),
        "ndjson of log files": b"\n".join(orjson.dumps({"Records": [r]}) for r in records),
        "array of log files": orjson.dumps([{"Records": records[:5]}, {"Records": records[5:]}]),
        "eventbridge": b"\n".join(
            orjson.dumps(
                {
                    "version": "0",
                    "id": f"eb-{n}",
                    "detail-type": "AWS API Call via CloudTrail",
                    "source": "aws.secretsmanager",
                    "account": ACCOUNT,
                    "region": REGION,
                    "detail": r,
                }
            )
            for n, r in enumerate(records)
        ),  # fmt: skip
        "gzip log file": gzip.compress(orjson.dumps({"Records": records})),
        "gzip bare array": gzip.compress(orjson.dumps(records)),
        "gzip ndjson": gzip.compress(b"\n".join(lines)),
        "gzip members back to back": b"".join(gzip.compress(line + b"\n") for line in lines),
    }
    for name, body in shapes.items():
        assert [e.event_id for e in events(body)] == ids, name
    assert one(records[0]).event_id == ids[0]
    assert [e.event_id for e in events(orjson.dumps(records[0]))] == ids[:1]  # a single record, no array


def test_the_ndjson_file() -> None:
    body = (FILES / "records.ndjson").read_bytes()
    assert body.count(b"\n\n") == 1  # a blank line between records is skipped
    records = ndjson_records()
    got = events(body)
    assert [e.event_id for e in got] == [r["eventID"] for r in records] and len(got) == 3
    assert [e.event_id for e in events(gzip.compress(body))] == [e.event_id for e in got]
    caller, code, publish = got
    assert (caller.action, caller.function, caller.mfa, caller.read_only) == ("GetCallerIdentity", "", False, True)
    assert caller.session_issuer == f"arn:aws:iam::{ACCOUNT}:role/ci-runner" and caller.principal_name == "ci-runner"
    assert (code.action, code.function) == ("UpdateFunctionCode20150331v2", "checkout")
    assert (publish.action, publish.function) == ("PublishVersion20150331", "checkout")


def test_log_files_as_cloudtrail_delivers_them_to_s3(tmp_path: Path) -> None:
    files = write_tree(tmp_path)
    assert len(files) == len(TECHNIQUES)
    for path, name in zip(files, TECHNIQUES):
        assert path.name.endswith(".json.gz") and f"/CloudTrail/{REGION}/" in path.as_posix()
        assert [e.event_id for e in events(path.read_bytes())] == [r["eventID"] for r in technique(name)]


def test_a_corrupt_gzip_body_is_unusable() -> None:
    whole = gzip.compress(technique_file("defense-evasion.cloudtrail-stop"))
    for body in (whole[:-12], b"\x1f\x8b\x08 not gzip at all"):
        with pytest.raises(UnusableBody, match="gzip"):
            parse(body)


# --- records ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["ap-westeast-2r", "cn-west-3r", "us-gov-east-9", "xx-nowhere-1", "eu-central-2"])
def test_region_names_no_list_holds_are_stored_verbatim(region: str) -> None:
    record = variant(technique("defense-evasion.cloudtrail-stop")[0], f"region-{region}", awsRegion=region)
    assert one(record).region == region


def test_a_record_without_a_region_takes_the_one_its_url_named() -> None:
    record = technique("defense-evasion.cloudtrail-stop")[0]
    del record["awsRegion"]
    parsed = cloudtrail.parse(orjson.dumps(record), IngestContext(tenant="acme", params={"region": "eu-west-3"}))
    assert [e.region for e in parsed.events] == ["eu-west-3"]


def test_every_event_version_from_1_0_to_1_10_is_stored_as_written() -> None:
    records = [quirk(f"version-{v}") for v in EVENT_VERSIONS]
    got = events(orjson.dumps(records))
    assert [e.event_version for e in got] == list(EVENT_VERSIONS)  # "1.10" stays "1.10", not 1.1
    first = got[0]
    # 1.0 had no eventID, readOnly, eventType or recipientAccountId yet
    assert "eventID" not in records[0] and first.event_id
    assert (first.read_only, first.event_type, first.event_category) == (None, "", "")
    assert first.account == ACCOUNT  # from userIdentity.accountId
    assert all(e.read_only is False and e.event_type == "AwsApiCall" for e in got[1:])


@pytest.mark.parametrize(("label", "mfa"), [("YES", True), ("Yes", True), ("No", False), ("absent", None)])
def test_mfa_used_is_read_in_any_case(label: str, mfa: bool | None) -> None:
    record = quirk(f"mfa-used-{label}")
    event = one(record)
    assert event.mfa is mfa
    assert (event.action, event.event_type, event.principal_name) == ("ConsoleLogin", "AwsConsoleSignIn", "alice")
    assert orjson.loads(event.raw)["additionalEventData"].get("MFAUsed") == record["additionalEventData"].get("MFAUsed")


@pytest.mark.parametrize(
    ("label", "mfa"), [("session-mfa-true", True), ("session-mfa-false", False), ("session-mfa-before-mfa-used", True)]
)
def test_session_mfa_authenticated_is_a_string(label: str, mfa: bool) -> None:
    record = quirk(label)
    attribute = record["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"]
    assert attribute == str(mfa).lower()  # "true"/"false" as strings, as CloudTrail writes them
    event = one(record)
    assert event.mfa is mfa
    assert event.principal_type == "AssumedRole"
    assert event.session_issuer == record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    assert event.principal_name == record["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"]
    assert event.access_key == "ASIAEXAMPLESESSION01"


def test_identity_center_identities_are_stored_with_their_empty_arn() -> None:
    records = [*technique("discovery.identity-center-read"), quirk("identity-center-read")]
    for event in events(orjson.dumps(records)):
        assert (event.principal_type, event.principal_arn) == ("Unknown", "")
        assert event.principal_name == IDENTITY_CENTER["userName"]
        assert event.principal_account == event.account == ACCOUNT


def test_identity_center_placeholder_event_ids_do_not_collapse() -> None:
    auth, federate = quirk("identity-center-authentication"), quirk("identity-center-federate")
    assert auth["eventID"] == federate["eventID"] == PLACEHOLDER_ID
    got = events(orjson.dumps([auth, federate]))
    assert [(e.principal_type, e.principal_arn, e.principal_name) for e in got] == [
        ("Unknown", "", "jdoe@example.com")
    ] * 2
    assert [e.action for e in got] == ["UserAuthentication", "Federate"]
    ids = [e.event_id for e in got]
    assert len(set(ids)) == 2 and PLACEHOLDER_ID not in ids
    assert [e.event_id for e in events(orjson.dumps([federate, auth]))] == ids[::-1]  # stable


def test_request_parameters_null_is_kept() -> None:
    caller = technique("persistence.iam-create-user-login-profile")[0]
    assert caller["requestParameters"] is None
    event = one(caller)
    assert orjson.loads(event.raw)["requestParameters"] is None
    assert (event.action, event.read_only, event.resources) == ("GetCallerIdentity", True, [])
    denied = one(quirk("lambda-denied-request-null"))  # a refused Lambda call names no function
    assert (denied.function, denied.resources, denied.error_code) == ("", [], "AccessDenied")
    published = one(quirk("lambda-request-null-response-arn"))  # ... unless the response does
    assert published.function == "billing-sync"
    assert published.resources == [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing-sync:8"]


def _function_arn(name: str, qualifier: str = "") -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}" + (f":{qualifier}" if qualifier else "")


LAMBDA_CASES = {
    # source -> (eventName as sent, function, resources)
    "persistence.lambda-overwrite-code": (
        "UpdateFunctionCode20150331v2", "billing-sync", [_function_arn("billing-sync")]
    ),
    "persistence.lambda-backdoor-function": ("AddPermission20150331v2", "image-resize", ["image-resize"]),
    "persistence.lambda-layer-extension": (
        "UpdateFunctionConfiguration20150331v2", "orders-api", [_function_arn("orders-api")]
    ),
    "lambda-qualified-arn": ("UpdateAlias20150331", "checkout", [_function_arn("checkout", "live")]),
    "lambda-relative-id": ("DeleteFunction20150331", "old-cron", ["old-cron"]),
    "lambda-layer-before-function": (
        "Invoke",
        "orders-api",
        [f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:telemetry-ext:4", _function_arn("orders-api")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("source", list(LAMBDA_CASES))
def test_lambda_event_names_keep_their_api_date_and_name_the_function(source: str) -> None:
    record = technique(source)[0] if source in TECHNIQUES else quirk(source)
    action, function, resources = LAMBDA_CASES[source]
    event = one(record)
    assert (event.service, event.action, event.function, event.resources) == (
        "lambda.amazonaws.com",
        action,
        function,
        resources,
    )
    assert event.partition_key() == f"acme/{ACCOUNT}"


def test_non_lambda_events_have_no_function() -> None:
    got = events(technique_file("credential-access.ssm-retrieve-securestring-parameters"))
    assert got and all(e.function == "" for e in got)
    assert all(e.resources and all(r.startswith(f"arn:aws:ssm:{REGION}:") for r in e.resources) for e in got)


def test_client_unauthorized_operation_and_access_denied_are_kept() -> None:
    denied = events(technique_file("discovery.ec2-discovery-denied"))
    assert len(denied) == 11
    assert {(e.error_code, e.error_message) for e in denied} == {
        ("Client.UnauthorizedOperation", "You are not authorized to perform this operation.")
    }
    secrets = events(technique_file("credential-access.secretsmanager-retrieve-secrets"))
    assert [e.error_code for e in secrets] == [""] * 10 + ["AccessDenied"] * 2


def test_addendum_records_are_events_of_their_own() -> None:
    original, correction, delayed = (quirk(f"addendum-{k}") for k in ("original", "correction", "delayed"))
    got = events(orjson.dumps([correction, original, delayed]))
    assert [e.event_id for e in got] == [correction["eventID"], original["eventID"], delayed["eventID"]]
    fixed = got[0]
    assert fixed.event_id != original["eventID"] and fixed.source_ip == "203.0.113.24"
    assert orjson.loads(fixed.raw)["addendum"] == {
        "reason": "UPDATED_DATA",
        "updatedFields": "sourceIPAddress",
        "originalRequestID": original["requestID"],
        "originalEventID": original["eventID"],
    }
    assert got[1].source_ip == "203.0.113.99"
    assert orjson.loads(got[2].raw)["addendum"] == {"reason": "DELIVERY_DELAY"}


def test_records_without_an_event_id_get_a_stable_content_id() -> None:
    records = [quirk("no-event-id-0"), quirk("no-event-id-1"), quirk("version-1.0")]
    assert not any("eventID" in r for r in records)
    ids = [e.event_id for e in events(orjson.dumps(records))]
    assert len(set(ids)) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # the same records in another order and another body shape: the same ids
    again = events(b"\n".join(orjson.dumps({"Records": [r]}) for r in reversed(records)))
    assert [e.event_id for e in again] == ids[::-1]
    # one field different: another event
    changed = {**records[0], "sourceIPAddress": "192.0.2.1"}
    assert one(changed).event_id not in ids


# --- digest files -----------------------------------------------------------------------------------------------


def test_a_digest_file_is_recognised_and_not_ingested() -> None:
    body = (FILES / "digest.json").read_bytes()
    assert cloudtrail.is_digest(digest())
    for raw in (body, gzip.compress(body)):
        parsed = parse(raw)
        assert (parsed.events, parsed.dead, parsed.meta["digest"]) == ([], [], True)


def test_the_digest_file_has_invalid_timestamps_that_do_not_matter() -> None:
    times = [t for log in digest()["logFiles"] for t in (log["newestEventTime"], log["oldestEventTime"])]
    for value in times:
        with pytest.raises(ValueError):
            cloudtrail.parse_time(value)
    assert parse((FILES / "digest.json").read_bytes()).dead == []


def test_what_is_not_a_digest() -> None:
    record = technique("defense-evasion.cloudtrail-stop")[0]
    assert not cloudtrail.is_digest(record)
    assert not cloudtrail.is_digest({"Records": []})
    assert not cloudtrail.is_digest({"logFiles": []})  # one digest key is not enough
    assert not cloudtrail.is_digest({**record, "logFiles": [], "digestStartTime": "x"})  # an event, whatever else
    assert not cloudtrail.is_digest([digest()])


def test_a_digest_beside_a_log_file() -> None:
    records = technique("persistence.iam-create-admin-user")
    bodies = {
        "ndjson": orjson.dumps(digest()) + b"\n" + orjson.dumps({"Records": records}) + b"\n",
        "array": orjson.dumps([{"Records": records}, digest()]),
        "pretty, back to back": (FILES / "digest.json").read_bytes() + json.dumps({"Records": records}).encode(),
    }
    for name, body in bodies.items():
        parsed = parse(body)
        assert parsed.meta["digest"] is True and parsed.dead == [], name
        assert [e.event_id for e in parsed.events] == [r["eventID"] for r in records], name


# --- dead letters -----------------------------------------------------------------------------------------------


def test_damaged_blocks_are_dead_letters_and_the_rest_of_the_body_is_kept() -> None:
    body = (FILES / "damaged_blocks.txt").read_bytes()
    text = body.decode()
    parsed = parse(body)
    # block 1 has raw TABs inside a string (invalid strict JSON, a readable record): kept with them
    assert [e.event_id for e in parsed.events] == [
        "c4e5f6a7-0001-4b2c-8d3e-4f5a6b7c8d01",
        "c4e5f6a7-0003-4b2c-8d3e-4f5a6b7c8d03",
        "c4e5f6a7-0004-4b2c-8d3e-4f5a6b7c8d04",
    ]
    login: Any = parsed.events[0]
    assert login.user_agent == "Mozilla/5.0 (X11; Linux x86_64)\tGecko/20100101\tFirefox/128.0"
    assert login.mfa is True  # MFAUsed "YES"
    # block 2 is cut short: one dead letter holding all of its text; the BEL after block 3: another
    truncated, stray = parsed.dead
    start = text.index("{", text.index("}\n{") + 1)
    assert truncated.raw == text[start : text.index('"tempo') + len('"tempo')].encode()
    assert truncated.reason.startswith("not JSON (")
    assert b'"eventName": "CreateUser"' in truncated.raw
    assert (stray.raw, stray.reason.startswith("not JSON (")) == (b"\x07", True)
    assert {(d.tenant, d.source) for d in parsed.dead} == {("acme", "cloudtrail")}


def test_records_kept_as_raw_text_are_read_or_dead_lettered() -> None:
    """Items ``{"raw_text": ...}``: a record kept as text because its JSON was damaged."""
    records = technique("persistence.iam-create-admin-user")
    control = orjson.dumps(records[1]).decode().replace("aws-cli/2.15.30", "aws-cli/2.15.30\tcustom")
    truncated = json.dumps(records[2], indent=2)[:300]
    items = [
        records[0],
        {"source": "notes.md#L12", "raw_text": control},
        {"source": "notes.md#L40", "raw_text": truncated},
        {"raw_text": json.dumps(quirk("mfa-used-YES"), indent=2)},
    ]
    parsed = parse(orjson.dumps(items))
    assert [e.event_id for e in parsed.events] == [records[0]["eventID"], records[1]["eventID"],
                                                   quirk("mfa-used-YES")["eventID"]]  # fmt: skip
    assert "\tcustom" in parsed.events[1].user_agent  # type: ignore[attr-defined]
    (dead,) = parsed.dead
    assert dead.reason.startswith("record text is truncated or not JSON: ")
    assert dead.raw == truncated.encode()


def test_bad_records_are_dead_lettered_and_the_rest_kept() -> None:
    good = technique("defense-evasion.cloudtrail-delete")[0]
    no_time = {k: v for k, v in good.items() if k != "eventTime"}
    bad_time = variant(good, "bad-time", eventTime="2024-08-01TT13:15:00Z")
    parsed = parse(orjson.dumps({"Records": [no_time, good, "junk", bad_time, [good]]}))
    assert [e.event_id for e in parsed.events] == [good["eventID"]]
    assert [d.reason for d in parsed.dead] == [
        "not a CloudTrail record: no eventTime",
        "not a CloudTrail record: a JSON str",
        "unreadable eventTime '2024-08-01TT13:15:00Z'",
        "not a CloudTrail record: a JSON list",
    ]
    assert orjson.loads(parsed.dead[0].raw) == no_time
    assert orjson.loads(parsed.dead[2].raw) == bad_time


def test_a_log_file_cut_short_keeps_its_complete_records() -> None:
    records = technique("persistence.iam-create-admin-user")
    body = orjson.dumps({"Records": records})  # compact, as CloudTrail writes it
    cut = body[: body.index(records[2]["eventID"].encode())]  # inside the last record
    parsed = parse(cut)
    assert [e.event_id for e in parsed.events] == [r["eventID"] for r in records[:2]]
    (dead,) = parsed.dead
    assert b'"eventName":"CreateAccessKey"' in dead.raw and dead.reason


def test_a_cut_file_reads_its_records_as_a_whole_body_would() -> None:
    """What comes before the cut is read as orjson reads a whole file: a NaN or a 5,000-digit number (which
    Python's own decoder refuses to convert) costs its record and what follows, never the parse."""
    records = technique("persistence.iam-create-admin-user")
    whole = orjson.dumps(records[0]).decode()
    for bad in ('{"eventVersion": NaN}', '{"n": ' + "9" * 5000 + "}"):
        cut = f'{{"Records":[{whole},{bad},{{"eventID":"'
        parsed = parse(cut.encode())
        assert [e.event_id for e in parsed.events] == [records[0]["eventID"]]
        (dead,) = parsed.dead
        assert dead.raw.startswith(bad[:12].encode()) and "1 whole records before it kept" in dead.reason


def test_a_body_of_nothing_but_bad_records_is_unusable() -> None:
    good = technique("defense-evasion.cloudtrail-delete")[0]
    with pytest.raises(UnusableBody, match=r"no usable CloudTrail record \(2 rejected\): not a CloudTrail record"):
        parse(orjson.dumps({"Records": [{k: v for k, v in good.items() if k != "eventTime"}, 7]}))


# --- the store's own mapping (processors/cloudtrail_bulk.py) against the parser -------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with chdb_store(tmp_path_factory.mktemp("quirks-bulk") / "store") as client:
        yield client


def fixture_records() -> list[dict[str, Any]]:
    return [*all_records(), *quirk_records().values(), *saved_records().values(), *ndjson_records()]


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed"])
def test_every_fixture_record_is_stored_as_the_parser_stores_it(store: Client, indent: bool) -> None:
    records = fixture_records()
    tag = f"fixtures-{indent}"
    stored, rest = both_ways(store, log_file(records, indent), tag)
    rows = assert_same(store, tag)
    assert len(rows) == len(records)
    # the records with no usable eventID (none, or all zeros) are the parser's; the store maps every other one
    left = [r for r in records if not str(r.get("eventID", "")).strip("0-")]
    assert len(left) == 5
    assert stored == len(records) - len(left) and rest
    correction = quirk("addendum-correction")
    assert rows[correction["eventID"]]["corrects"] == correction["addendum"]["originalEventID"]


QUIRKS_LEFT_TO_THE_PARSER = {"version-1.0", "no-event-id-0", "no-event-id-1"} | {
    "identity-center-authentication",
    "identity-center-federate",
}  # no eventID, or the all-zero placeholder: the parser derives the id


@pytest.mark.parametrize("label", list(quirk_records()))
def test_each_quirk_is_stored_alike_both_ways(store: Client, label: str) -> None:
    tag = f"quirk-{label}"
    stored, _ = both_ways(store, log_file([quirk(label)]), tag)
    (row,) = assert_same(store, tag).values()
    assert stored == (0 if label in QUIRKS_LEFT_TO_THE_PARSER else 1)
    assert row["event_version"] == quirk(label)["eventVersion"]


def test_bodies_that_are_not_only_log_files_go_whole_to_the_parser(store: Client) -> None:
    record = technique("persistence.lambda-backdoor-function")[0]
    bulk = CloudTrailBulk([store], MAX_CHARS, HORIZON_S, min_bytes=0)
    ctx = IngestContext(tenant="whole")
    bodies = {
        "a bare array of records": orjson.dumps([record]),
        "NDJSON records": (FILES / "records.ndjson").read_bytes(),
        "a digest": (FILES / "digest.json").read_bytes(),
        "a log file and a digest": orjson.dumps({"Records": [record]}) + b"\n" + orjson.dumps(digest()),
        "a log file and broken JSON": orjson.dumps({"Records": [record]}) + b'\n{"Records": [{"eventTime": ',
        "a log file and an empty one": orjson.dumps({"Records": [record]}) + b'\n{"Records": []}',
        "damaged pretty-printed blocks": (FILES / "damaged_blocks.txt").read_bytes(),
        "not JSON": b"hello, world",
        "empty": b"",
    }
    bodies.update({f"gzip {name}": gzip.compress(body) for name, body in bodies.items() if body})
    for name, body in bodies.items():
        assert bulk.store(body, ctx) == (0, body), name
    assert bulk.store(b"\x1f\x8b\x08 not gzip", ctx) == (0, b"\x1f\x8b\x08 not gzip")
    gzipped = gzip.compress(orjson.dumps([record]))
    assert bulk.store(gzipped, ctx) == (0, gzipped)
    truncated = log_file([record, quirk("addendum-correction")])[:-10]
    assert bulk.store(truncated, ctx) == (0, truncated)
    assert stored_rows(store, "whole") == {}
