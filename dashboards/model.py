"""The panel model: what a panel shows (title, SQL, kind, expected columns), independent of any renderer.

Grafana JSON (``dashboards/grafana.py``) is one rendering; a built-in web console can render the same
definitions. Panel SQL is written for the Grafana ClickHouse plugin: its macros (``$__timeFilter(col)``,
``$__fromTime``, ``$__interval_s``, ...) and template variables, always as ``${name:singlequote}`` so
Grafana quotes and escapes the value. ``dashboards/sql.py`` turns that SQL into plain ClickHouse SQL with the
variables as bound query parameters, for anything that runs it outside Grafana.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Kind(StrEnum):
    """How a panel draws its rows, and so what shape they must have."""

    TIMESERIES = "timeseries"  # a time column, then numeric columns (one line each), or see Panel.series_by
    STAT = "stat"  # one row, one numeric value
    TABLE = "table"  # the named columns
    LOGS = "logs"  # a time column, then the named columns (the body among them)


class Format(IntEnum):
    """The ClickHouse plugin's result formats (grafana-plugin-sdk-go ``sqlutil.FormatQueryOption``)."""

    TIMESERIES = 0
    TABLE = 1
    LOGS = 2


_FORMATS = {
    Kind.TIMESERIES: Format.TIMESERIES,
    Kind.STAT: Format.TABLE,
    Kind.TABLE: Format.TABLE,
    Kind.LOGS: Format.LOGS,
}
_QUERY_TYPES = {Kind.TIMESERIES: "timeseries", Kind.STAT: "table", Kind.TABLE: "table", Kind.LOGS: "logs"}


@dataclass(frozen=True)
class Panel:
    title: str
    sql: str
    kind: Kind
    columns: tuple[str, ...] = ()  # the columns the panel reads, in order (time series: after the time column)
    description: str = ""
    unit: str = ""
    width: int = 12  # of the dashboard's 24 columns
    height: int = 8
    # Long format: the time column, then this label column, then one numeric column; one line per label value.
    # Grafana's ClickHouse plugin turns such frames wide by their string column; the console does the same.
    series_by: str = ""

    def __post_init__(self) -> None:
        if self.kind is Kind.TIMESERIES and not self.unit:  # every axis says what it counts: here, plain numbers
            object.__setattr__(self, "unit", "short")

    @property
    def format(self) -> Format:
        return _FORMATS[self.kind]

    @property
    def query_type(self) -> str:
        return _QUERY_TYPES[self.kind]


@dataclass(frozen=True)
class Row:
    """A heading that groups the panels after it."""

    title: str


@dataclass(frozen=True)
class Variable:
    """A dashboard variable filled by a query; ``include_all`` adds "All", whose value is the empty string."""

    name: str
    label: str
    sql: str
    include_all: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    items: tuple[Panel | Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = field(default=("fnscope",))
    time_from: str = "now-6h"

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(item for item in self.items if isinstance(item, Panel))
