"""`fnscope search`: function log lines."""

from __future__ import annotations

import json

import click

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get


@click.command()
@click.argument("query", default="")
@click.option("--function", "-f", default="")
@click.option("--since", default="15m", show_default=True)
@click.option("--until", default=None)
@click.option("--level", default="")
@click.option("--request-id", default="")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@API_OPTION
@TOKEN_OPTION
def search(
    query: str,
    function: str,
    since: str,
    until: str | None,
    level: str,
    request_id: str,
    limit: int,
    as_json: bool,
    api: str,
    token: str | None,
) -> None:
    """Find function log lines: words must all appear."""
    params = {
        "q": query,
        "function": function,
        "since": since,
        "until": until,
        "level": level,
        "request_id": request_id,
        "limit": limit,
    }
    rows = api_get(api, token, "/api/search", params)["results"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    for row in reversed(rows):
        click.echo(
            f"{row['time']} {row['function']} {row['request_id'][:8]:8} {row['level'] or '-':5} {row['message']}"
        )
