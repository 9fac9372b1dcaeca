"""CloudTrail, API Gateway access-log and OTLP/HTTP logs parsers on the third-party corpus (tests/corpus.py; each
quirk is also pinned without it by tests/test_quirks_*)."""

from __future__ import annotations

import base64
import copy
import gzip
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from fnscope.collector.formats import apigateway, cloudtrail, otlp
from fnscope.decoding import arn
from fnscope.decoding.errors import UnusableBody
from fnscope.events import ApiAccess, AuditEvent, FunctionLog
from fnscope.sink import IngestContext
from tests import corpus

SAMPLES = corpus.SAMPLES
CLOUDTRAIL = SAMPLES / "cloudtrail"
STRATUS = CLOUDTRAIL / "stratus_red_team_detonation_logs"
DOC_EXAMPLES = CLOUDTRAIL / "aws_docs_examples" / "cloudtrail_doc_examples.json"
FIXTURES = CLOUDTRAIL / "single_event_fixtures"
TEMPLATES = SAMPLES / "apigateway_access_logs" / "aws_docs_format_templates" / "access_log_format_templates.json"
OTEL = SAMPLES / "otel" / "opentelemetry-proto_examples"

CTX = IngestContext(tenant="acme")


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _stratus(name: str) -> list[AuditEvent]:
    parsed = cloudtrail.parse((STRATUS / f"aws.{name}.json").read_bytes(), CTX)
    assert parsed.dead == []
    return parsed.events  # type: ignore[return-value]


# --- CloudTrail: every sample file ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus.each(sorted(CLOUDTRAIL.rglob("*.json"))), ids=lambda p: p and p.name)
@corpus.needed
def test_every_cloudtrail_sample_parses_without_dead_letters(path: Path) -> None:
    parsed = cloudtrail.parse(path.read_bytes(), CTX)
    assert parsed.dead == []
    if path.name == "cloudtrail_digest.json":
        assert parsed.events == [] and parsed.meta["digest"] is True
    else:
        assert parsed.events and parsed.meta["digest"] is False
        assert all(isinstance(e, AuditEvent) and e.tenant == "acme" for e in parsed.events)


@corpus.needed
def test_stratus_detonations_store_all_310_records_from_35_files() -> None:
    files = sorted(STRATUS.glob("*.json"))
    assert len(files) == 35
    source_ids: list[str] = []
    events: list[AuditEvent] = []
    for path in files:
        records = _load(path)
        assert isinstance(records, list)  # bare arrays, no Records wrapper
        source_ids += [r["eventID"] for r in records]
        parsed = cloudtrail.parse(path.read_bytes(), CTX)
        assert len(parsed.events) == len(records) and parsed.dead == []
        events += parsed.events  # type: ignore[arg-type]
    assert len(events) == 310
    assert [e.event_id for e in events] == source_ids
    assert len({e.event_id for e in events}) == 310
    assert {e.event_version for e in events} == {"1.08", "1.09", "1.10"}
    assert sum(1 for e in events if e.error_code) == 52
    # fake regions are stored verbatim, never rejected
    assert "ap-westeast-2r" in {e.region for e in events}
    assert all(e.region.endswith("r") for e in events)


@corpus.needed
def test_stratus_raw_is_the_whole_record_as_compact_json() -> None:
    path = STRATUS / "aws.defense-evasion.cloudtrail-stop.json"
    (record,) = _load(path)
    (event,) = cloudtrail.parse(path.read_bytes(), CTX).events
    assert orjson.loads(event.raw) == record
    assert "\n" not in event.raw
    assert event.action == "StopLogging" and event.service == "cloudtrail.amazonaws.com"
    assert event.time == datetime.fromisoformat(record["eventTime"])


@corpus.needed
def test_lambda_overwrite_code_gives_function_name_from_the_full_arn() -> None:
    (event,) = _stratus("persistence.lambda-overwrite-code")
    assert event.action == "UpdateFunctionCode20150331v2"  # API date kept
    assert event.service == "lambda.amazonaws.com"
    assert event.function == "stratus-red-team-olc-func-vayhjqkdav"
    assert event.region == "ap-westeast-2r"
    assert event.account == "266106314375"
    assert event.resources == [
        "arn:aws:lambda:ap-westeast-2r:266106314375:function:stratus-red-team-olc-func-vayhjqkdav"
    ]
    assert event.partition_key() == "acme/266106314375"


