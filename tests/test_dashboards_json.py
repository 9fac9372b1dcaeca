"""The exported Grafana JSON and provisioning files: well-formed, consistent, in sync with the code, and wired
into compose.yaml. (Grafana itself is not available here; the SQL is proven in test_dashboards_sql.py.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard as SdkDashboard

from fnscope.alerts.rules import BUILTIN_RULES
from fnscope.cli import main
from fnscope.dashboards import alert_rules, grafana, provisioning
from fnscope.dashboards.model import Dashboard
from fnscope.dashboards.panels import AUDIT, DASHBOARDS
from fnscope.dashboards.saved_queries import SAVED_QUERIES
from fnscope.dashboards.sql import expand_macros, variables_in

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "dashboards" / "provisioning"
BOARDS = {board.uid: grafana.build(board) for board in DASHBOARDS}


@pytest.mark.parametrize("uid", BOARDS)
def test_dashboard_json_is_a_valid_grafana_dashboard(uid: str) -> None:
    model = BOARDS[uid]
    # The SDK's typed model reads it back without losing anything.
    again = json.loads(json.dumps(SdkDashboard.from_json(model), cls=JSONEncoder))
    assert again == model
    for key in ("uid", "title", "panels", "templating", "time", "schemaVersion"):
        assert key in model, key
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("board", DASHBOARDS, ids=[b.uid for b in DASHBOARDS])
def test_every_query_is_clickhouse_sql_on_one_datasource_with_declared_variables(board: Dashboard) -> None:
    model = BOARDS[board.uid]
    declared = [v["name"] for v in model["templating"].get("list", [])]
    now = datetime.now(UTC)
    sqls = [v["query"]["rawSql"] for v in model["templating"].get("list", [])]
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": grafana.PLUGIN, "uid": grafana.DATASOURCE_UID}
        (target,) = panel["targets"]
        assert target["datasource"] == panel["datasource"] and target["editorType"] == "sql"
        assert target["format"] in (0, 1, 2) and target["refId"] == "A"
        sqls.append(target["rawSql"])
    for position, variable in enumerate(model["templating"].get("list", [])):
        # a variable may only use the ones before it (Grafana resolves them in order)
        assert variables_in(variable["query"]["rawSql"]) <= set(declared[:position]), variable["name"]
    for panel in model["panels"]:
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: a time series needs a unit"
    for sql in sqls:
        # the plugin fills in its macros and the dashboard's variables, never ClickHouse's {name:Type} parameters
        assert not re.search(r"(?<!\$)\{\w+:[\w()]+\}", sql), sql
        assert variables_in(sql) <= set(declared)
        expanded = expand_macros(sql, now, now, 60)  # raises on a macro the plugin does not have
        assert "$__" not in expanded


def test_titles_are_unique_per_dashboard_and_every_saved_query_is_a_panel() -> None:
    for board in DASHBOARDS:
        titles = [panel.title for panel in board.panels]
        assert len(titles) == len(set(titles)), board.uid
    assert {q.title for q in SAVED_QUERIES} <= {p.title for p in AUDIT.panels}


def test_checked_in_provisioning_files_match_the_code(tmp_path: Path) -> None:
    result = main.main(["dashboards", "export", str(tmp_path)], standalone_mode=False)
    assert result is None
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    checked_in = sorted(p.relative_to(CHECKED_IN) for p in CHECKED_IN.rglob("*") if p.is_file())
    assert fresh == checked_in
    for relative in fresh:
        assert (tmp_path / relative).read_text() == (CHECKED_IN / relative).read_text(), (
            f"{relative} is stale: run `fnscope dashboards export dashboards/provisioning`"
        )


def test_alerting_file_has_every_metric_rule_with_dollar_signs_escaped() -> None:
    data = yaml.safe_load((CHECKED_IN / "alerting" / "fnscope-rules.yaml").read_text())
    (group,) = data["groups"]
    titles = {rule["title"] for rule in group["rules"]}
    assert {"function-throttled", "concurrency-headroom", "error-rate", "p99-duration"} <= titles
    assert {"root-login", "cloudtrail-stopped", "console-login-without-mfa"} <= titles  # the audit rules too
    # all but the canary verdict, whose exact tests (Fisher, binomial) run in fnscope, not in a rule's SQL, and the
    # disabled and runaway rules, measured on fnscope's own stream (who disabled it; its watched baseline)
    in_fnscope_only = ("canary", "disabled", "runaway")
    assert titles == {rule.name for rule in BUILTIN_RULES if rule.enabled and rule.kind not in in_fnscope_only}
    for rule in group["rules"]:
        query, condition = rule["data"]
        assert query["datasourceUid"] == grafana.DATASOURCE_UID and query["model"]["rawSql"].startswith("SELECT")
        assert condition["model"]["type"] == "math" and condition["model"]["expression"].startswith("$$A >= ")
        assert rule["condition"] == "B" and query["relativeTimeRange"]["from"] >= 60
        assert "$__" not in json.dumps(rule).replace("$$__", ""), "Grafana would expand an unescaped $"
    api_rules = alert_rules.grafana_rules()
    assert [r["uid"] for r in api_rules] == [r["uid"] for r in group["rules"]]
    assert all(r["folderUID"] == grafana.FOLDER_UID for r in api_rules)


def test_compose_mounts_the_provisioning_and_gives_grafana_what_the_datasource_needs() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    grafana_service = services["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana_service["volumes"]}
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == CHECKED_IN
    assert grafana.PLUGIN in grafana_service["environment"]["GF_INSTALL_PLUGINS"]
    assert "CLICKHOUSE_PASSWORD" in grafana_service["environment"], "the datasource file reads $CLICKHOUSE_PASSWORD"

    (source,) = yaml.safe_load((CHECKED_IN / "datasources" / "clickhouse.yaml").read_text())["datasources"]
    clickhouse = services["clickhouse"]
    assert source["jsonData"]["host"] in services
    assert f"{source['jsonData']['port']}:{source['jsonData']['port']}" in clickhouse["ports"]
    assert source["jsonData"]["username"] == clickhouse["environment"]["CLICKHOUSE_USER"]
    assert source["jsonData"]["defaultDatabase"] == clickhouse["environment"]["CLICKHOUSE_DB"]
    (provider,) = yaml.safe_load((CHECKED_IN / "dashboards" / "dashboards.yaml").read_text())["providers"]
    in_container = Path(provider["options"]["path"]).relative_to("/etc/grafana/provisioning")
    assert sorted(p.stem for p in (CHECKED_IN / in_container).glob("*.json")) == sorted(BOARDS)


def test_datasource_from_a_clickhouse_url() -> None:
    source: dict[str, Any] = provisioning.datasource("https://reader:s%40cret@ch.example.com/metrics")
    assert source["jsonData"] == {
        "host": "ch.example.com",
        "port": 8443,
        "protocol": "http",
        "secure": True,
        "username": "reader",
        "defaultDatabase": "metrics",
    }
    assert source["secureJsonData"] == {"password": "s@cret"}
    with pytest.raises(ValueError, match="expected http"):
        provisioning.datasource("chdb:///tmp/x")
