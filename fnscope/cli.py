"""The `fnscope` command line. Server roles run in-process; query commands talk to a running instance's API."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from fnscope.config import load_settings

API_OPTION = click.option("--api", envvar="FNSCOPE_API", default="http://127.0.0.1:4318", show_default=True,
                          help="URL of a running fnscope (env FNSCOPE_API)")
TOKEN_OPTION = click.option("--token", envvar="FNSCOPE_TOKEN", default=None, help="API token (env FNSCOPE_TOKEN)")
CONFIG_OPTION = click.option("--config", type=click.Path(dir_okay=False), default=None,
                             help="fnscope.yaml (env FNSCOPE_CONFIG)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fnscope")
def main() -> None:
    """fnscope: logs, audit and health of serverless functions."""


# ---- server roles -------------------------------------------------------------------------------------------


@main.command()
@CONFIG_OPTION
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the embedded store lives  [default: ./fnscope-data]")
@click.option("--host", default=None, help="bind address  [default: 127.0.0.1]")
@click.option("--port", type=int, default=None, help="[default: 4318]")
@click.option("--simulate", is_flag=True, help="also send simulated fleet traffic to itself (a demo)")
def up(config: str | None, data_dir: Path | None, host: str | None, port: int | None, simulate: bool) -> None:
    """Run everything in one process on the embedded store (chDB): receivers, processors, query API."""
    from fnscope.roles import run_up

    run_up(load_settings(config, data_dir=data_dir, host=host, port=port), simulate)


@main.command()
@CONFIG_OPTION
@click.option("--kafka", envvar="FNSCOPE_KAFKA", required=True, help="bootstrap servers HOST:PORT")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def collector(config: str | None, kafka: str, host: str | None, port: int | None) -> None:
    """Distributed mode: HTTP receivers writing to Kafka (run as many as you like)."""
    from fnscope.roles import run_collector

    run_collector(load_settings(config, kafka=kafka, host=host, port=port))


@main.command()
@CONFIG_OPTION
@click.option("--kafka", envvar="FNSCOPE_KAFKA", required=True, help="bootstrap servers HOST:PORT")
@click.option("--clickhouse", envvar="FNSCOPE_CLICKHOUSE", required=True, help="http://user:pass@host:8123/db")
@click.option("--group", default="fnscope-processors", show_default=True, help="Kafka consumer group")
@click.option("--max-records", type=int, default=2000, show_default=True,
              help="Kafka messages per poll (each holds up to 500 events)")
def processor(config: str | None, kafka: str, clickhouse: str, group: str, max_records: int) -> None:
    """Distributed mode: consumer-group member writing Kafka into ClickHouse."""
    from fnscope.roles import run_processor

    run_processor(load_settings(config, kafka=kafka, clickhouse=clickhouse), group, max_records)


@main.command()
@CONFIG_OPTION
@click.option("--clickhouse", envvar="FNSCOPE_CLICKHOUSE", required=True, help="http://user:pass@host:8123/db")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(config: str | None, clickhouse: str, host: str | None, port: int | None) -> None:
    """Distributed mode: the query API over a ClickHouse server."""
    from fnscope.roles import run_api

    run_api(load_settings(config, clickhouse=clickhouse, host=host, port=port))


@main.command()
@click.option("--functions", type=int, default=8, show_default=True)
@click.option("--rate", type=float, default=50.0, show_default=True, help="invocations per second, fleet-wide")
@click.option("--duration", default="30s", show_default=True, help="e.g. 30s, 5m")
@click.option("--target", envvar="FNSCOPE_API", default="http://127.0.0.1:4318", show_default=True)
@TOKEN_OPTION
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--fast", is_flag=True, help="send as fast as possible instead of in real time")
def simulate(functions: int, rate: float, duration: str, target: str, token: str | None, seed: int,
             fast: bool) -> None:
    """Send realistic Lambda-like traffic in the real AWS wire formats."""
    from fnscope.timeparse import parse_duration
    from simulator.sender import run

    run(target, functions, rate, parse_duration(duration).total_seconds(), seed, token=token, fast=fast)


# ---- query commands -----------------------------------------------------------------------------------------


def _get(api_url: str, token: str | None, path: str, params: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    try:
        response = httpx.get(f"{api_url.rstrip('/')}{path}", params=clean, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach fnscope at {api_url}: {exc} (is `fnscope up` running?)")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise click.ClickException(f"{response.status_code}: {detail}")
    return response.json()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)


@main.command()
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
def search(query: str, function: str, since: str, until: str | None, level: str, request_id: str, limit: int,
           as_json: bool, api: str, token: str | None) -> None:
    """Find function log lines: words must all appear."""
    params = {"q": query, "function": function, "since": since, "until": until, "level": level,
              "request_id": request_id, "limit": limit}
    rows = _get(api, token, "/api/search", params)["results"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    for row in reversed(rows):
        click.echo(f"{row['time']} {row['function']} {row['request_id'][:8]:8} {row['level'] or '-':5} {row['message']}")


@main.command()
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
def audit(principal: str, action: str, resource: str, source: str, failed: bool, since: str, limit: int,
          as_json: bool, as_csv: bool, api: str, token: str | None) -> None:
    """Who did what, to what, from where."""
    params = {"principal": principal, "action": action, "resource": resource, "source": source,
              "failed": "true" if failed else None, "since": since, "limit": limit}
    rows = _get(api, token, "/api/audit", params)["results"]
    columns = ["time", "principal_name", "action", "function", "source_ip", "mfa", "error_code", "region"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns)
        writer.writeheader()
        writer.writerows(rows)
    else:
        _table(rows, columns)


@main.command()
@click.option("--function", "-f", default="")
@click.option("--since", default="1h", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@API_OPTION
@TOKEN_OPTION
def stats(function: str, since: str, as_json: bool, api: str, token: str | None) -> None:
    """Per function: invocations, errors, throttles, cold starts, latency, concurrency and cost."""
    rows = _get(api, token, "/api/stats", {"function": function, "since": since})["functions"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    _table(rows, ["function", "invocations", "errors", "timeouts", "throttles", "cold_starts", "p50_ms", "p99_ms",
                  "peak_concurrency", "concurrency_limit", "headroom", "gb_seconds"])


if __name__ == "__main__":
    main()
