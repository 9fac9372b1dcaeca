"""Server roles: `up` (embedded), `collector`, `processor`, `api`, and the traffic simulator."""

from __future__ import annotations

from pathlib import Path

import click

from fnscope.app.settings import load_settings, settings_help
from fnscope.cli.common import (
    API_OPTION,
    CONFIG_OPTION,
    TOKEN_OPTION,
    Duration,
    api_url,
    check_reachable,
    without_userinfo,
)


@click.command(epilog=settings_help())
@CONFIG_OPTION
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where the embedded store lives  [default: ./fnscope-data]",
)
@click.option("--host", default=None, help="bind address  [default: 127.0.0.1]")
@click.option("--port", type=int, default=None, help="[default: 4318]")
@click.option("--simulate", is_flag=True, help="also send simulated fleet traffic to itself (a demo)")
def up(config: str | None, data_dir: Path | None, host: str | None, port: int | None, simulate: bool) -> None:
    """Run everything in one process on the embedded store (chDB): receivers, processors, query API."""
    from fnscope.app.roles import run_up

    run_up(load_settings(config, data_dir=data_dir, host=host, port=port), simulate)


@click.command(epilog=settings_help())
@CONFIG_OPTION
@click.option("--kafka", envvar="FNSCOPE_KAFKA", required=True, help="bootstrap servers HOST:PORT")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def collector(config: str | None, kafka: str, host: str | None, port: int | None) -> None:
    """Distributed mode: HTTP receivers writing to Kafka (run as many as you like)."""
    from fnscope.app.roles import run_collector

    run_collector(load_settings(config, kafka=kafka, host=host, port=port))


@click.command(epilog=settings_help())
@CONFIG_OPTION
@click.option("--kafka", envvar="FNSCOPE_KAFKA", required=True, help="bootstrap servers HOST:PORT")
@click.option("--clickhouse", envvar="FNSCOPE_CLICKHOUSE", required=True, help="http://user:pass@host:8123/db")
@click.option("--group", default="fnscope-processors", show_default=True, help="Kafka consumer group")
@click.option(
    "--max-records",
    type=int,
    default=2000,
    show_default=True,
    help="Kafka messages per poll (each holds up to 500 events)",
)
def processor(config: str | None, kafka: str, clickhouse: str, group: str, max_records: int) -> None:
    """Distributed mode: consumer-group member writing Kafka into ClickHouse."""
    from fnscope.app.roles import run_processor

    run_processor(load_settings(config, kafka=kafka, clickhouse=clickhouse), group, max_records)


@click.command(epilog=settings_help())
@CONFIG_OPTION
@click.option("--clickhouse", envvar="FNSCOPE_CLICKHOUSE", required=True, help="http://user:pass@host:8123/db")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(config: str | None, clickhouse: str, host: str | None, port: int | None) -> None:
    """Distributed mode: the query API over a ClickHouse server."""
    from fnscope.app.roles import run_api

    run_api(load_settings(config, clickhouse=clickhouse, host=host, port=port))


@click.command()
@click.option("--functions", type=click.IntRange(1, 10_000), default=8, show_default=True)
@click.option(
    "--rate", type=click.FloatRange(0, min_open=True), default=50.0, show_default=True, help="invocations/s, fleet-wide"
)
@click.option("--duration", type=Duration(), default="30s", show_default=True, help="e.g. 30s, 5m")
@API_OPTION
@click.option("--target", default=None, hidden=True, callback=api_url)  # the old name of --api
@TOKEN_OPTION
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--fast", is_flag=True, help="send as fast as possible instead of in real time")
def simulate(
    functions: int,
    rate: float,
    duration: float,
    api: str,
    target: str | None,
    token: str | None,
    seed: int,
    fast: bool,
) -> None:
    """Send realistic Lambda-like traffic in the real AWS wire formats to a running fnscope."""
    from fnscope.simulator.sender import SendError, run

    api = target or api
    check_reachable(api)
    try:
        run(api, functions, rate, duration, seed, token=token, fast=fast, appsync=True)
    except SendError as exc:
        raise click.ClickException(f"fnscope at {without_userinfo(api)} stopped answering: {exc}") from exc
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        raise SystemExit(130) from None
