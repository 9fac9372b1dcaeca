"""Audit searches by principal and resource read v006's ``audit_lookup``; they must answer exactly what reading
``audit_events`` with FINAL answers. On a real chDB store with the real detonation records: two tenants sharing
event ids, a re-delivery that changed a field, and a CloudTrail correction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from fnscope.query.audit import AuditRequest, audit, audit_sql, audit_where
from fnscope.query.runner import QueryRunner
from tests.test_audit_support import STRATUS, chdb_store, derive, stratus_records, write

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
CODE = "persistence.lambda-overwrite-code"
FUNCTION = "stratus-red-team-olc-func-vayhjqkdav"  # the function that detonation changed


def all_records() -> list[dict[str, Any]]:
    return [r for path in sorted(STRATUS.glob("*.json")) for r in stratus_records(path.name[4:-5])]


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryRunner]:
    with chdb_store(tmp_path_factory.mktemp("lookup") / "store") as client:
        write(client, all_records(), "acme")
        write(client, stratus_records(CODE), "globex")  # the same event ids, another tenant
        redelivered = [{**r, "sourceIPAddress": "203.0.113.50"} for r in stratus_records(CODE)]
        write(client, redelivered, "acme")  # arrives later: this delivery wins
        original = stratus_records("persistence.iam-create-user-login-profile")[0]
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
    return runner.rows(audit_sql(where), {**where.params, "limit": req.limit})


def ask(tenant: str = "acme", **kwargs: Any) -> AuditRequest:
    return AuditRequest(tenant, since=SINCE, limit=10_000, **kwargs)


def _first(field: str, records: list[dict[str, Any]]) -> str:
    return next(r["userIdentity"][field] for r in records if r["userIdentity"].get(field))


SEARCHES = [
    {"principal": "christophe"},
    {"principal": "CHRISTOPHE", "failed": True},
    {"principal": "stratus-red-team-ec2"},  # part of an assumed-role ARN
    {"principal": "assumed-role/test-role/cli"},
    {"principal": "no-such-principal"},
    {"resource": FUNCTION},  # a function name
    {"resource": FUNCTION, "changes": True},
    {"resource": f"arn:aws:lambda:ap-westeast-2r:266106314375:function:{FUNCTION}"},
    {"resource": "credentials-1"},  # an SSM parameter name: not credentials-10
    {"resource": "arn:aws:ssm:cn-west-3r:933175858973:parameter/credentials/stratus-red-team/"},  # an ARN prefix
    {"resource": "parameter/credentials/stratus-red-team/credentials-2"},  # the end of an ARN
    {"resource": "stratus-red-team-leave-org-role"},  # a role name
    {"resource": "fn"},  # a prefix of names is not a match
    {"resource": "ssm:"},  # ends with a separator: read from audit_events
    {"principal": "christophe", "resource": "credentials-1", "source": "aws-cli"},
]


@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: " ".join(f"{k}={v}" for k, v in s.items()))
def test_a_search_answers_exactly_what_audit_events_answers(runner: QueryRunner, search: dict[str, Any]) -> None:
    for tenant in ("acme", "globex"):
        assert audit(runner, ask(tenant, **search)) == reference(runner, ask(tenant, **search))


def test_access_key_and_session_issuer_find_their_principal(runner: QueryRunner) -> None:
    records = all_records()
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


def test_a_resource_name_finds_what_ends_with_it_and_nothing_longer(runner: QueryRunner) -> None:
    expected = {
        r["eventID"]
        for r in all_records()
        if any((res.get("ARN") or "").endswith("/credentials-1") for res in r.get("resources") or [])
    }
    rows = audit(runner, ask(resource="credentials-1"))
    assert expected and {row["event_id"] for row in rows} == expected


def test_a_redelivered_event_shows_once_with_its_latest_delivery(runner: QueryRunner) -> None:
    ids = sorted(r["eventID"] for r in stratus_records(CODE))
    rows = audit(runner, ask(resource=FUNCTION))
    assert sorted(row["event_id"] for row in rows if row["event_id"] in ids) == ids
    assert {row["source_ip"] for row in rows if row["event_id"] in ids} == {"203.0.113.50"}
    by_principal = [row for row in audit(runner, ask(principal="christophe")) if row["event_id"] in ids]
    assert len(by_principal) == len({row["event_id"] for row in by_principal})


def test_a_corrected_event_is_replaced_by_its_correction(runner: QueryRunner) -> None:
    original = stratus_records("persistence.iam-create-user-login-profile")[0]
    name = original["userIdentity"]["userName"]
    rows = [r for r in audit(runner, ask(principal=name)) if r["time"].startswith(original["eventTime"][:19])]
    assert original["eventID"] not in {r["event_id"] for r in rows}
    assert [r["source_ip"] for r in rows if r["action"] == original["eventName"]] == ["192.0.2.10"]


def test_another_tenant_sees_only_its_own_events(runner: QueryRunner) -> None:
    globex = audit(runner, ask("globex", principal="christophe"))
    assert {row["event_id"] for row in globex} == {r["eventID"] for r in stratus_records(CODE)}
    # acme's re-delivery changed acme's copy only
    assert {row["source_ip"] for row in globex} == {r["sourceIPAddress"] for r in stratus_records(CODE)}
    assert audit(runner, ask("initech", principal="christophe")) == []
