"""The schema on a ClickHouse cluster (``clickhouse_cluster``): every statement the migrations issue, rewritten for
a cluster, parses with ClickHouse's own parser (chDB's ``formatQuery``), and makes what a cluster needs: a
replicated local table and a Distributed table over it for each table, views local to each node.

There is no ClickHouse cluster here (STACK.md: no server, no Docker): the statements are checked by the engine's
parser, not run. The migrations themselves run for real on chDB as one server, so each step that looks at the store
first (v008's rebuilds) takes the path a fresh database takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
from clickhouse_connect.driver.client import Client

from fnscope.processors.cluster import OnCluster, on_cluster
from fnscope.processors.schema import migrate
from fnscope.store import TABLES, connect

CLUSTER = "fleet"


class Recording:
    """Runs each statement on one server (chDB) and records what the cluster would be sent instead."""

    def __init__(self, client: Client) -> None:
        self.client, self.cluster, self.sent = client, OnCluster(CLUSTER), []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.extend(self.cluster.rewrite(sql))
        return self.client.command(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, list[str]]]:
    client = connect(f"chdb://{tmp_path_factory.mktemp('cluster') / 'store'}")
    recording = Recording(client)
    migrate(cast(Client, recording))
    yield client, recording.sent
    client.close()


def creates(sent: list[str]) -> dict[str, str]:
    """Table or view name -> the last statement that created it (tables are made anew by EXCHANGE rebuilds)."""
    made: dict[str, str] = {}
    for statement in sent:
        if m := re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW) (?:IF NOT EXISTS )?(\w+)", statement):
            made[m.group(1)] = statement
        elif m := re.match(r"DROP (?:TABLE|VIEW) (?:IF EXISTS )?(\w+)", statement):
            made.pop(m.group(1), None)
        elif m := re.match(r"EXCHANGE TABLES (\w+) AND (\w+)", statement):
            made[m.group(1)], made[m.group(2)] = made.get(m.group(2), ""), made.get(m.group(1), "")
    return made


def test_every_cluster_statement_parses_with_clickhouses_parser(migrated: tuple[Client, list[str]]) -> None:
    client, sent = migrated
    assert len(sent) > 60
    for statement in sent:
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted, statement
        if re.match(r"(CREATE|ALTER|DROP|EXCHANGE) ", statement):
            assert f"ON CLUSTER {CLUSTER}" in formatted, formatted


def test_each_table_is_replicated_on_every_node_and_read_through_a_distributed_table(
    migrated: tuple[Client, list[str]],
) -> None:
    client, sent = migrated
    made = creates(sent)
    tables = [
        name
        for (name,) in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'"
        ).result_rows
    ]
    assert set(TABLES.values()) <= set(tables)  # the names every reader and writer uses
    for name in tables:
        local, distributed = made[f"{name}_local"], made[name]
        assert re.search(
            r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}'", local
        )
        assert f"Distributed('{CLUSTER}', currentDatabase(), '{name}_local'" in distributed
        columns = {c for (c,) in client.query(f"SELECT name FROM system.columns WHERE table = '{name}'").result_rows}
        key = "tenant, function" if {"tenant", "function"} <= columns else "tenant" if "tenant" in columns else "rand()"
        assert f"cityHash64({key})" in distributed, distributed
    # the replacing engines keep their version column (audit history keeps each event's first arrival)
    assert re.search(r"ReplicatedReplacingMergeTree\([^)]*, first_kept\)", made["audit_events_local"])


def test_views_run_on_each_node_from_local_table_to_local_table(migrated: tuple[Client, list[str]]) -> None:
    client, sent = migrated
    views = [s for s in creates(sent).values() if s.startswith("CREATE MATERIALIZED VIEW")]
    single = client.query(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView'"
    ).result_rows[0][0]
    assert len(views) == single >= 4
    for view in views:
        assert re.search(r" TO \w+_local AS ", view), view
        sources = re.findall(r"\bFROM (\w+)", view)
        assert sources and all(s.endswith("_local") for s in sources), view


def test_later_statements_go_to_the_cluster_too() -> None:
    """What processors issue after the migrations (a legal hold's TTL change) reaches every node's local table."""
    seen: list[str] = []

    class Server:
        def command(self, sql: str, *_args: Any, **_kwargs: Any) -> None:
            seen.append(sql)

    on_cluster(cast(Client, Server()), CLUSTER).command(
        "ALTER TABLE audit_events MODIFY TTL toDateTime(ingested_at) + INTERVAL 400 DAY"
    )
    assert seen == [
        f"ALTER TABLE audit_events_local ON CLUSTER {CLUSTER} MODIFY TTL toDateTime(ingested_at) + INTERVAL 400 DAY"
    ]
    with pytest.raises(ValueError):
        OnCluster("fleet; DROP TABLE x")
