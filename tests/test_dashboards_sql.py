"""Every dashboard panel's SQL, run on chDB against the real schema with simulated traffic.

There is no Grafana here (STACK.md), so the ClickHouse plugin's macros are expanded to concrete values
exactly as the plugin does, the template variables bound as query parameters, and the rows checked for the
shape each panel kind needs. The data is the simulator's fleet in the real wire formats, parsed by the real
collector parsers and written by the real EventWriter (which also rebuilds the health tables), in-process.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from fnscope.collector.formats import apigateway, cloudtrail, firehose, telemetry
from fnscope.dashboards.alert_rules import alert_queries
from fnscope.dashboards.model import Dashboard, Kind, Panel
from fnscope.dashboards.panels import DASHBOARDS, FLEET, FUNCTION_DETAIL
from fnscope.dashboards.sql import to_clickhouse
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.query.runner import QueryRunner
from fnscope.query.stats import StatsRequest, stats
from fnscope.simulator.scheduler import Simulation, simulate
from fnscope.simulator.wire import render
from fnscope.sink import IngestContext
from tests.fixtures import cloudtrail_set

TENANT = "acme"
PARSERS = {"telemetry": telemetry.parse, "firehose": firehose.parse, "apigateway": apigateway.parse}
PARSERS["cloudtrail"] = cloudtrail.parse
INTERVAL_S = 60


@dataclass
class Store:
    client: Client
    sim: Simulation
    start: datetime
    end: datetime
    values: dict[str, str]

    def run(self, sql: str, values: dict[str, str] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        query, params = to_clickhouse(sql, self.start, self.end, INTERVAL_S, values or self.values)
        result = self.client.query(query, parameters=params)
        return list(result.column_names), [tuple(row) for row in result.result_rows]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # Recent enough that the arrival times (ingested_at = now) fall in the same dashboard time range.
    start = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    sim = simulate(functions=6, rate=10, duration_s=120, seed=3, start=start)
    events: list[Any] = []
    for request in render(sim):
        parsed = PARSERS[request.kind](request.body, IngestContext(tenant=TENANT, params=dict(request.params)))
        events += [*parsed.events, *parsed.dead]
    # One access-log line that is not JSON: the parser keeps it as a dead letter.
    broken = apigateway.parse(b'{"requestId": "x", "status": 200}\nnot json at all\n', IngestContext(tenant=TENANT))
    assert broken.dead, "the broken line must become a dead letter"
    events += [*broken.events, *broken.dead]
    client = open_store(f"chdb://{tmp_path_factory.mktemp('dashboards') / 'store'}")
    writer = EventWriter(client)
    try:
        writer.write(events)
        writer.health.flush()
        throttled = Counter(inv.function for inv in sim.invocations if inv.status == "throttled")
        function = throttled.most_common(1)[0][0]
        values = {"tenant": TENANT, "function": function, "version": "", "api": ""}
        yield Store(client, sim, start - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1), values)
    finally:
        writer.health.stop()
        client.close()  # chDB opens one path per process: the next module opens its own


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _all_panels() -> list[tuple[Dashboard, Panel]]:
    return [(board, panel) for board in DASHBOARDS for panel in board.panels]


@pytest.mark.parametrize(("board", "panel"), _all_panels(), ids=[f"{b.uid}:{p.title}" for b, p in _all_panels()])
def test_panel_sql_runs_and_returns_its_shape(store: Store, board: Dashboard, panel: Panel) -> None:
    columns, rows = store.run(panel.sql)
    compliance = "fnscope audit run" in panel.description
    if not compliance:  # every other panel has something to show for a simulated fleet with a dead letter
        assert rows, f"{panel.title}: no rows"
    if panel.kind is Kind.STAT:
        assert len(rows) == 1 and len(columns) == 1 and _is_number(rows[0][0]), (columns, rows)
    elif panel.kind is Kind.TIMESERIES:
        assert columns == ["time", *panel.columns]
        assert all(isinstance(row[0], dt.datetime) for row in rows)
        first_value = 1
        if panel.series_by:  # long format: a label column, then one value column
            assert columns[1] == panel.series_by and len(columns) == 3, columns
            assert all(isinstance(row[1], str) and row[1] for row in rows), "every point names its series"
            first_value = 2
        for i in range(first_value, len(columns)):  # a None is a gap in the line (no data in that bucket)
            assert any(_is_number(row[i]) for row in rows), columns[i]
            assert all(row[i] is None or _is_number(row[i]) for row in rows), columns[i]
        assert [row[0] for row in rows] == sorted(row[0] for row in rows), "points in time order"
    elif panel.kind is Kind.LOGS:
        assert columns == ["timestamp", *panel.columns]
        assert all(isinstance(row[0], dt.datetime) for row in rows)
    else:
        assert _result_columns(store, panel.sql) == list(panel.columns)


def _result_columns(store: Store, sql: str) -> list[str]:
    """The result's column names, also when it has no rows."""
    query, params = to_clickhouse(sql, store.start, store.end, INTERVAL_S, store.values)
    return [row[0] for row in store.client.query(f"DESCRIBE ({query})", parameters=params).result_rows]


def _panel(board: Dashboard, title: str) -> Panel:
    (panel,) = [p for p in board.panels if p.title == title]
    return panel