@corpus.needed
def test_lambda_backdoor_function_gives_function_name_from_a_plain_name() -> None:
    (event,) = _stratus("persistence.lambda-backdoor-function")
    assert event.action == "AddPermission20150331v2"
    assert event.function == "stratus-red-team-backdoor-f-func"
    assert event.resources == ["stratus-red-team-backdoor-f-func"]
    assert event.principal_type == "IAMUser" and event.principal_name == "christophe"
    assert event.access_key == "AKIAYALJGCQ7J893JO5I"
    assert event.read_only is False


@corpus.needed
def test_lambda_layer_extension_names_the_function_not_the_layer() -> None:
    (event,) = _stratus("persistence.lambda-layer-extension")
    assert event.function == "stratus-red-team-lambda-layer-simpleLambda"
    assert not any(":layer:" in r for r in event.resources)


@corpus.needed
def test_non_lambda_events_have_no_function() -> None:
    events = _stratus("credential-access.ssm-retrieve-securestring-parameters")
    assert all(e.function == "" for e in events)
    with_resources = [e for e in events if e.resources]
    assert with_resources
    assert all(r.startswith("arn:aws:ssm:") for e in with_resources for r in e.resources)


@corpus.needed
def test_console_login_without_mfa_gives_mfa_false() -> None:
    (event,) = _stratus("initial-access.console-login-without-mfa")
    assert event.action == "ConsoleLogin"
    assert event.mfa is False
    assert event.event_type == "AwsConsoleSignIn"
    assert event.principal_name == "stratus-red-team-nmfalu-jfzdtsvchl"
    assert event.source_ip == "225.01.00.16"


@corpus.needed
def test_access_denied_errors_are_kept() -> None:
    events = [e for path in STRATUS.glob("*.json") for e in cloudtrail.parse(path.read_bytes(), CTX).events]
    codes = {e.error_code for e in events if e.error_code}  # type: ignore[attr-defined]
    assert "AccessDenied" in codes and "Client.UnauthorizedOperation" in codes


# --- CloudTrail: AWS documentation examples ---------------------------------------------------------------------


def _doc_events() -> tuple[list[dict[str, Any]], list[AuditEvent]]:
    records = _load(DOC_EXAMPLES)
    parsed = cloudtrail.parse(DOC_EXAMPLES.read_bytes(), CTX)
    assert parsed.dead == []
    return records, parsed.events  # type: ignore[return-value]


@corpus.needed
def test_doc_examples_all_stored_with_old_event_versions() -> None:
    records, events = _doc_events()
    assert len(events) == len(records) == 25
    assert {"1.0", "1.02", "1.03", "1.04", "1.05", "1.08"} <= {e.event_version for e in events}
    # the _source/_parse wrapper keys stay in the raw record
    assert all(orjson.loads(e.raw)["_source"] == r["_source"] for e, r in zip(events, records))


@corpus.needed
def test_mfa_used_upper_case_yes_is_true() -> None:
    records, events = _doc_events()
    by_answer = {
        r["additionalEventData"]["MFAUsed"]: e.mfa
        for r, e in zip(records, events)
        if isinstance(r.get("additionalEventData"), dict) and "MFAUsed" in r["additionalEventData"]
    }
    assert by_answer == {"YES": True, "Yes": True, "No": False}


@corpus.needed
def test_session_mfa_attribute_is_read() -> None:
    records, events = _doc_events()
    (start_logging,) = [e for e in events if e.action == "StartLogging"]
    assert start_logging.mfa is False
    assert start_logging.principal_name == "Mary_Major"
    assert start_logging.read_only is False


@corpus.needed
def test_records_without_event_id_get_a_stable_content_id() -> None:
    records, events = _doc_events()
    missing = [e for r, e in zip(records, events) if "eventID" not in r]
    assert len(missing) >= 5  # the eventVersion 1.0 examples
    assert len({e.event_id for e in missing}) == len(missing)
    again = cloudtrail.parse(DOC_EXAMPLES.read_bytes(), CTX).events
    assert [e.event_id for e in again] == [e.event_id for e in events]


