"""`fnscope appsync`: AppSync GraphQL APIs per operation and per resolver: count, errors, latency."""

from __future__ import annotations

import json

import click

from fnscope.cli import human
from fnscope.cli.common import api_get, window_options
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
@window_options("1h")
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
