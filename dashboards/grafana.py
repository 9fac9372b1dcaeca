"""Render the panel model (``dashboards/panels.py``) as Grafana dashboard JSON with grafana-foundation-sdk.

The SDK has no ClickHouse query type; its custom-query pattern covers it: a ``Dataquery`` subclass whose
JSON is what the grafana-clickhouse-datasource plugin stores for a SQL-editor query.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import logs, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableHide,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from fnscope.dashboards.model import Dashboard, Format, Kind, Panel, Row, Variable

PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_UID = "fnscope-clickhouse"
DATASOURCE_NAME = "fnscope ClickHouse"
FOLDER_UID = "fnscope"
FOLDER_TITLE = "fnscope"


def datasource_ref(uid: str = DATASOURCE_UID) -> DataSourceRef:
    return DataSourceRef(type_val=PLUGIN, uid=uid)


class ClickHouseQuery(cogvariants.Dataquery):
    """A SQL-editor query of the ClickHouse plugin."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: Format, query_type: str, uid: str = DATASOURCE_UID) -> None:
        self.ref_id, self.raw_sql, self.format, self.query_type, self.uid = ref_id, raw_sql, fmt, query_type, uid

    def to_json(self) -> dict[str, Any]:
        return {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": int(self.format),
            "queryType": self.query_type,
            "editorType": "sql",
            "datasource": {"type": PLUGIN, "uid": self.uid},
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, query: ClickHouseQuery) -> None:
        self._query = query

    def build(self) -> ClickHouseQuery:
        return self._query


_BUILDERS = {Kind.TIMESERIES: timeseries.Panel, Kind.STAT: stat.Panel, Kind.TABLE: table.Panel, Kind.LOGS: logs.Panel}


def _panel(panel: Panel, panel_id: int) -> cogbuilder.Builder[Any]:
    query = ClickHouseQuery("A", panel.sql, panel.format, panel.query_type)
    built = (
        _BUILDERS[panel.kind]()
        .id(panel_id)
        .title(panel.title)
        .datasource(datasource_ref())
        .with_target(ClickHouseQueryBuilder(query))
        .span(panel.width)
        .height(panel.height)
    )
    if panel.description:
        built = built.description(panel.description)
    if panel.unit and panel.kind is not Kind.LOGS:
        built = built.unit(panel.unit)
    return built


def _variable(variable: Variable) -> gd.QueryVariable:
    built = (
        gd.QueryVariable(variable.name)
        .label(variable.label)
        .datasource(datasource_ref())
        .query({"editorType": "sql", "rawSql": variable.sql})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .hide(VariableHide.DONT_HIDE)
    )
    if variable.include_all:
        # A custom "All" value is passed through unformatted: '' is the SQL empty string the panels test for.
        built = built.include_all(True).all_value("''").current(VariableOption(text="All", value="$__all"))
    return built


def build(board: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana JSON (the model a provisioning file or ``POST /api/dashboards/db`` takes)."""
    built = (
        gd.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .time(board.time_from, "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
    )
    for variable in board.variables:
        built = built.with_variable(_variable(variable))
    for panel_id, item in enumerate(board.items, start=1):
        if isinstance(item, Row):
            built = built.with_row(gd.Row(item.title).id(panel_id))
        else:
            built = built.with_panel(_panel(item, panel_id))
    return json.loads(json.dumps(built.build(), cls=JSONEncoder))


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True) + "\n"