@corpus.needed
def test_lambda_doc_example_function_name() -> None:
    _, events = _doc_events()
    (delete,) = [e for e in events if e.action == "DeleteFunction"]
    assert delete.function == "basic-node-task"
    (get,) = [e for e in events if e.action == "GetFunction"]
    assert get.error_code == "AccessDenied" and get.function == ""


@corpus.needed
def test_truncated_and_control_character_raw_text_blocks() -> None:
    records = _load(DOC_EXAMPLES)
    good_text = orjson.dumps(records[0], option=orjson.OPT_INDENT_2).decode()
    # a raw TAB inside a string: invalid strict JSON, but a readable record
    control = orjson.dumps(records[1]).decode().replace("Firefox", "Fire\tfox").replace("Chrome", "Chr\tome")
    truncated = orjson.dumps(records[2], option=orjson.OPT_INDENT_2).decode()[:300]
    items = [
        records[3],
        {"_source": "x#L1", "_parse": "raw", "raw_text": control},
        {"_source": "x#L2", "_parse": "raw", "raw_text": truncated},
        {"_source": "x#L3", "raw_text": good_text},
    ]
    parsed = cloudtrail.parse(orjson.dumps(items), CTX)
    assert [e.event_id for e in parsed.events] == [records[i]["eventID"] for i in (3, 1, 0)]
    assert "\t" in parsed.events[1].user_agent
    (dead,) = parsed.dead
    assert "truncated" in dead.reason and dead.raw == truncated.encode()


@corpus.needed
def test_truncated_block_inside_a_body_is_dead_lettered_and_the_rest_kept() -> None:
    records = _load(DOC_EXAMPLES)
    blocks = [orjson.dumps(r, option=orjson.OPT_INDENT_2).decode() for r in records[:3]]
    body = "\n".join([blocks[0], blocks[1][:-120], blocks[2] + "\x07"]).encode()
    parsed = cloudtrail.parse(body, CTX)
    assert [e.event_id for e in parsed.events] == [records[0]["eventID"], records[2]["eventID"]]
    assert len(parsed.dead) == 2  # the truncated block (one dead letter), and the stray control character
    assert parsed.dead[0].raw.startswith(b"{") and b"eventVersion" in parsed.dead[0].raw


# --- CloudTrail: fixtures, digest and body shapes ---------------------------------------------------------------


@corpus.needed
def test_digest_is_recognised_not_ingested() -> None:
    digest = _load(FIXTURES / "otel_collector_contrib" / "cloudtrail_digest.json")
    assert cloudtrail.is_digest(digest)
    assert not cloudtrail.is_digest(_load(STRATUS / "aws.defense-evasion.cloudtrail-stop.json")[0])
    assert not cloudtrail.is_digest({"Records": []})
    parsed = cloudtrail.parse((FIXTURES / "otel_collector_contrib" / "cloudtrail_digest.json").read_bytes(), CTX)
    assert (parsed.events, parsed.dead, parsed.meta["digest"]) == ([], [], True)


@corpus.needed
def test_digest_beside_a_log_file_in_ndjson() -> None:
    digest = _load(FIXTURES / "otel_collector_contrib" / "cloudtrail_digest.json")
    records = _load(STRATUS / "aws.persistence.iam-create-admin-user.json")
    body = orjson.dumps(digest) + b"\n" + orjson.dumps({"Records": records}) + b"\n"
    parsed = cloudtrail.parse(body, CTX)
    assert parsed.meta["digest"] is True
    assert [e.event_id for e in parsed.events] == [r["eventID"] for r in records]


@corpus.needed
def test_identity_center_unknown_principal_with_empty_arn_is_stored() -> None:
    auth = cloudtrail.parse(
        (FIXTURES / "aws_lambda_rust_runtime" / "example-cloudwatch-cloudtrail-unknown-user-auth.json").read_bytes(),
        CTX,
    ).events[0]
    federate = cloudtrail.parse(
        (FIXTURES / "aws_lambda_rust_runtime" / "example-cloudwatch-cloudtrail-unknown-federate.json").read_bytes(), CTX
    ).events[0]
    assert (auth.principal_type, auth.principal_arn, auth.principal_account) == ("Unknown", "", "123456789000")
    assert auth.action == "UserAuthentication" and auth.account == "123456789000"
    assert federate.principal_name == "me@dev.com" and federate.service == "sso.amazonaws.com"
    # both carry the all-zero placeholder eventID: they must not collapse into one stored event
    assert auth.event_id != federate.event_id
    assert "0000" not in auth.event_id


