"""Legal hold on a real chDB store: a held tenant's expired audit rows survive the merges that delete everyone
else's, until the hold is lifted; every hold and lift is recorded; over HTTP, holding needs the admin scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from fnscope.cli import main
from fnscope.processors import legal_hold
from fnscope.processors.retention import Retention
from fnscope.processors.store import open_store
from tests.conftest import start_fnscope_up
from tests.test_audit_support import FIXTURE_SET, write

TABLES = ("audit_events", "audit_lookup", "audit_seal_entries", "audit_principals")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Client]:
    """A store that keeps audit events one day, holding a fresh tenant's events."""
    client = open_store(f"chdb://{tmp_path / 'store'}", Retention(audit=1))
    try:
        write(client, FIXTURE_SET.technique("persistence.iam-create-admin-user"), "fresh")
        yield client
    finally:
        client.close()


def expire(client: Client) -> None:
    """acme's and globex's audit trails, as if they arrived ten days ago (a merge may delete them at once)."""
    columns = [
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'audit_events' "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') AND name NOT IN ('tenant', 'ingested_at')"
        ).result_rows
    ]
    for tenant in ("acme", "globex"):
        client.command(
            f"INSERT INTO audit_events (tenant, ingested_at, {', '.join(columns)}) "
            f"SELECT {{t:String}}, now64(3) - INTERVAL 10 DAY, {', '.join(columns)} FROM audit_events "
            "WHERE tenant = 'fresh'",
            parameters={"t": tenant},
        )


def counts(client: Client) -> dict[str, int]:
    client.command("OPTIMIZE TABLE audit_events FINAL")  # a merge applies the TTL now rather than some day
    rows = client.query("SELECT tenant, count() FROM audit_events GROUP BY tenant").result_rows
    return {tenant: int(n) for tenant, n in rows}


def test_a_held_tenant_keeps_its_expired_trail_until_the_hold_is_lifted(store: Client) -> None:
    expired = store
    legal_hold.record(expired, "acme", True, "token abc", "litigation hold, case 42", retention_days=1)
    expire(expired)
    assert counts(expired) == {"acme": 3, "fresh": 3}  # globex's expired rows went, acme's stayed
    for table in TABLES:
        ttl = expired.query(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {n:String}",
            parameters={"n": table},
        ).result_rows[0][0]
        assert "NOT IN ('acme')" in ttl, table
    legal_hold.record(expired, "acme", False, "token abc", "case closed", retention_days=1)
    assert counts(expired) == {"fresh": 3}
    assert [(h["held"], h["reason"]) for h in legal_hold.history(expired, "acme")] == [
        (True, "litigation hold, case 42"),
        (False, "case closed"),
    ]


def test_holding_needs_the_admin_scope_and_is_recorded(tmp_path: Path) -> None:
    tokens = "adm:acme:admin+read,rd:acme:read"
    url, proc = start_fnscope_up(tmp_path / "data", tmp_path / "up.log", {"FNSCOPE_TOKENS": tokens})
    try:
        admin, reader = {"Authorization": "Bearer adm"}, {"Authorization": "Bearer rd"}
        refused = httpx.post(f"{url}/api/audit/hold", json={"reason": "x"}, headers=reader)
        assert refused.status_code == 403
        held = httpx.post(f"{url}/api/audit/hold", json={"reason": "SEC inquiry"}, headers=admin)
        assert held.status_code == 200 and held.json()["held"] is True
        state = httpx.get(f"{url}/api/audit/hold", headers=reader).json()
        assert state["held"] is True and state["history"][0]["reason"] == "SEC inquiry"
        assert state["history"][0]["by"].startswith("token ") and "adm" not in state["history"][0]["by"][6:]
        lifted = httpx.delete(f"{url}/api/audit/hold", params={"reason": "closed"}, headers=admin)
        assert lifted.status_code == 200 and lifted.json()["held"] is False
        assert [h["held"] for h in lifted.json()["history"]] == [True, False]
        cli = CliRunner().invoke(main, ["audit", "hold", "--api", url, "--token", "adm", "--reason", "new matter"])
        assert cli.exit_code == 0 and "ON LEGAL HOLD" in cli.output, cli.output
        shown = CliRunner().invoke(main, ["audit", "hold", "--api", url, "--token", "rd", "--show"])
        assert shown.exit_code == 0 and shown.output.count(" by token ") == 3, shown.output
    finally:
        proc.stop()


def test_a_tenant_name_can_not_break_out_of_the_ttl(store: Client) -> None:
    legal_hold.record(store, "x') OR 1=1 --", True, "token abc", "odd name", retention_days=1)
    expire(store)
    assert counts(store) == {"fresh": 3}  # the odd name is a literal: nobody else is held
