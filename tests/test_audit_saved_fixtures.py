"""The saved compliance queries on a real chDB store holding fixture records written for these tests.

Pins, without the third-party corpus (``tests/test_audit_saved.py`` is the corpus version), for EVERY saved query
the exact set of records it must find, by eventID, and the near misses stored beside them that it must not find:
a read-only call of the same service, another auth type, an event name that only starts like a matched one, a
burst spread too thin or split between accounts, a region the account used before, a corrected original. Also
each query's parameters (thresholds, windows, baseline days), the time range, and the caller's tenant.

The store holds the detonation techniques ``SAVED_TECHNIQUES`` of ``tests/fixtures/cloudtrail_set.py`` (labelled
``technique#position``) and ``saved_records()`` of ``tests/fixtures/cloudtrail_saved.py`` (labelled by their
keys) for tenant "default", and ``globex_records()`` for tenant "globex".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fnscope.dashboards.saved_queries import BY_NAME, SAVED_QUERIES
from fnscope.query.audit_saved import run_saved
from fnscope.query.runner import QueryRunner
from tests.fixtures.cloudtrail_saved import (
    ACCOUNT_A,
    ACCOUNT_C,
    REGION_SINCE,
    SAVED_TECHNIQUES,
    globex_records,
    saved_records,
)
from tests.fixtures.cloudtrail_set import T0, technique
from tests.test_audit_support import chdb_store, write

SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def _series(label: str, n: int) -> frozenset[str]:
    return frozenset(f"{label}-{i}" for i in range(n))


def _at(name: str, *positions: int) -> frozenset[str]:
    """Records of a detonation technique, by position."""
    return frozenset(f"{name}#{i}" for i in positions)


@dataclass(frozen=True)
class Case:
    hits: frozenset[str]  # exactly what the query finds
    near: frozenset[str]  # stored beside them, one difference away: never found
    since: datetime = SINCE
    params: dict[str, Any] = field(default_factory=dict)


OVERWRITE_CODE = _at("persistence.lambda-overwrite-code", 0)
LAYER_EXTENSION = _at("persistence.lambda-layer-extension", 0)
BACKDOOR_FUNCTION = _at("persistence.lambda-backdoor-function", 0)
ADMIN_USER = "persistence.iam-create-admin-user"  # 0 CreateUser, 1 AttachUserPolicy, 2 CreateAccessKey
LOGIN_PROFILE = "persistence.iam-create-user-login-profile"  # 0 GetCallerIdentity, 1 Delete-, 2 CreateLoginProfile
SECRETS_DENIED = _at("credential-access.secretsmanager-retrieve-secrets", 10, 11)
EC2_DENIED = _at("discovery.ec2-discovery-denied", *range(11))
FAILED_LOGINS = (
    _series("failed.burst", 4)
    | _series("failed.pair", 2)
    | _series("failed.other-account", 2)
    | _series("failed.slow", 3)
    | {"root.login-failed"}
)

CASES: dict[str, Case] = {
    "root-account-usage": Case(
        _at("initial-access.root-console-login", 0) | {"root.api-call", "root.login-without-mfa", "root.login-failed"},
        # a service acting for root (invokedBy), a service event, an IAM user named root, an AWS service
        frozenset({"root.invoked-by-service", "root.service-event", "root.iam-user-named-root", "root.aws-service"})
        | _at("initial-access.console-login-without-mfa", 0),
    ),
    "console-login-without-mfa": Case(
        _at("initial-access.console-login-without-mfa", 0) | {"root.login-without-mfa", "login.mfa-unknown"},
        # MFA used ("Yes", "YES"), a federated session, failures without MFA
        _at("initial-access.root-console-login", 0)
        | {"login.mfa-upper-case", "login.federated", "root.login-failed", "failed.burst-0", "failed.burst-success"},
    ),
    "console-login-failures": Case(
        _series("failed.burst", 4),
        # the burst address's success, two failures per address and account, three failures ten minutes apart
        FAILED_LOGINS - _series("failed.burst", 4) | {"failed.burst-success"},
    ),
    "access-denied-spike": Case(
        EC2_DENIED | _series("denied.probe", 14),
        # refusals ninety seconds apart, errors that are not refusals, two refusals of another principal
        _series("denied.slow", 12) | _series("denied.throttled", 12) | SECRETS_DENIED,
    ),
    "iam-policy-changes": Case(
        _at(ADMIN_USER, 1)
        | _at("persistence.iam-backdoor-role", 0)
        | {"iam.put-role-policy", "iam.create-policy-version"},
        _at(ADMIN_USER, 0, 2) | {"iam.list-attached", "iam.sso-attach"},
    ),
    "cloudtrail-changes": Case(
        _at("defense-evasion.cloudtrail-stop", 0)
        | _at("defense-evasion.cloudtrail-delete", 0)
        | {"trail.selectors", "trail.start"},
        frozenset({"trail.describe", "trail.status", "trail.lookup"}),
    ),
    "access-keys-created": Case(
        _at(ADMIN_USER, 2) | {"keys.own"},
        _at(ADMIN_USER, 0) | {"keys.update", "keys.list"},
    ),
    "iam-login-profile-changes": Case(
        _at(LOGIN_PROFILE, 1, 2) | {"profile.update"},
        _at(LOGIN_PROFILE, 0) | {"profile.get", "profile.change-password"},
    ),
    "lambda-function-changes": Case(
        OVERWRITE_CODE
        | LAYER_EXTENSION
        | BACKDOOR_FUNCTION
        | {"code.create", "code.create-with-layer", "code.corrected", "code.correction", "code.delayed"}
        | {"lambda-config.environment", "lambda-config.invoke-config", "permission.service", "permission.remove"}
        | {"url.public", "url.made-public", "url.iam"}
        | {"concurrency.put", "concurrency.delete", "concurrency.provisioned"},
        # reads of functions, policies and concurrency; layer versions (not a function's change until given to one)
        frozenset({"code.get", "lambda-config.get", "permission.get-policy", "concurrency.get"})
        | {"layer.publish", "layer.share", "layer.get"},
    ),
    "lambda-code-changes": Case(
        # a correction hides nothing: the original it names is found beside it
        OVERWRITE_CODE | {"code.create", "code.create-with-layer", "code.corrected", "code.correction", "code.delayed"},
        # CreateFunctionUrlConfig (starts with CreateFunction), a read
        LAYER_EXTENSION | {"url.public", "url.iam", "code.get", "lambda-config.environment"},
    ),
    "lambda-config-changes": Case(
        LAYER_EXTENSION | {"lambda-config.environment", "lambda-config.invoke-config"},
        OVERWRITE_CODE | {"lambda-config.get"},
    ),
    "lambda-layer-changes": Case(
        LAYER_EXTENSION | {"code.create-with-layer", "layer.publish", "layer.share"},
        # a configuration change and a new function without layers, a read of a layer
        frozenset({"lambda-config.environment", "code.create", "layer.get"}),
    ),
    "lambda-permission-changes": Case(
        BACKDOOR_FUNCTION | {"permission.service", "permission.remove"},
        frozenset({"permission.get-policy", "layer.share"}),
    ),
    "lambda-public-access": Case(
        BACKDOOR_FUNCTION | {"url.public", "url.made-public"},
        # a permission for one service, a URL with IAM auth, a layer shared with everyone
        frozenset({"permission.service", "url.iam", "layer.share"}),
    ),
    "lambda-concurrency-changes": Case(
        frozenset({"concurrency.put", "concurrency.delete", "concurrency.provisioned"}),
        frozenset({"concurrency.get"}),
    ),
    "security-group-changes": Case(frozenset({"sg.ingress", "sg.create"}), frozenset({"sg.describe"})),
    "kms-key-disabled-or-deleted": Case(
        frozenset({"kms.disable", "kms.schedule-deletion"}),
        frozenset({"kms.describe", "kms.enable", "root.aws-service"}),
    ),
    "aws-config-changes": Case(
        frozenset({"awsconfig.stop-recorder", "awsconfig.delete-channel"}),
        frozenset({"awsconfig.describe", "awsconfig.start-recorder"}),
    ),
    "logging-deleted": Case(
        frozenset({"logs.flow-delete", "logs.resolver-delete"}),
        frozenset({"logs.flow-describe", "logs.flow-create"}),
    ),
    "organizations-changes": Case(
        _at("defense-evasion.organizations-leave", 1) | {"org.detach-policy"},
        _at("defense-evasion.organizations-leave", 0) | {"org.describe"},
    ),
    "snapshot-or-image-shared": Case(
        _at("exfiltration.ec2-share-ebs-snapshot", 0) | {"share.ami", "share.rds-snapshot"},
        frozenset({"share.describe", "share.create-snapshot"}),
    ),
    "new-region-activity": Case(
        frozenset({"region.a-new", "region.a-new-again"}),
        # a region the account used before, an account whose one region is not new, an account active only
        # before the baseline, accounts with no activity before the window at all
        frozenset({"region.a-seen-before", "region.a-before", "region.b-same", "region.c-new"}) | OVERWRITE_CODE,
        since=REGION_SINCE,
    ),
}


@dataclass
class Store:
    runner: QueryRunner
    labels: dict[str, str]  # eventID -> label
    tenants: dict[str, str]  # label -> tenant
    times: dict[str, datetime]  # label -> eventTime


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    labelled: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in SAVED_TECHNIQUES:
        for n, record in enumerate(technique(name)):
            labelled[f"{name}#{n}"] = ("default", record)
    labelled.update({label: ("default", record) for label, record in saved_records().items()})
    labelled.update({label: ("globex", record) for label, record in globex_records().items()})
    labels = {record["eventID"]: label for label, (_, record) in labelled.items()}
    assert len(labels) == len(labelled)  # one eventID per label
    with chdb_store(tmp_path_factory.mktemp("saved-fixtures") / "store") as client:
        for tenant in ("default", "globex"):
            stored = write(client, [record for t, record in labelled.values() if t == tenant], tenant)
            assert [e.event_id for e in stored] == [r["eventID"] for t, r in labelled.values() if t == tenant]
        yield Store(
            QueryRunner(client),
            labels,
            {label: tenant for label, (tenant, _) in labelled.items()},
            {label: datetime.fromisoformat(record["eventTime"]) for label, (_, record) in labelled.items()},
        )


def rows(
    store: Store,
    name: str,
    tenant: str = "default",
    since: datetime = SINCE,
    until: datetime | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    return run_saved(store.runner, BY_NAME[name], tenant, since, until or datetime.now(UTC), 10_000, params)


def found(store: Store, name: str, tenant: str = "default", since: datetime = SINCE, **params: Any) -> set[str]:
    """The labels of the records the query found (every eventID of a grouped row)."""
    ids = [i for row in rows(store, name, tenant, since, **params) for i in row.get("event_ids", [row.get("event_id")])]
    assert len(ids) == len(set(ids)), f"{name}: a record found twice"
    return {store.labels[i] for i in ids}


def test_every_saved_query_has_fixtures_and_is_described_with_its_control() -> None:
    assert set(CASES) == set(BY_NAME) and len(BY_NAME) == len(SAVED_QUERIES)
    for query in SAVED_QUERIES:
        assert query.title and query.description and query.controls, query.name


@pytest.mark.parametrize("name", list(CASES))
def test_query_finds_exactly_its_records_and_none_of_the_near_misses(store: Store, name: str) -> None:
    case = CASES[name]
    assert case.hits and case.near and not case.hits & case.near
    for label in case.hits | case.near:
        assert store.tenants.get(label) == "default", f"{label} is not in the store"
    got = found(store, name, since=case.since, **case.params)
    assert not got & case.near, f"{name} found near misses {sorted(got & case.near)}"
    assert got == case.hits


def test_failed_login_threshold_and_window_are_parameters(store: Store) -> None:
    assert found(store, "console-login-failures", threshold=1) == FAILED_LOGINS
    # three failures ten minutes apart are a burst in a 30-minute window; two failures per account never are
    assert found(store, "console-login-failures", window_minutes=30) == _series("failed.burst", 4) | _series(
        "failed.slow", 3
    )
    (burst,) = rows(store, "console-login-failures")
    assert (burst["source_ip"], burst["peak"], burst["events"]) == ("198.51.100.7", 4, 4)


def test_access_denied_threshold_and_window_are_parameters(store: Store) -> None:
    assert found(store, "access-denied-spike", threshold=12) == _series("denied.probe", 14)  # 14 refusals; ec2: 11
    assert found(store, "access-denied-spike", threshold=2) == (
        EC2_DENIED | _series("denied.probe", 14) | _series("denied.slow", 12) | SECRETS_DENIED
    )
    # twelve refusals ninety seconds apart fit a 20-minute window; errors that are not refusals never count
    assert found(store, "access-denied-spike", window_minutes=20) == CASES["access-denied-spike"].hits | _series(
        "denied.slow", 12
    )
    peaks = {row["principal_arn"].rsplit("/", 1)[-1]: row["peak"] for row in rows(store, "access-denied-spike")}
    assert peaks == {"probe-bot": 14, "detonation-operator": 11}


def test_new_region_rows_and_baseline_days(store: Store) -> None:
    got = rows(store, "new-region-activity", since=REGION_SINCE)
    assert [(r["account"], r["region"], r["events"]) for r in got] == [(ACCOUNT_A, "eu-central-2", 2)]
    # with a longer baseline, the account active long ago is judged too, and its new region found
    longer = rows(store, "new-region-activity", since=REGION_SINCE, baseline_days=200)
    assert sorted((r["account"], r["region"]) for r in longer) == [
        (ACCOUNT_A, "eu-central-2"),
        (ACCOUNT_C, "sa-east-1"),
    ]
    assert found(store, "new-region-activity", since=REGION_SINCE, baseline_days=200) == {
        "region.a-new",
        "region.a-new-again",
        "region.c-new",
    }
    # from the beginning of time no account has a baseline: nothing is new
    assert rows(store, "new-region-activity") == []


@pytest.mark.parametrize("name", list(CASES))
def test_the_time_range_limits_every_query(store: Store, name: str) -> None:
    case = CASES[name]
    first, *_, last = sorted(store.times[label] for label in case.hits)
    assert rows(store, name, since=case.since, until=first - timedelta(seconds=1)) == []
    assert rows(store, name, since=last + timedelta(seconds=1)) == []


def test_the_time_range_cuts_between_records(store: Store) -> None:
    later = found(store, "lambda-code-changes", since=T0 + timedelta(minutes=1))
    assert later == CASES["lambda-code-changes"].hits - OVERWRITE_CODE  # the detonation ran at T0


@pytest.mark.parametrize(
    ("name", "hits"),
    [
        ("root-account-usage", {"globex.root-login"}),
        ("lambda-code-changes", {"globex.code", "globex.correction-of-default"}),
        ("access-denied-spike", set(_series("globex.denied", 10))),
        ("console-login-without-mfa", set()),
    ],
)
def test_a_tenant_sees_only_its_own_records(store: Store, name: str, hits: set[str]) -> None:
    assert found(store, name, "globex") == hits
    assert not any(label.startswith("globex.") for label in found(store, name))
    assert rows(store, name, "initech") == []


def test_a_correction_hides_nothing_and_names_the_event_of_its_own_tenant(store: Store) -> None:
    # globex.correction-of-default names default's code.create as the event it corrects
    assert {"code.create", "code.corrected", "code.correction"} <= found(store, "lambda-code-changes")
    runner, labels = store.runner, store.labels
    rows = run_saved(runner, BY_NAME["lambda-code-changes"], "default", SINCE, datetime.now(UTC), 10_000, {})
    by_label = {labels[row["event_id"]]: row for row in rows}
    correction = by_label["code.correction"]
    assert by_label["code.corrected"]["corrected_by"] == [correction["event_id"]]
    assert correction["corrects"] == by_label["code.corrected"]["event_id"]
    assert by_label["code.create"]["corrected_by"] == []  # another tenant's correction names nothing here
