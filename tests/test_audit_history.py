"""Audit history an auditor can rely on, on a real chDB store: what an ingest-token holder sends can't rewrite or
hide what was stored, nothing sent in makes `verify` cry wolf, and every change made inside the store is named.

The attacker's sequence: a forged re-delivery (the same eventID, time and action, another user and address), a
forged correction naming a stored event, three records sharing one eventID with different contents in one request
(real feeds contain such records), and two thousand identical re-deliveries. Then every query path and `verify`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from fnscope.dashboards.saved_queries import BY_NAME
from fnscope.processors.audit_sealer import Sealer
from fnscope.query.audit import AuditRequest, audit
from fnscope.query.audit_saved import run_saved
from fnscope.query.audit_verify import verify
from fnscope.query.runner import QueryRunner
from tests.test_audit_support import FIXTURE_SET, chdb_store, derive, write

T = "acme"
SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WINDOW_S = 0.3


def seal(client: Client) -> None:
    time.sleep(WINDOW_S + 0.05)
    Sealer(client, None, window_s=WINDOW_S, settle_s=0).seal_once()


def ask(runner: QueryRunner, **search: Any) -> list[dict[str, Any]]:
    return audit(runner, AuditRequest(T, since=SINCE, limit=100_000, **search))


@pytest.fixture
def attacked(tmp_path: Path) -> Iterator[tuple[Client, dict[str, Any]]]:
    with chdb_store(tmp_path / "store") as client:
        code, admin = (
            FIXTURE_SET.technique("persistence.lambda-overwrite-code"),
            FIXTURE_SET.technique("persistence.iam-create-admin-user"),
        )
        write(client, [*code, *admin], T)
        seal(client)
        original = code[0]
        forged = {
            **original,
            "sourceIPAddress": "198.51.100.66",
            "userIdentity": {
                **original["userIdentity"],
                "userName": "mallory",
                "arn": "arn:aws:iam::111122223333:user/mallory",
            },
        }
        correction = derive(
            admin[1],
            sourceIPAddress="198.51.100.66",
            addendum={"reason": "UPDATED_DATA", "originalEventID": admin[1]["eventID"]},
        )
        triplet = [derive(admin[2], eventID="shared-id", userAgent=f"agent-{n}") for n in range(3)]
        write(client, [forged], T)
        write(client, [correction], T)
        write(client, triplet, T)  # one request: one arrival time for three versions
        for _ in range(4):
            write(client, [admin[0]] * 500, T)  # identical re-deliveries
        seal(client)
        yield client, {"original": original, "forged": forged, "correction": correction, "named": admin[1]}


def test_a_forged_redelivery_is_a_second_version_beside_the_first_on_every_path(
    attacked: tuple[Client, dict[str, Any]],
) -> None:
    client, sent = attacked
    runner = QueryRunner(client)
    original, event_id = sent["original"], sent["original"]["eventID"]
    paths = {
        "resource": ask(runner, resource="billing-sync"),
        "principal": ask(runner, principal="mallory"),
        "original principal": ask(runner, principal="detonation-operator"),
        "action": ask(runner, action="UpdateFunctionCode"),
        "everything": ask(runner),
    }
    for name, rows in paths.items():
        mine = [row for row in rows if row["event_id"] == event_id]
        assert sorted(row["version"] for row in mine) == [1, 2], name  # every path answers with both versions
        assert {row["versions"] for row in mine} == {2}, name
        for row in mine:
            first = row["version"] == 1
            assert (row["principal_name"], row["source_ip"]) == (
                ("detonation-operator", original["sourceIPAddress"]) if first else ("mallory", "198.51.100.66")
            ), name
    saved = run_saved(runner, BY_NAME["lambda-code-changes"], T, SINCE, datetime.now(UTC), 1000)
    assert sorted(r["version"] for r in saved if r["event_id"] == event_id) == [1, 2]


def test_a_forged_correction_hides_nothing_and_is_shown_with_what_it_names(
    attacked: tuple[Client, dict[str, Any]],
) -> None:
    client, sent = attacked
    runner = QueryRunner(client)
    named, correction = sent["named"], sent["correction"]
    rows = {row["event_id"]: row for row in ask(runner, action="AttachUserPolicy")}
    assert rows[named["eventID"]]["corrected_by"] == [correction["eventID"]]
    assert rows[correction["eventID"]]["corrects"] == named["eventID"]
    saved = run_saved(runner, BY_NAME["iam-policy-changes"], T, SINCE, datetime.now(UTC), 1000)
    assert named["eventID"] in {row["event_id"] for row in saved}


def test_nothing_sent_in_makes_verify_report_tampering_and_counts_are_unique(
    attacked: tuple[Client, dict[str, Any]],
) -> None:
    client, _ = attacked
    report = verify(client, T)
    assert report.ok, [p.as_dict() for p in report.problems]
    # 4 detonation records, the correction and "shared-id": 6 events; a forged version and two more of shared-id
    assert (report.events, report.versions) == (6, 6 + 1 + 2)
    three = [r for r in ask(QueryRunner(client)) if r["event_id"] == "shared-id"]
    assert sorted(r["version"] for r in three) == [1, 2, 3] and {r["versions"] for r in three} == {3}


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        ("ALTER TABLE audit_events DELETE WHERE principal_name = 'mallory'", "deleted"),
        ("ALTER TABLE audit_events DROP PARTITION '202408'", "deleted"),
        ("TRUNCATE TABLE audit_seal_entries", "inserted"),
    ],
)
def test_each_edit_inside_the_store_is_named(attacked: tuple[Client, dict[str, Any]], edit: str, kind: str) -> None:
    client, sent = attacked
    client.command(edit, settings={"mutations_sync": 2})
    report = verify(client, T)
    assert not report.ok
    named = {(p.kind, p.event_id) for p in report.problems}
    assert (kind, sent["original"]["eventID"]) in named
