"""`fnscope stats`: per-function health, top-N, per-version, or a time series."""

from __future__ import annotations

import json
from typing import Any

import click

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, print_table

TABLE_COLUMNS = [
    "function",
    "invocations",
    "errors",
    "timeouts",
    "throttles",
    "cold_starts",
    "p50_ms",
    "p99_ms",
    "peak_concurrency",
    "concurrency_limit",
    "headroom",
    "gb_seconds",
    "estimated_cost_usd",
]
VERSION_COLUMNS = ["function", "version", "aliases", "invocations", "error_rate", "p50_ms", "p99_ms", "cold_starts"]
ACCOUNT_COLUMNS = ["account", "peak_concurrency", "concurrency_limit", "headroom"]
SERIES_COLUMNS = ["time", "peak_concurrency", "invocations", "errors", "throttles", "p50_ms", "p99_ms"]


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
    concurrency (exact, per second), its limit and headroom, GB-seconds and estimated cost."""
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
    print_table(out["functions"], TABLE_COLUMNS)
    if out.get("accounts"):
        print_table(out["accounts"], ACCOUNT_COLUMNS)
    if versions:
        rows = [{**r, "aliases": ",".join(r["aliases"])} for r in out["versions"]]
        print_table(rows, VERSION_COLUMNS)