@corpus.needed
def test_assumed_role_session_issuer() -> None:
    (event,) = cloudtrail.parse(
        (FIXTURES / "aws_lambda_rust_runtime" / "example-cloudwatch-cloudtrail-assumed-role.json").read_bytes(), CTX
    ).events
    assert event.principal_type == "AssumedRole"
    assert event.session_issuer.endswith(
        ":role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AWSAdministratorAccess_abcdef1234567890"
    )
    assert event.principal_name == "AWSReservedSSO_AWSAdministratorAccess_abcdef1234567890"
    assert event.mfa is False


@corpus.needed
def test_body_shapes_give_the_same_events() -> None:
    records = _load(STRATUS / "aws.credential-access.secretsmanager-batch-retrieve-secrets.json")
    ids = [r["eventID"] for r in records]
    shapes = {
        "log file": orjson.dumps({"Records": records}),
        "bare array": orjson.dumps(records),
        "ndjson": b"\n".join(orjson.dumps(r) for r in records),
        "ndjson of log files": b"\n".join(orjson.dumps({"Records": [r]}) for r in records),
        "gzip": gzip.compress(orjson.dumps({"Records": records})),
        "eventbridge": b"\n".join(
            orjson.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.x", "detail": r})
            for r in records
        ),
    }
    for name, body in shapes.items():
        assert [e.event_id for e in cloudtrail.parse(body, CTX).events] == ids, name
    (single,) = cloudtrail.parse(orjson.dumps(records[0]), CTX).events
    assert single.event_id == ids[0]


@corpus.needed
def test_bad_records_are_dead_lettered_and_the_rest_kept() -> None:
    good = _load(STRATUS / "aws.defense-evasion.cloudtrail-delete.json")[0]
    no_time = {k: v for k, v in good.items() if k != "eventTime"}
    bad_time = {**good, "eventTime": "2025-10-21TT00:52:27Z", "eventID": "other"}
    parsed = cloudtrail.parse(orjson.dumps({"Records": [no_time, good, "junk", bad_time]}), CTX)
    assert [e.event_id for e in parsed.events] == [good["eventID"]]
    reasons = [d.reason for d in parsed.dead]
    assert reasons == [
        "not a CloudTrail record: no eventTime",
        "not a CloudTrail record: a JSON str",
        "unreadable eventTime '2025-10-21TT00:52:27Z'",
    ]
    assert orjson.loads(parsed.dead[0].raw) == no_time


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"  \n", "empty body"),
        (b"hello, world", "not JSON"),
        (b'{"foo": 1}', "no eventTime"),
        (b"[1, 2]", "a JSON int"),
        (b"\x1f\x8b\x08garbage", "gzip"),
    ],
)
def test_unusable_bodies(body: bytes, message: str) -> None:
    with pytest.raises(UnusableBody, match=message):
        cloudtrail.parse(body, CTX)


def test_empty_log_file_is_not_an_error() -> None:
    parsed = cloudtrail.parse(b'{"Records": []}', CTX)
    assert parsed.events == [] and parsed.dead == []


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("my-function", "my-function"),
        ("my-function:v1", "my-function"),
        ("123456789012:function:my-function", "my-function"),
        ("arn:aws:lambda:us-west-2:123456789012:function:my-function", "my-function"),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:my-function:$LATEST", "my-function"),
        ("arn:aws:lambda:us-west-2:123456789012:layer:my-layer:3", ""),
        ("", ""),
    ],
)
def test_function_name_forms(value: str, name: str) -> None:
    assert arn.function_name(value) == name


# --- API Gateway access logs generated from the documented templates --------------------------------------------

_CONTEXT_VAR = re.compile(r"\$context\.[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]")


def _templates(kind: str) -> list[dict[str, str]]:
    """The documented templates, with the docs' backslash line continuations removed."""
    items = _load(TEMPLATES)
    cleaned = [{**t, "template": re.sub(r"\\\s*\n\s*", "", t["template"]).strip()} for t in items]
    is_json = [t["template"].startswith("{") for t in cleaned]
    return [t for t, j in zip(cleaned, is_json) if j == (kind == "json")]


