"""`fnscope stats`: per-function health, top-N, per-version, or a time series."""

from __future__ import annotations

import json
from typing import Any

import click

from fnscope.cli import human
from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get
from fnscope.cli.flags import table_options
from fnscope.cli.inert import terminal
from fnscope.cli.output import Column, current, print_table, when


def _headroom(value: Any) -> str:
    """Negative headroom is concurrency past the limit: said in words, so it shows without colour too."""
    if value is None or value == "":
        return ""
    return f"{human.count(value)} OVER" if value < 0 else human.count(value)


_POSITIVE = when(lambda v: v > 0, "yellow")
_FUNCTION = Column("function", keep=100)
_INVOCATIONS = Column("invocations", show=human.count, keep=90, right=True)
_ERRORS = Column("errors", show=human.count, style=_POSITIVE, keep=85, right=True)
_THROTTLES = Column("throttles", show=human.count, style=when(lambda v: v > 0, "bold red"), keep=85, right=True)
_P50 = Column("p50_ms", "p50", show=human.millis, keep=40, right=True)
_P99 = Column("p99_ms", "p99", show=human.millis, keep=80, right=True)
_PEAK = Column("peak_concurrency", "peak conc.", show=human.count, keep=60, right=True)
_LIMIT = Column("concurrency_limit", "limit", show=human.count, keep=55, right=True)
_HEADROOM = Column("headroom", show=_headroom, style=when(lambda v: v < 0, "bold red"), keep=75, right=True)
# reserved concurrency 0: Lambda runs none of its invocations (said in words, so it shows without colour too)
_DISABLED = Column("disabled", "state", show=lambda v: "DISABLED" if v else "", style=when(bool, "bold red"), keep=95)
TABLE_COLUMNS = [
    _FUNCTION,
    _INVOCATIONS,
    _ERRORS,
    Column("timeouts", show=human.count, style=_POSITIVE, keep=30, right=True),
    _THROTTLES,
    Column("cold_starts", "cold starts", show=human.count, keep=35, right=True),
    _P50,
    _P99,
    _PEAK,
    _LIMIT,
    _HEADROOM,
    Column("gb_seconds", "GB-s", show=human.number, keep=10, right=True),
    Column("estimated_cost_usd", "cost", show=human.usd, keep=20, right=True),
]
VERSION_COLUMNS = [
    _FUNCTION,
    Column("version", keep=95),
    Column("aliases", keep=70),
    _INVOCATIONS,
    Column("error_rate", "error rate", show=human.percent, style=_POSITIVE, keep=85, right=True),
    _P50,
    _P99,
    Column("cold_starts", "cold starts", show=human.count, keep=35, right=True),
]
ACCOUNT_COLUMNS = [Column("account", keep=100), _PEAK, _LIMIT, _HEADROOM]
SERIES_COLUMNS = [
    Column("time", keep=100),
    _PEAK,
    _INVOCATIONS,
    _ERRORS,
    _THROTTLES,
    _P50,
    _P99,
]


def disabled_note(function: str, disabled: dict[str, Any]) -> str:
    """Who disabled a function, when and from where, in one line (every part inert: terminal escapes shown)."""
    at = human.ago(disabled.get("at")) if current().relative_times else disabled.get("at", "")
    by = disabled.get("by") or "an unknown principal"
    where = f" from {disabled['source_ip']}" if disabled.get("source_ip") else ""
    return terminal(f"{function} is disabled (reserved concurrency 0) by {by}{where}, {at}")


@click.command()
@click.option("--function", "-f", default="", help="one function")
@click.option("--account", default="", help="one account")
@click.option("--since", default="1h", show_default=True, help="15m, 1h, 7d or ISO-8601")
@click.option("--until", default=None, help="end of the range (default now)")
@click.option("--top", "top_n", type=int, default=None, help="only the N largest by --by")
@click.option("--by", default="invocations", show_default=True, help="field for --top, e.g. errors, p99_ms, throttles")
@click.option("--versions", is_flag=True, help="also per version, with the aliases routing to it (canaries)")
@click.option("--step", default=None, help="a time series instead: one row per step (1s, 1m, 1h)")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@table_options
@API_OPTION
@TOKEN_OPTION
def stats(
    function: str,
    account: str,
    since: str,
    until: str | None,
    top_n: int | None,
    by: str,
    versions: bool,
    step: str | None,
    as_json: bool,
    api: str,
    token: str | None,
) -> None:
    """Per function: invocations, errors, timeouts, throttles, cold starts, p50/p90/p99 duration, peak
    concurrency (exact, per second, initialising environments included), its limit and headroom, GB-seconds and
    estimated cost. A function whose reserved concurrency is 0 shows as DISABLED, with who set it, from where and
    when."""
    params: dict[str, Any] = {"function": function, "account": account, "since": since, "until": until, "step": step}
    if top_n is not None:
        params |= {"top": top_n, "by": by}
    if versions:
        params["versions"] = "true"
    out = api_get(api, token, "/api/stats", params)
    if step:
        if as_json:
            click.echo(json.dumps(out["series"], indent=2))
        else:
            print_table(out["series"], SERIES_COLUMNS)
        return
    if as_json:
        click.echo(json.dumps(out if versions else out["functions"], indent=2))
        return
    disabled = any(row.get("disabled") for row in out["functions"])
    print_table(out["functions"], [_FUNCTION, _DISABLED, *TABLE_COLUMNS[1:]] if disabled else TABLE_COLUMNS)
    for row in out["functions"]:
        if row.get("disabled"):
            click.echo(disabled_note(row["function"], row["disabled"]))
    if out.get("accounts"):
        print_table(out["accounts"], ACCOUNT_COLUMNS)
    if versions:
        print_table(out["versions"], VERSION_COLUMNS)
