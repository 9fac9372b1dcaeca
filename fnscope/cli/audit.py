"""`fnscope audit`: who did what, to what, from where."""

from __future__ import annotations

import csv
import json
import sys

import click

from fnscope.cli.common import API_OPTION, TOKEN_OPTION, api_get, print_table


@click.command()
@click.option("--principal", default="")
@click.option("--action", default="")
@click.option("--resource", default="")
@click.option("--source", default="", help="source IP or user agent")
@click.option("--failed", is_flag=True, help="only calls that failed (errorCode set)")
@click.option("--since", default="90d", show_default=True)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@API_OPTION
@TOKEN_OPTION
def audit(
    principal: str,
    action: str,
    resource: str,
    source: str,
    failed: bool,
    since: str,
    limit: int,
    as_json: bool,
    as_csv: bool,
    api: str,
    token: str | None,
) -> None:
    """Who did what, to what, from where."""
    params = {
        "principal": principal,
        "action": action,
        "resource": resource,
        "source": source,
        "failed": "true" if failed else None,
        "since": since,
        "limit": limit,
    }
    rows = api_get(api, token, "/api/audit", params)["results"]
    columns = ["time", "principal_name", "action", "function", "source_ip", "mfa", "error_code", "region"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns)
        writer.writeheader()
        writer.writerows(rows)
    else:
        print_table(rows, columns)
