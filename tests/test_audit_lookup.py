"""Audit searches by principal and resource read v006's ``audit_lookup``; they must answer exactly what reading
``audit_events`` with FINAL answers. On a real chDB store with the real detonation records: two tenants sharing
event ids, a re-delivery that changed a field (a second version), and a CloudTrail correction. Run on the detonation set written for
the tests, and on the third-party corpus's too where it is there."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from fnscope.query.audit import AuditRequest, audit, audit_sql, audit_where, with_versions
from fnscope.query.runner import QueryRunner
from tests import corpus
from tests.test_audit_support import FIXTURE_SET, Detonations, chdb_store, corpus_set, derive, write

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
CODE = "persistence.lambda-overwrite-code"


@dataclass(frozen=True)
class Case:
    """A detonation set and what its searches name: the function CODE changed, the user behind CODE (who also
    has failed calls), and searches of every kind, each of which must answer as audit_events does."""

    detonations: Detonations
    function: str
    principal: str
    searches: list[dict[str, Any]]

    def technique(self, name: str) -> list[dict[str, Any]]:
        return self.detonations.technique(name)


FIXTURE_SEARCHES: list[dict[str, Any]] = [
    {"principal": "detonation-operator"},
    {"principal": "DETONATION-OPERATOR", "failed": True},
    {"principal": "ci-runner"},  # part of an assumed-role ARN
    {"principal": "assumed-role/ci-runner/build-4711"},
    {"principal": "no-such-principal"},
    {"resource": "billing-sync"},  # a function name
    {"resource": "billing-sync", "changes": True},
    {"resource": "arn:aws:lambda:ap-westeast-2r:111122223333:function:billing-sync"},
    {"resource": "credentials-1"},  # an SSM parameter name: not credentials-10
    {"resource": "arn:aws:ssm:ap-westeast-2r:111122223333:parameter/credentials/app/"},  # an ARN prefix
    {"resource": "parameter/credentials/app/credentials-2"},  # the end of an ARN
    {"resource": "leave-org-role"},  # a role name
    {"resource": "bill"},  # a prefix of names is not a match
    {"resource": "ssm:"},  # ends with a separator: read from audit_events
    {"principal": "detonation-operator", "resource": "credentials-1", "source": "aws-cli"},
]
CORPUS_SEARCHES: list[dict[str, Any]] = [
    {"principal": "christophe"},
    {"principal": "CHRISTOPHE", "failed": True},
    {"principal": "stratus-red-team-ec2"},  # part of an assumed-role ARN
    {"principal": "assumed-role/test-role/cli"},
    {"principal": "no-such-principal"},
    {"resource": "stratus-red-team-olc-func-vayhjqkdav"},  # a function name
    {"resource": "stratus-red-team-olc-func-vayhjqkdav", "changes": True},
    {"resource": "arn:aws:lambda:ap-westeast-2r:266106314375:function:stratus-red-team-olc-func-vayhjqkdav"},
    {"resource": "credentials-1"},  # an SSM parameter name: not credentials-10
    {"resource": "arn:aws:ssm:cn-west-3r:933175858973:parameter/credentials/stratus-red-team/"},  # an ARN prefix
    {"resource": "parameter/credentials/stratus-red-team/credentials-2"},  # the end of an ARN
    {"resource": "stratus-red-team-leave-org-role"},  # a role name
    {"resource": "fn"},  # a prefix of names is not a match
    {"resource": "ssm:"},  # ends with a separator: read from audit_events
    {"principal": "christophe", "resource": "credentials-1", "source": "aws-cli"},
]


@pytest.fixture(scope="module", params=["fixtures", pytest.param("corpus", marks=corpus.needed)])
def case(request: pytest.FixtureRequest) -> Case:
    if request.param == "corpus":
        return Case(corpus_set(), "stratus-red-team-olc-func-vayhjqkdav", "christophe", CORPUS_SEARCHES)
    return Case(FIXTURE_SET, "billing-sync", "detonation-operator", FIXTURE_SEARCHES)


@pytest.fixture(scope="module")
def runner(case: Case, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryRunner]:
    with chdb_store(tmp_path_factory.mktemp("lookup") / "store") as client:
        write(client, case.detonations.all_records(), "acme")
        write(client, case.technique(CODE), "globex")  # the same event ids, another tenant
        redelivered = [{**r, "sourceIPAddress": "203.0.113.50"} for r in case.technique(CODE)]
        write(client, redelivered, "acme")  # arrives later with other content: a second version
        original = case.technique("persistence.iam-create-user-login-profile")[0]
        correction = derive(
            original,
            sourceIPAddress="192.0.2.10",
            addendum={"reason": "UPDATED_DATA", "originalEventID": original["eventID"]},
        )
        write(client, [correction], "acme")
        yield QueryRunner(client)


def reference(runner: QueryRunner, req: AuditRequest) -> list[dict[str, Any]]:
    """The same request answered from audit_events with FINAL (the definition of what is visible)."""
    where = audit_where(req)
    return with_versions(runner, req.tenant, runner.rows(audit_sql(where), {**where.params, "limit": req.limit}))


def ask(tenant: str = "acme", **kwargs: Any) -> AuditRequest:
    return AuditRequest(tenant, since=SINCE, limit=10_000, **kwargs)


def _first(field: str, records: list[dict[str, Any]]) -> str:
    return next(r["userIdentity"][field] for r in records if r["userIdentity"].get(field))


def test_a_search_answers_exactly_what_audit_events_answers(runner: QueryRunner, case: Case) -> None:
    for search in case.searches:
        for tenant in ("acme", "globex"):
            assert audit(runner, ask(tenant, **search)) == reference(runner, ask(tenant, **search)), (tenant, search)


def test_access_key_and_session_issuer_find_their_principal(runner: QueryRunner, case: Case) -> None:
    records = case.detonations.all_records()
    key = _first("accessKeyId", records)
    issuer = next(
        r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
        for r in records
        if r["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
    )
    by_key = audit(runner, ask(principal=key))
    assert by_key and all(row["access_key"] == key for row in by_key)
    assert by_key == reference(runner, ask(principal=key))
    by_issuer = audit(runner, ask(principal=issuer))
    assert by_issuer and all(row["session_issuer"] == issuer for row in by_issuer)
    assert by_issuer == reference(runner, ask(principal=issuer))


def test_a_resource_name_finds_what_ends_with_it_and_nothing_longer(runner: QueryRunner, case: Case) -> None:
    expected = {
        r["eventID"]
        for r in case.detonations.all_records()
        if any((res.get("ARN") or "").endswith("/credentials-1") for res in r.get("resources") or [])
    }
    rows = audit(runner, ask(resource="credentials-1"))
    assert expected and {row["event_id"] for row in rows} == expected


def test_a_changed_redelivery_is_a_second_version_beside_the_first_on_every_path(
    runner: QueryRunner, case: Case
) -> None:
    originals = {r["eventID"]: r["sourceIPAddress"] for r in case.technique(CODE)}
    for rows in (audit(runner, ask(resource=case.function)), audit(runner, ask(principal=case.principal))):
        mine = [row for row in rows if row["event_id"] in originals]
        assert sorted(row["event_id"] for row in mine) == sorted([*originals, *originals])  # each twice: 2 versions
        for event_id, source_ip in originals.items():
            versions = {row["version"]: row["source_ip"] for row in mine if row["event_id"] == event_id}
            assert versions == {1: source_ip, 2: "203.0.113.50"}  # the first stored stays version 1
            assert {row["versions"] for row in mine if row["event_id"] == event_id} == {2}


def test_a_correction_is_shown_with_the_event_it_names_which_stays(runner: QueryRunner, case: Case) -> None:
    original = case.technique("persistence.iam-create-user-login-profile")[0]
    name = original["userIdentity"]["userName"]
    rows = [r for r in audit(runner, ask(principal=name)) if r["time"].startswith(original["eventTime"][:19])]
    by_id = {r["event_id"]: r for r in rows if r["action"] == original["eventName"]}
    assert original["eventID"] in by_id, "a correction hides nothing"
    (correction_id,) = by_id[original["eventID"]]["corrected_by"]
    assert by_id[correction_id]["corrects"] == original["eventID"] and by_id[correction_id]["source_ip"] == "192.0.2.10"
    assert by_id[original["eventID"]]["source_ip"] == original["sourceIPAddress"]


def test_another_tenant_sees_only_its_own_events(runner: QueryRunner, case: Case) -> None:
    globex = audit(runner, ask("globex", principal=case.principal))
    assert {row["event_id"] for row in globex} == {r["eventID"] for r in case.technique(CODE)}
    # acme's re-delivery changed acme's copy only
    assert {row["source_ip"] for row in globex} == {r["sourceIPAddress"] for r in case.technique(CODE)}
    assert audit(runner, ask("initech", principal=case.principal)) == []
