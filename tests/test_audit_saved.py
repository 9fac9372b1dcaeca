"""The saved compliance queries against the third-party corpus's CloudTrail samples on a real chDB store (a corpus
test, tests/corpus.py; tests/test_audit_saved_fixtures.py pins every query on records written for the tests).

Each query must find the Stratus Red Team detonations (or AWS doc examples) it is about, and nothing else.
Where no sample has the event (KMS, AWS Config, concurrency, function URLs, a burst of failed logins, a new
region), records are derived from a real one, and a near miss (a read, another auth type, another region
seen before) is stored beside each to prove the query does not over-match.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fnscope.dashboards.saved_queries import BY_NAME, SAVED_QUERIES
from fnscope.query.audit_saved import run_saved
from fnscope.query.runner import QueryRunner
from tests import corpus
from tests.test_audit_support import STRATUS, chdb_store, derive, doc_records, stratus_records, write

pytestmark = corpus.needed
SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def _lambda_code() -> dict[str, Any]:
    return stratus_records("persistence.lambda-overwrite-code")[0]


def _stop() -> dict[str, Any]:
    return stratus_records("defense-evasion.cloudtrail-stop")[0]


def _failed_login() -> dict[str, Any]:
    return next(r for r in doc_records() if r["_source"].endswith("console-sign-in-events.md#L103"))


def _derived() -> dict[str, dict[str, Any]]:
    """Label -> record: each derived from a real record."""
    code, stop, failed = _lambda_code(), _stop(), _failed_login()
    t0 = datetime.fromisoformat(failed["eventTime"].replace("Z", "+00:00"))
    burst = {
        f"burst-{i}": derive(
            failed, sourceIPAddress="198.51.100.7", eventTime=(t0 + timedelta(seconds=20 * i)).isoformat()
        )
        for i in range(4)
    }
    return {
        **burst,
        "kms-disable": derive(stop, eventSource="kms.amazonaws.com", eventName="DisableKey"),
        "kms-delete": derive(stop, eventSource="kms.amazonaws.com", eventName="ScheduleKeyDeletion"),
        "kms-describe": derive(stop, eventSource="kms.amazonaws.com", eventName="DescribeKey", readOnly=True),
        "config-stop": derive(stop, eventSource="config.amazonaws.com", eventName="StopConfigurationRecorder"),
        "concurrency-put": derive(code, eventName="PutFunctionConcurrency20171031"),
        "concurrency-delete": derive(code, eventName="DeleteFunctionConcurrency20171031"),
        "concurrency-get": derive(code, eventName="GetFunctionConcurrency20190930", readOnly=True),
        "url-public": derive(
            code,
            eventName="CreateFunctionUrlConfig20211031",
            requestParameters={"functionName": "stratus-red-team-owc-func", "authType": "NONE"},
        ),
        "url-iam": derive(
            code,
            eventName="CreateFunctionUrlConfig20211031",
            requestParameters={"functionName": "stratus-red-team-owc-func", "authType": "AWS_IAM"},
        ),
        "layer-publish": derive(code, eventName="PublishLayerVersion20181031"),
        # the lambda-overwrite-code account, seen in us-east-1 before it touched its detonation region
        "baseline-us-east-1": derive(
            code, awsRegion="us-east-1", eventTime="2024-07-15T10:00:00Z", eventName="GetFunction20150331v2"
        ),
        "later-us-east-1": derive(
            code, awsRegion="us-east-1", eventTime="2024-08-05T10:00:00Z", eventName="GetFunction20150331v2"
        ),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryRunner, dict[str, str]]]:
    """All 35 detonation files, the doc examples and the derived records; event id -> label."""
    labels: dict[str, str] = {}
    with chdb_store(Path(tmp_path_factory.mktemp("saved")) / "store") as client:
        for path in sorted(STRATUS.glob("*.json")):
            name = path.name.removeprefix("aws.").removesuffix(".json")
            for event in write(client, stratus_records(name)):
                labels[event.event_id] = name
        for record in doc_records():
            for event in write(client, [record]):
                labels.setdefault(event.event_id, f"doc:{record['_source'].rsplit('#', 1)[1]}:{event.action}")
        for label, record in _derived().items():
            for event in write(client, [record]):
                labels[event.event_id] = label
        yield QueryRunner(client), labels


def found(store: tuple[QueryRunner, dict[str, str]], name: str, since: datetime = SINCE, **params: Any) -> set[str]:
    runner, labels = store
    rows = run_saved(runner, BY_NAME[name], "default", since, datetime.now(UTC), 10_000, params)
    ids = [i for row in rows for i in (row["event_ids"] if "event_ids" in row else [row["event_id"]])]
    return {labels[i] for i in ids}


EXPECTED: dict[str, set[str]] = {
    "console-login-without-mfa": {
        "initial-access.console-login-without-mfa",
        "doc:L29:ConsoleLogin",  # MFAUsed "No", success
        "doc:L163:ConsoleLogin",  # the CloudTrail tutorial's sign-in, MFAUsed "No"
        "doc:L216:ConsoleLogin",  # the docs reuse L29's eventID with other content: a second version, kept
    },
    "access-denied-spike": {"credential-access.ec2-get-password-data", "discovery.ec2-download-user-data"},
    "iam-policy-changes": {
        "persistence.iam-backdoor-role",
        "persistence.iam-create-admin-user",
        "persistence.iam-create-backdoor-role",
    },
    "cloudtrail-changes": {
        "defense-evasion.cloudtrail-delete",
        "defense-evasion.cloudtrail-event-selectors",
        "defense-evasion.cloudtrail-stop",
        "doc:L8:StartLogging",
        "doc:L254:UpdateTrail",
    },
    "access-keys-created": {"persistence.iam-backdoor-user", "persistence.iam-create-admin-user"},
    "iam-login-profile-changes": {
        "persistence.iam-create-user-login-profile",
        "privilege-escalation.iam-update-user-login-profile",
    },
    "lambda-function-changes": {
        "persistence.lambda-overwrite-code",
        "persistence.lambda-layer-extension",
        "persistence.lambda-backdoor-function",
        "doc:L75:DeleteFunction",  # the Lambda developer guide's example
        "concurrency-put",
        "concurrency-delete",
        "url-public",
        "url-iam",
    },
    "lambda-code-changes": {"persistence.lambda-overwrite-code"},
    "lambda-config-changes": {"persistence.lambda-layer-extension"},
    "lambda-layer-changes": {"persistence.lambda-layer-extension", "layer-publish"},
    "lambda-permission-changes": {"persistence.lambda-backdoor-function"},
    "lambda-public-access": {"persistence.lambda-backdoor-function", "url-public"},
    "lambda-concurrency-changes": {"concurrency-put", "concurrency-delete"},
    "security-group-changes": {"exfiltration.ec2-security-group-open-port-22-ingress"},
    "kms-key-disabled-or-deleted": {"kms-disable", "kms-delete"},
    "aws-config-changes": {"config-stop"},
    "logging-deleted": {"defense-evasion.dns-delete-logs", "defense-evasion.vpc-remove-flow-logs"},
    "organizations-changes": {"defense-evasion.organizations-leave"},
    "snapshot-or-image-shared": {
        "exfiltration.ec2-share-ami",
        "exfiltration.ec2-share-ebs-snapshot",
        "exfiltration.rds-share-snapshot",
    },
    "console-login-failures": {f"burst-{i}" for i in range(4)},
}


def test_the_library_has_at_least_15_queries_each_described_with_its_control() -> None:
    assert len(SAVED_QUERIES) >= 15
    assert len(BY_NAME) == len(SAVED_QUERIES)
    for query in SAVED_QUERIES:
        assert query.description and query.title and query.controls, query.name
    cis = {c for q in SAVED_QUERIES for c in q.controls if c.startswith("CIS AWS Foundations 4.")}
    assert len(cis) >= 8  # the CloudWatch monitoring items: 4.1-4.7, 4.9, 4.10, ...
    assert set(EXPECTED) | {"root-account-usage", "new-region-activity"} == set(BY_NAME)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_query_finds_its_detonation_and_nothing_else(store: tuple[QueryRunner, dict[str, str]], name: str) -> None:
    assert found(store, name) == EXPECTED[name]


def test_root_usage_is_the_root_user_itself_not_an_iam_user(store: tuple[QueryRunner, dict[str, str]]) -> None:
    got = found(store, "root-account-usage")
    assert {"doc:L323:EnableMFADevice", "doc:L364:PasswordUpdated", "doc:L287:ConsoleLogin"} <= got
    assert not any(label.startswith(("doc:L29:", "doc:L67:", "doc:L103:", "doc:L163:")) for label in got)
    assert not any(not label.startswith("doc:") for label in got)  # no detonation ran as root
    assert "doc:L8:RotateKey" not in got  # an AWS service event, not the root user


def test_failed_login_threshold_is_a_parameter(store: tuple[QueryRunner, dict[str, str]]) -> None:
    single = found(store, "console-login-failures", threshold=1)
    # the two real failures (an IAM user and root) are single attempts: only a threshold of 1 shows them
    assert {"doc:L103:ConsoleLogin", "doc:L287:ConsoleLogin"} <= single
    assert not {"doc:L103:ConsoleLogin", "doc:L287:ConsoleLogin"} & found(store, "console-login-failures")


def test_access_denied_spike_threshold(store: tuple[QueryRunner, dict[str, str]]) -> None:
    # ec2-get-password-data has 30 denied calls, ec2-download-user-data 15: a threshold of 20 keeps one
    assert found(store, "access-denied-spike", threshold=20) == {"credential-access.ec2-get-password-data"}
    assert "defense-evasion.organizations-leave" in found(store, "access-denied-spike", threshold=1)


def test_new_region_is_a_first_visit_of_an_account_that_was_active_elsewhere(
    store: tuple[QueryRunner, dict[str, str]],
) -> None:
    rows = run_saved(
        store[0], BY_NAME["new-region-activity"], "default", datetime(2024, 7, 25, tzinfo=UTC), datetime.now(UTC)
    )
    code = _lambda_code()
    # Only the overwrite-code account had activity before (in us-east-1); its detonation region is new to it.
    # Its later us-east-1 call is not new, and accounts with no earlier activity are not judged.
    assert [(r["account"], r["region"]) for r in rows] == [(code["recipientAccountId"], code["awsRegion"])]
    assert {store[1][i] for i in rows[0]["event_ids"]} == {"persistence.lambda-overwrite-code"} | {
        label for label in ("concurrency-put", "concurrency-delete", "concurrency-get", "url-public", "url-iam")
    } | {"layer-publish"}


def test_lambda_names_match_with_and_without_api_dates_but_not_longer_names(
    store: tuple[QueryRunner, dict[str, str]],
) -> None:
    # CreateFunctionUrlConfig starts with CreateFunction: it is not a code change
    assert "url-public" not in found(store, "lambda-code-changes")
    assert "url-iam" not in found(store, "lambda-public-access")


def test_time_range_limits_every_query(store: tuple[QueryRunner, dict[str, str]]) -> None:
    assert found(store, "lambda-code-changes", since=datetime(2024, 8, 2, tzinfo=UTC)) == set()