def _values(n: int, **overrides: str) -> dict[str, str]:
    values = {
        "$context.requestId": f"c6af9ac6-7b61-11e6-9a41-93e8deadbe{n:02d}",
        "$context.extendedRequestId": f"Fz3X_HmLoAMEJ{n:02d}=",
        "$context.identity.sourceIp": f"198.51.100.{n}",
        "$context.identity.caller": "-",
        "$context.identity.user": "-",
        "$context.requestTime": f"27/Nov/2026:05:{n:02d}:00 +0000",
        "$context.httpMethod": "POST",
        "$context.resourcePath": "/orders/{id}",
        "$context.routeKey": "POST /orders/{id}",
        "$context.status": "200",
        "$context.protocol": "HTTP/1.1",
        "$context.responseLength": "512",
    }
    values.update({f"$context.{k}": v for k, v in overrides.items()})
    return values


def _render(template: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        assert match.group(0) in values, f"no plausible value for {match.group(0)}"
        return values[match.group(0)]

    return _CONTEXT_VAR.sub(substitute, template)


@corpus.needed
def test_json_templates_generate_parsable_lines() -> None:
    templates = _templates("json")
    assert [t["api_type"] for t in templates] == ["REST", "HTTP"]
    for template in templates:
        lines = [_render(template["template"], _values(n)) for n in range(1, 4)]
        body = "\n".join(lines).encode()
        parsed = apigateway.parse(body, IngestContext(tenant="acme", params={"api": "a1b2c3", "stage": "prod"}))
        assert parsed.dead == []
        events: list[ApiAccess] = parsed.events  # type: ignore[assignment]
        assert [e.request_id for e in events] == [_values(n)["$context.requestId"] for n in range(1, 4)]
        first = events[0]
        assert (first.api_id, first.stage, first.method, first.status, first.protocol) == (
            "a1b2c3",
            "prod",
            "POST",
            200,
            "HTTP/1.1",
        )
        assert first.response_length == 512 and first.source_ip == "198.51.100.1"
        assert first.time == datetime(2026, 11, 27, 5, 1, tzinfo=UTC)
        assert first.raw == lines[0]
        assert first.throttled is False and first.partition_key() == "acme/a1b2c3"
        if template["api_type"] == "REST":
            assert (first.path, first.route) == ("/orders/{id}", "/orders/{id}")
        else:
            assert first.route == "POST /orders/{id}"


@corpus.needed
def test_event_id_is_stable_per_api_and_request() -> None:
    template = _templates("json")[1]["template"]
    line = _render(template, _values(7)).encode()
    one = apigateway.parse(line, IngestContext(params={"api": "a1"})).events[0]
    again = apigateway.parse(line, IngestContext(params={"api": "a1"})).events[0]
    other_api = apigateway.parse(line, IngestContext(params={"api": "b2"})).events[0]
    assert one.event_id == again.event_id != other_api.event_id
    without_id = line.replace(b'"requestId"', b'"unused"')
    (a, b) = (apigateway.parse(without_id, CTX).events[0], apigateway.parse(without_id + b" ", CTX).events[0])
    assert a.request_id == "" and a.event_id == b.event_id != one.event_id


@corpus.needed
def test_non_json_template_lines_are_dead_lettered() -> None:
    json_line = _render(_templates("json")[0]["template"], _values(1))
    other = [_render(t["template"], _values(2)) for t in _templates("other")]
    assert len(other) == 6  # CLF, XML and CSV for REST and HTTP
    clf = [line for line in other if "\n" not in line]
    body = "\n".join([json_line, *clf]).encode()
    parsed = apigateway.parse(body, CTX)
    assert len(parsed.events) == 1
    assert len(parsed.dead) == len(clf)
    assert {d.reason for d in parsed.dead} == {apigateway.NOT_JSON}
    with pytest.raises(UnusableBody, match="use the JSON access-log format"):
        apigateway.parse("\n".join(clf).encode(), CTX)


# A richer JSON template with the $context variables teams add for Lambda integrations and throttling.
_RICH_TEMPLATE = (
    '{"requestId":"$context.requestId","apiId":"$context.apiId","stage":"$context.stage",'
    '"accountId":"$context.accountId","domainName":"$context.domainName","sourceIp":"$context.identity.sourceIp",'
    '"userAgent":"$context.identity.userAgent","requestTimeEpoch":$context.requestTimeEpoch,'
    '"httpMethod":"$context.httpMethod","path":"$context.path","routeKey":"$context.routeKey",'
    '"status":$context.status,"protocol":"$context.protocol","responseLength":"$context.responseLength",'
    '"responseLatency":"$context.responseLatency","integration":{"status":"$context.integration.status",'
    '"latency":"$context.integration.latency","error":"$context.integration.error"},'
    '"integrationStatus":"$context.integrationStatus","error":{"message":"$context.error.message",'
    '"responseType":"$context.error.responseType"},"integrationErrorMessage":"$context.integrationErrorMessage",'
    '"lambdaArn":"$context.integration.integrationArn"}'
)


def _rich(n: int, **overrides: str) -> str:
    values = {
        **_values(n),
        "$context.apiId": "x7y8z9",
        "$context.stage": "$default",
        "$context.accountId": "123456789012",
        "$context.domainName": "x7y8z9.execute-api.eu-central-1.amazonaws.com",
        "$context.identity.userAgent": "curl/8.5.0",
        "$context.requestTimeEpoch": "1795755600123",
        "$context.path": f"/orders/{n}",
        "$context.status": "200",
        "$context.responseLatency": "48",
        "$context.integration.status": "200",
        "$context.integration.latency": "41.5",
        "$context.integration.error": "-",
        "$context.integrationStatus": "200",
        "$context.error.message": "-",
        "$context.error.responseType": "-",
        "$context.integrationErrorMessage": "-",
        "$context.integration.integrationArn": "arn:aws:apigateway:eu-central-1:lambda:path/2015-03-31/functions/"
        "arn:aws:lambda:eu-central-1:123456789012:function:checkout-api:live/invocations",
    }
    values.update({f"$context.{k}": v for k, v in overrides.items()})
    return _render(_RICH_TEMPLATE, values)


def test_rich_http_api_line() -> None:
    (event,) = apigateway.parse(_rich(5).encode(), CTX).events
    assert isinstance(event, ApiAccess)
    assert (event.api_id, event.stage, event.account, event.region) == (
        "x7y8z9",
        "$default",
        "123456789012",
        "eu-central-1",
    )
    assert event.function == "checkout-api"
    assert event.time == datetime(2026, 11, 27, 5, 0, 0, 123000, tzinfo=UTC)
    assert (event.path, event.route, event.status, event.integration_status) == (
        "/orders/5",
        "POST /orders/{id}",
        200,
        200,
    )
    assert (event.latency_ms, event.integration_latency_ms, event.response_length) == (48.0, 41.5, 512)
    assert (event.user_agent, event.error_message, event.throttled) == ("curl/8.5.0", "", False)


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "429", "error.message": "Too Many Requests", "integration.status": "-"},
        {"integration.status": "429", "integrationStatus": "429", "status": "500"},
        {"status": "502", "integrationErrorMessage": "Rate Exceeded."},
        {"status": "503", "error.message": "Rate exceeded"},
    ],
)
def test_throttling_is_detected(overrides: dict[str, str]) -> None:
    (event,) = apigateway.parse(_rich(9, **overrides).encode(), CTX).events
    assert event.throttled is True
    assert event.status == int(overrides["status"])