def test_fleet_numbers_match_the_simulation_and_fnscope_stats(store: Store) -> None:
    ran = [inv for inv in store.sim.invocations if inv.status != "throttled"]
    ((invocations,),) = store.run(_panel(FLEET, "Invocations").sql)[1]
    assert invocations == len(ran)
    ((errors,),) = store.run(_panel(FLEET, "Errors").sql)[1]
    assert errors == sum(1 for inv in ran if inv.status != "success") > 0

    reference = stats(QueryRunner(store.client), StatsRequest(TENANT, store.start, store.end))["functions"]
    ((throttles,),) = store.run(_panel(FLEET, "Throttles").sql)[1]
    assert throttles == sum(f["throttles"] for f in reference) > 0
    columns, rows = store.run(_panel(FLEET, "Functions").sql)
    table = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    for f in reference:
        assert table[f["function"]]["invocations"] == f["invocations"]
        assert table[f["function"]]["cold_starts"] == f["cold_starts"]
    assert sum(r["cold_starts"] for r in table.values()) == sum(1 for inv in ran if inv.cold_start) > 0

    columns, rows = store.run(_panel(FLEET, "Concurrency against limits, per function").sql)
    limits = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    reserved = {s.name: s.reserved_concurrency for s in store.sim.functions if s.reserved_concurrency is not None}
    for name, row in limits.items():
        expected = next(f for f in reference if f["function"] == name)
        assert (row["peak_concurrency"], row["concurrency_limit"]) == (
            expected["peak_concurrency"],
            expected["concurrency_limit"],
        ), name
        if name in reserved and row["limit_source"] == "reserved":
            assert row["concurrency_limit"] == reserved[name]


def test_function_detail_shows_the_throttled_function(store: Store) -> None:
    _, rows = store.run(_panel(FUNCTION_DETAIL, "Throttles").sql)
    assert sum(row[1] for row in rows) > 0
    _, rows = store.run(_panel(FUNCTION_DETAIL, "Recent logs").sql)
    assert rows and all(row[3] for row in rows[:10]), "log lines carry their request id"
    other = {**store.values, "function": "no-such-function"}
    assert store.run(_panel(FUNCTION_DETAIL, "Duration percentiles").sql, other)[1] == []


def test_audit_dashboard_shows_the_simulated_changes(store: Store) -> None:
    from fnscope.dashboards.panels import AUDIT

    _, changes = store.run(_panel(AUDIT, "Changes (not read-only)").sql)
    actions = {row[2] for row in changes}
    assert any(a.startswith("UpdateFunctionCode") for a in actions)
    assert any(a.startswith("PutFunctionConcurrency") for a in actions)
    _, failed = store.run(_panel(AUDIT, "Failed calls").sql)
    assert {row[3] for row in failed} == {"TooManyRequestsException"}
    _, code = store.run(_panel(AUDIT, "Lambda function code changes").sql)
    assert code and all(row[4].startswith("UpdateFunctionCode") or row[4].startswith("CreateFunction") for row in code)
    _, concurrency = store.run(_panel(AUDIT, "Lambda concurrency changes").sql)
    assert len(concurrency) == sum(1 for row in changes if row[2].startswith("PutFunctionConcurrency"))


def test_pipeline_dashboard_counts_what_was_stored(store: Store) -> None:
    from fnscope.dashboards.panels import PIPELINE

    columns, rows = store.run(_panel(PIPELINE, "Stored events per second").sql)
    stored = sum(row[columns.index("invocations")] for row in rows) * INTERVAL_S
    ((total,),) = store.client.query("SELECT count() FROM invocations").result_rows
    assert round(stored) == total
    _, dead = store.run(_panel(PIPELINE, "Dead letters by source and reason").sql)
    assert [(row[0], row[1], row[3]) for row in dead] == [(TENANT, "apigateway", 1)]


@pytest.mark.parametrize("board", DASHBOARDS, ids=[b.uid for b in DASHBOARDS])
def test_variable_queries_list_the_stored_values(store: Store, board: Dashboard) -> None:
    for variable in board.variables:
        columns, rows = store.run(variable.sql)
        assert len(columns) == 1 and rows, variable.name
        values = [row[0] for row in rows]
        if variable.name in store.values and store.values[variable.name]:
            assert store.values[variable.name] in values, variable.name


AUDIT_ALERTS = {
    "root-login": "initial-access.root-console-login",
    "cloudtrail-stopped": "defense-evasion.cloudtrail-stop",
    "console-login-without-mfa": "initial-access.console-login-without-mfa",
}


def test_alert_rule_queries_run_and_the_throttle_rule_fires(store: Store) -> None:
    # the audit rules' records, arriving now (they count arrivals): a root login, CloudTrail stopped, no MFA
    audit = [r for name in AUDIT_ALERTS.values() for r in cloudtrail_set.technique(name)]
    parsed = cloudtrail.parse(orjson.dumps(audit), IngestContext(tenant=TENANT))
    EventWriter(store.client).write(parsed.events)
    fired: dict[str, list[dict[str, Any]]] = {}
    for rule, sql in alert_queries():
        columns, rows = store.run(sql)
        assert columns[-1] == "value" and all(_is_number(row[-1]) for row in rows), rule.name
        assert all(isinstance(v, str) for row in rows for v in row[:-1]), "the other columns are labels"
        fired[rule.name] = [dict(zip(columns, row, strict=True)) for row in rows if row[-1] >= rule.threshold]
    assert store.values["function"] in {r["function"] for r in fired["function-throttled"]}
    for rule, technique in AUDIT_ALERTS.items():
        expected = {(TENANT, r["userIdentity"]["arn"]) for r in cloudtrail_set.technique(technique)}
        assert expected <= {(r["tenant"], r["principal"]) for r in fired[rule]}, rule
