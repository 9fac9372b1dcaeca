"""`fnscope stats`: per-function health."""

from __future__ import annotations

import json

import click

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, print_table


@click.command()
@click.option("--function", "-f", default="")
@click.option("--since", default="1h", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@API_OPTION
@TOKEN_OPTION
def stats(function: str, since: str, as_json: bool, api: str, token: str | None) -> None:
    """Per function: invocations, errors, throttles, cold starts, latency, concurrency and cost."""
    rows = api_get(api, token, "/api/stats", {"function": function, "since": since})["functions"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(
        rows,
        [
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
        ],
    )