def test_dash_values_are_absent_and_epoch_seconds_accepted() -> None:
    line = _rich(
        3,
        **{
            "responseLatency": "-",
            "integration.status": "-",
            "integrationStatus": "-",
            "requestTimeEpoch": "1795755600",
            "integration.integrationArn": "-",
        },
    )
    (event,) = apigateway.parse(line.encode(), IngestContext(params={"function": "from-url"})).events
    assert event.latency_ms is None and event.integration_status == 0
    assert event.time == datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert event.function == "from-url"


def test_json_array_body_and_url_params_win() -> None:
    rows = [orjson.loads(_rich(n)) for n in (1, 2)]
    rows[1]["functionName"] = "arn:aws:lambda:eu-central-1:123456789012:function:refunds:prod"
    parsed = apigateway.parse(orjson.dumps(rows), IngestContext(params={"api": "url-api", "stage": "beta"}))
    assert [(e.api_id, e.stage) for e in parsed.events] == [("url-api", "beta")] * 2
    assert [e.function for e in parsed.events] == ["checkout-api", "refunds"]


def test_bad_access_log_lines() -> None:
    good = _rich(1)
    body = "\n".join(
        [
            good,
            '{"unrelated": true}',
            _rich(2, requestTimeEpoch='"yesterday"').replace(
                '"requestTimeEpoch":"yesterday"', '"requestTime":"yesterday"'
            ),
        ]
    ).encode()
    parsed = apigateway.parse(body, CTX)
    assert len(parsed.events) == 1
    assert [d.reason.split(":")[0] for d in parsed.dead] == [
        "not an access-log record",
        "unreadable requestTime 'yesterday'",
    ]
    with pytest.raises(UnusableBody, match="empty body"):
        apigateway.parse(b"\n\n", CTX)


