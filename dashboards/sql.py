"""Panel SQL outside Grafana: the ClickHouse plugin's macros expanded exactly as the plugin does, and the
dashboard's template variables turned into bound query parameters (never spliced into the SQL).

The macro forms are those of grafana/clickhouse-datasource ``pkg/macros/macros.go``: times as whole
seconds (``toDateTime(1700000000)``) or milliseconds (``fromUnixTimestamp64Milli(...)``), the interval as
whole seconds (at least 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")
_VARIABLE = re.compile(r"\$\{(\w+):singlequote\}")
_ANY_VARIABLE = re.compile(r"\$\{?\w+")


def _seconds(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _millis(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: float) -> str:
    """Replace every ``$__macro`` with what the ClickHouse plugin sends for this time range and interval."""
    interval = max(int(interval_s), 1)

    def between(column: str, lo: str, hi: str) -> str:
        return f"{column} >= {lo} AND {column} <= {hi}"

    def one(match: re.Match[str]) -> str:
        name, arg = match.group(1), (match.group(2) or "").strip()
        simple = {
            "fromTime": _seconds(start),
            "toTime": _seconds(end),
            "fromTime_ms": _millis(start),
            "toTime_ms": _millis(end),
            "interval_s": str(interval),
        }
        if name in simple and match.group(2) is None:
            return simple[name]
        if not arg:
            raise ValueError(f"unknown macro or missing argument: {match.group(0)}")
        if name == "timeFilter":
            return between(arg, _seconds(start), _seconds(end))
        if name == "timeFilter_ms":
            return between(arg, _millis(start), _millis(end))
        if name == "dateFilter":
            return between(arg, f"toDate('{start:%Y-%m-%d}')", f"toDate('{end:%Y-%m-%d}')")
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({arg}), INTERVAL {interval} second)"
        raise ValueError(f"unsupported macro: {match.group(0)}")

    return _MACRO.sub(one, sql)


def variables_in(sql: str) -> set[str]:
    """The template variables the SQL refers to."""
    return set(_VARIABLE.findall(sql))


def bind_variables(sql: str, values: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """``${name:singlequote}`` becomes the parameter ``{name:String}``; "All" is the empty string."""
    missing = variables_in(sql) - set(values)
    if missing:
        raise ValueError(f"no value for variable(s) {sorted(missing)}")
    bound = _VARIABLE.sub(lambda m: f"{{{m.group(1)}:String}}", sql)
    stray = _ANY_VARIABLE.search(bound)
    if stray:
        raise ValueError(f"variable reference not in the ${{name:singlequote}} form: {stray.group(0)}")
    return bound, {name: values[name] for name in variables_in(sql)}


def to_clickhouse(
    sql: str, start: datetime, end: datetime, interval_s: float, values: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """Panel SQL as ClickHouse runs it: macros expanded, variables bound."""
    return bind_variables(expand_macros(sql, start, end, interval_s), values)
