"""`fnscope dashboards export DIR` and `fnscope dashboards deploy`: Grafana dashboards and alert rules."""

from __future__ import annotations

from pathlib import Path

import click

from fnscope.app.settings import Settings


@click.group()
def dashboards() -> None:
    """Grafana dashboards and alert rules, as files or pushed into a running Grafana."""


@dashboards.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export(directory: Path) -> None:
    """Write Grafana provisioning files (datasource, dashboards, alert rules) into DIRECTORY.

    Mount DIRECTORY at /etc/grafana/provisioning (compose.yaml mounts dashboards/provisioning)."""
    from fnscope.dashboards.provisioning import export as write

    for path in write(directory, Settings().alerts.effective_rules()):
        click.echo(path)


@dashboards.command()
@click.option("--grafana-url", required=True, envvar="GRAFANA_URL", help="e.g. http://localhost:3000")
@click.option("--grafana-token", required=True, envvar="GRAFANA_TOKEN", help="a service account token (Admin)")
@click.option(
    "--clickhouse",
    default="http://fnscope:fnscope@clickhouse:8123/fnscope",
    envvar="FNSCOPE_CLICKHOUSE",
    show_default=True,
    help="the ClickHouse as Grafana reaches it: http(s)://user:password@host:port/database",
)
@click.option(
    "--webhook-url",
    default="",
    envvar="FNSCOPE_ALERT_WEBHOOK_URL",
    help="alert notifications go to this webhook (a contact point); without it, to Grafana's policy",
)
def deploy(grafana_url: str, grafana_token: str, clickhouse: str, webhook_url: str) -> None:
    """Create or update the datasource, folder, dashboards, contact point and alert rules. Safe to re-run."""
    from grafana_client.client import GrafanaException

    from fnscope.dashboards.deploy import connect
    from fnscope.dashboards.deploy import deploy as push

    try:
        report = push(connect(grafana_url, grafana_token), clickhouse, webhook_url, Settings().alerts.effective_rules())
    except (GrafanaException, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # connection refused, DNS, TLS (the HTTP client's errors are OSErrors)
        raise click.ClickException(f"cannot reach Grafana at {grafana_url}: {exc}") from exc
    for outcome in ("created", "updated", "unchanged"):
        for what in getattr(report, outcome):
            click.echo(f"{outcome:9} {what}")