# --- OTLP/HTTP logs -------------------------------------------------------------------------------------------


def _sample_request() -> ExportLogsServiceRequest:
    """The OTLP/JSON sample as a protobuf message, converting the hex ids independently of the parser."""
    doc = copy.deepcopy(_load(OTEL / "logs.json"))
    for resource_logs in doc["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    return json_format.ParseDict(doc, ExportLogsServiceRequest())


@corpus.needed
def test_otlp_json_sample() -> None:
    raw = (OTEL / "logs.json").read_text()
    assert '"traceId": "5B8EFFF798038103D269B633813FC60C"' in raw and '"intValue": "10"' in raw
    parsed = otlp.parse((OTEL / "logs.json").read_bytes(), CTX, "application/json")
    assert parsed.meta == {"rejected_log_records": 0, "error_message": ""}
    (log,) = parsed.events
    assert isinstance(log, FunctionLog)
    assert log.function == "my.service"  # no faas.name: service.name
    assert log.trace_id == "5b8efff798038103d269b633813fc60c"
    assert log.time == datetime(2018, 12, 13, 14, 51, 0, 300000, tzinfo=UTC)
    assert (log.level, log.message, log.source, log.tenant) == ("Information", "Example log record", "otlp", "acme")
    assert log.fields == {
        "service.name": "my.service",
        "otel.scope.name": "my.library",
        "otel.scope.version": "1.0.0",
        "my.scope.attribute": "some scope attribute",
        "string.attribute": "some string",
        "boolean.attribute": "true",
        "int.attribute": "10",
        "double.attribute": "637.704",
        "array.attribute": '["many","values"]',
        "map.attribute.some.map.key": "some value",
        "span_id": "eee19b7ec3c1b174",
    }


@corpus.needed
def test_otlp_protobuf_of_the_same_request_gives_the_same_events() -> None:
    body = _sample_request().SerializeToString()
    from_proto = otlp.parse(body, CTX, "application/x-protobuf")
    from_json = otlp.parse((OTEL / "logs.json").read_bytes(), CTX, "application/json; charset=utf-8")
    assert [e.model_dump() for e in from_proto.events] == [e.model_dump() for e in from_json.events]
    assert from_proto.events[0].trace_id == "5b8efff798038103d269b633813fc60c"
    assert (
        otlp.parse(gzip.compress(body), CTX, "application/x-protobuf").events[0].event_id
        == from_proto.events[0].event_id
    )


@corpus.needed
def test_otlp_event_body_kvlist_becomes_json_message() -> None:
    (log,) = otlp.parse((OTEL / "events.json").read_bytes(), CTX, "application/json").events
    assert orjson.loads(log.message)["title"] == "Free Online GUID Generator"
    assert orjson.loads(log.message)["type"] == 0
    assert log.fields["event.name"] == "browser.page_view"
    assert log.trace_id == ""


def _lambda_request(records: list[dict[str, Any]]) -> bytes:
    attributes = [
        {"key": k, "value": {"stringValue": v}}
        for k, v in {
            "faas.name": "checkout",
            "faas.version": "7",
            "cloud.region": "eu-west-1",
            "cloud.account.id": "123456789012",
            "service.name": "shop",
        }.items()
    ]
    attributes.append(
        {"key": "aws.log.group.names", "value": {"arrayValue": {"values": [{"stringValue": "/aws/lambda/checkout"}]}}}
    )
    return orjson.dumps(
        {"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": records}]}]}
    )


