"""`fnscope appsync`: AppSync GraphQL APIs per operation and per resolver: count, errors, latency."""

from __future__ import annotations

import json

import click

from fnscope.cli import human
from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get
from fnscope.cli.flags import table_options
from fnscope.cli.output import Column, print_table, when

_FIGURES = [
    Column("errors", show=human.count, style=when(lambda v: v > 0, "red"), keep=90, right=True),
    Column("p50_ms", "p50", show=human.millis, keep=50, right=True),
    Column("p99_ms", "p99", show=human.millis, keep=80, right=True),
]
OPERATION_COLUMNS = [
    Column("api_id", "api", keep=60),
    Column("operation", keep=100),
    Column("requests", show=human.count, keep=95, right=True),
    *_FIGURES,
]
RESOLVER_COLUMNS = [
    Column("api_id", "api", keep=60),
    Column("resolver", keep=100),
    Column("calls", show=human.count, keep=95, right=True),
    *_FIGURES,
]


@click.command()
@click.option("--api-id", "api_id", default="", help="one GraphQL API (default: all)")
@click.option("--since", default="1h", show_default=True, help="how far back (10m, 1h or ISO-8601)")
@click.option("--until", default=None, help="end of the window (default now)")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@table_options
@API_OPTION
@TOKEN_OPTION
def appsync(api_id: str, since: str, until: str | None, as_json: bool, api: str, token: str | None) -> None:
    """AppSync GraphQL APIs: each operation's requests and each resolver's calls, errors and latency."""
    out = api_get(api, token, "/api/appsync", {"api": api_id, "since": since, "until": until})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo("Operations")
    print_table(out["operations"], OPERATION_COLUMNS)
    click.echo("\nResolvers")
    print_table(out["resolvers"], RESOLVER_COLUMNS)
