"""v006 and v008 on a store that earlier releases made and that already holds events: the lookups are backfilled
(v008 rebuilds them with each version of an event), running either migration again shows nothing twice, and events
written afterwards reach the lookups through the views."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fnscope.processors.migrations.v006_audit_lookup import statements as v006
from fnscope.processors.migrations.v008_audit_versions import statements as v008
from fnscope.processors.retention import Retention
from fnscope.processors.schema import migrate
from fnscope.query.audit import AuditRequest, audit, audit_sql, audit_where, with_versions
from fnscope.query.runner import QueryRunner
from fnscope.store import connect
from tests.test_audit_support import FIXTURE_SET, write

technique = FIXTURE_SET.technique

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
SEARCHES = (
    {"principal": "detonation-operator"},
    {"resource": "billing-sync"},
    {"resource": "credentials-1"},
)


def same_answers(runner: QueryRunner) -> list[int]:
    """Each search's row count, after checking the lookup answers what audit_events with FINAL answers."""
    counts = []
    for search in SEARCHES:
        req = AuditRequest("acme", since=SINCE, limit=10_000, **search)
        where = audit_where(req)
        rows = runner.rows(audit_sql(where), {**where.params, "limit": req.limit})
        expected: list[dict[str, Any]] = with_versions(runner, "acme", rows)
        assert audit(runner, req) == expected, search
        counts.append(len(expected))
    return counts


def test_v006_backfills_a_store_with_events_and_can_run_again(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'store'}")
    try:
        migrate(client, until=6)
        assert not client.query("EXISTS TABLE audit_lookup").result_rows[0][0]
        write(client, technique("persistence.lambda-overwrite-code"), "acme")
        write(client, technique("credential-access.ssm-retrieve-securestring-parameters"), "acme")

        assert migrate(client, until=7) == 6
        for statement in v006(Retention()):  # a half-applied migration runs again
            client.command(statement)
        assert migrate(client) >= 8  # v008 rebuilds the lookups, versions in their key, from the events
        runner = QueryRunner(client)
        before = same_answers(runner)
        assert all(before), "each search finds the events written before the migrations"

        for step in v008(Retention()):  # so does v008, cut short anywhere
            step(client)  # type: ignore[operator]
        assert same_answers(runner) == before

        write(client, technique("persistence.lambda-layer-extension"), "acme")  # through the views
        after = same_answers(runner)
        assert after[0] > before[0]
    finally:
        client.close()