def test_otlp_lambda_attributes_and_partial_success() -> None:
    good = {
        "observedTimeUnixNano": "1700000000000000000",
        "severityNumber": 17,
        "body": {"stringValue": "boom"},
        "attributes": [{"key": "faas.invocation_id", "value": {"stringValue": "req-1"}}],
        "traceId": "0af7651916cd43dd8448eb211c80319c",
    }
    bad_trace = {**good, "traceId": "not-a-trace-id"}
    bad_type = {**good, "severityNumber": {"nested": 1}}
    parsed = otlp.parse(_lambda_request([good, bad_trace, bad_type]), CTX, "application/json")
    (log,) = parsed.events
    assert (log.function, log.version, log.region, log.account) == ("checkout", "7", "eu-west-1", "123456789012")
    assert (log.request_id, log.level, log.message) == ("req-1", "ERROR", "boom")
    assert log.log_group == "/aws/lambda/checkout"
    assert log.time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parsed.meta["rejected_log_records"] == 2
    assert "traceId is not 32 hex digits" in parsed.meta["error_message"]
    assert len(parsed.dead) == 2


# a traces export sent to the logs endpoint by mistake
_SPANS_REQUEST = (
    b'{"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", '
    b'"spanId": "EEE19B7EC3C1B174", "name": "GET /orders", "kind": 2}]}]}]}'
)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"not json", "application/json", "not OTLP/JSON"),
        (b"[1]", "application/json", "a JSON list"),
        (_SPANS_REQUEST, "application/json", "spans request"),
        (b"\x0a\xff\xff\xff", "application/x-protobuf", "not an OTLP protobuf"),
        (b"\x78\x01", "application/x-protobuf", "not an OTLP protobuf"),
    ],
)
def test_otlp_undecodable(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(UnusableBody, match=message):
        otlp.parse(body, CTX, content_type)


# --- the real OpenTelemetry SDK exporter ------------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        answer = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Capture", (_Capture,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/logs", received
    finally:
        server.shutdown()
        server.server_close()


def test_real_sdk_exporter_request(capture_server: tuple[str, list[tuple[str, str, bytes]]]) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    url, received = capture_server
    resource = Resource.create(
        {
            "faas.name": "payments",
            "faas.version": "$LATEST",
            "cloud.region": "us-east-2",
            "cloud.account.id": "210987654321",
            "service.name": "payments-svc",
        }
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=url, timeout=5)))
    logger = provider.get_logger("payments.handler", "2.1.0")
    tracer = TracerProvider(resource=resource).get_tracer("payments.handler")
    with tracer.start_as_current_span("charge") as span:
        logger.emit(
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body="card declined",
            attributes={
                "faas.invocation_id": "d6f1b3a2-0c1e-4f55-9a43-1b2c3d4e5f60",
                "order.id": 4211,
                "retry": True,
                "amount": 12.5,
            },
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
    logger.emit(severity_number=SeverityNumber.INFO, body={"event": "charged", "cents": 1250})
    provider.shutdown()

    assert [(path, content_type) for path, content_type, _ in received] == [("/v1/logs", "application/x-protobuf")] * 2
    events = [e for _, content_type, body in received for e in otlp.parse(body, CTX, content_type).events]
    declined, charged = events
    assert (declined.function, declined.version, declined.region, declined.account) == (
        "payments",
        "$LATEST",
        "us-east-2",
        "210987654321",
    )
    assert declined.request_id == "d6f1b3a2-0c1e-4f55-9a43-1b2c3d4e5f60"
    assert (declined.level, declined.message, declined.trace_id) == ("ERROR", "card declined", trace_id)
    assert declined.fields["order.id"] == "4211" and declined.fields["retry"] == "true"
    assert declined.fields["amount"] == "12.5" and declined.fields["otel.scope.name"] == "payments.handler"
    assert declined.fields["telemetry.sdk.language"] == "python"
    assert abs((declined.time - datetime.now(UTC)).total_seconds()) < 60
    assert charged.level == "INFO"  # from severityNumber: the SDK sent no severityText
    assert orjson.loads(charged.message) == {"event": "charged", "cents": 1250}
    assert charged.trace_id == "" and charged.event_id != declined.event_id
